//! The workload controller: a compute Workload → one WorkloadDeployment per placement ×
//! selected Location, and the Workload's status rolled up from them.
//!
//! Reconcile checklist ([`reconcile`]): fetch (the cached Workload) → handle deletion (the
//! garbage collector removes the deployments through their owner references, nothing to
//! do) → reconcile normal: list Locations, [`desired::plan`] the deployments, create or
//! update them, delete the ones no longer wanted, write the status if it changed.
//!
//! Triggers: Workload spec changes (generation), any change of an owned deployment, and any
//! Location change (every Workload is re-evaluated, so deployments follow Locations as they
//! appear, disappear or change readiness). The status is written at most every
//! [`Settings::rollup_interval`](crate::Settings::rollup_interval). Locations and deployments are read from the shared
//! [`caches`](crate::cache).

pub mod desired;
pub mod rollup;
pub mod selection;

use std::future::Future;
use std::sync::Arc;

use datum_api::compute::{Workload, WorkloadDeployment};
use datum_api::networking::Location;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

use desired::PlacementPlan;

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("failed to create deployment {0}")]
    CreateDeployment(String, #[source] kube::Error),
    #[error("failed to update deployment {0}")]
    UpdateDeployment(String, #[source] kube::Error),
    #[error("failed to delete deployment {0}")]
    DeleteDeployment(String, #[source] kube::Error),
    #[error("failed to write the workload status")]
    Status(#[from] StatusWriteError),
    #[error("workload has no namespace")]
    NoNamespace,
}

/// Runs the workload controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let caches = context.caches();
    let controller = watch::shared_controller(
        &caches.workloads,
        watch::Filter::Generation,
        context.settings().concurrency,
    );
    let store = controller.store();
    controller
        .owns_shared_stream(caches.deployments.subscribe())
        .watches_shared_stream(caches.locations.subscribe(), move |_location| {
            watch::all_in(&store)
        })
        .drive(
            "placement",
            reconcile,
            error_policy,
            Arc::new(context),
            shutdown,
        )
        .await;
}

fn error_policy(workload: Arc<Workload>, error: &PlacementError, context: Arc<Context>) -> Action {
    if watch::is_conflict(error) {
        context.freshness().outdated(workload.as_ref());
        debug!(workload = %workload.name_any(), %error, "workload changed meanwhile; retrying");
    } else {
        warn!(workload = %workload.name_any(), namespace = ?workload.namespace(), error = %error, source = ?std::error::Error::source(error), "reconciling workload failed");
    }
    watch::retry_after(error, context.settings().retry)
}

/// One pass over a Workload, as a checklist.
pub async fn reconcile(
    workload: Arc<Workload>,
    context: Arc<Context>,
) -> Result<Action, PlacementError> {
    if workload.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if context.freshness().is_outdated(workload.as_ref()) {
        return Ok(Action::requeue(datum_runtime::freshness::RECHECK));
    }
    let namespace = workload.namespace().ok_or(PlacementError::NoNamespace)?;
    let caches = context.caches();
    let locations: Vec<Location> = caches
        .locations
        .store()
        .state()
        .iter()
        .map(|l| l.as_ref().clone())
        .collect();
    let plans = desired::plan(&workload, &locations);
    let existing: Vec<WorkloadDeployment> = caches
        .deployments
        .indexed(&workload.uid().unwrap_or_default())
        .into_iter()
        .filter(|d| d.namespace() == workload.namespace())
        .map(|d| d.as_ref().clone())
        .collect();
    apply_deployments(&context, &namespace, &plans, &existing).await?;
    delete_unwanted(&context, &namespace, &plans, &existing).await?;
    if let Some(delay) = update_status(&context, &workload, &namespace, &plans, &existing).await? {
        return Ok(Action::requeue(delay));
    }
    Ok(Action::requeue(context.settings().resync))
}

async fn apply_deployments(
    context: &Context,
    namespace: &str,
    plans: &[PlacementPlan],
    existing: &[WorkloadDeployment],
) -> Result<(), PlacementError> {
    let api: Api<WorkloadDeployment> = context.api_in(namespace);
    for desired in plans.iter().flat_map(|plan| plan.deployments.iter()) {
        let name = desired.name_any();
        let expectations = context.expectations();
        match existing.iter().find(|d| d.name_any() == name) {
            // Made by an earlier pass; the cache does not show it yet.
            None if expectations.pending(namespace, &name) => {}
            None => {
                if create_deployment(&api, desired).await? {
                    expectations.created(namespace, &name);
                }
            }
            Some(current) => {
                expectations.seen(namespace, &name);
                update_deployment(&api, desired, current).await?;
            }
        }
    }
    Ok(())
}

/// Creates the deployment; returns whether this call made it.
async fn create_deployment(
    api: &Api<WorkloadDeployment>,
    desired: &WorkloadDeployment,
) -> Result<bool, PlacementError> {
    let name = desired.name_any();
    match api.create(&PostParams::default(), desired).await {
        Ok(_) => {
            info!(deployment = %name, "created workload deployment");
            Ok(true)
        }
        // Made by an earlier pass the cache does not show yet, or held by a stale object of
        // another Workload; the next pass sees it in the cache or reports it.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            debug!(deployment = %name, "deployment name already taken");
            Ok(false)
        }
        Err(error) => Err(PlacementError::CreateDeployment(name, error)),
    }
}

async fn update_deployment(
    api: &Api<WorkloadDeployment>,
    desired: &WorkloadDeployment,
    current: &WorkloadDeployment,
) -> Result<(), PlacementError> {
    let spec = desired::merged_spec(&desired.spec, &current.spec);
    let labels_current = current.labels();
    let labels_ok = desired
        .labels()
        .iter()
        .all(|(k, v)| labels_current.get(k) == Some(v));
    if spec == current.spec && labels_ok {
        return Ok(());
    }
    let mut updated = current.clone();
    updated.spec = spec;
    updated.labels_mut().extend(desired.labels().clone());
    updated.metadata.managed_fields = None;
    let name = desired.name_any();
    api.replace(&name, &PostParams::default(), &updated)
        .await
        .map_err(|e| PlacementError::UpdateDeployment(name.clone(), e))?;
    info!(deployment = %name, "updated workload deployment");
    Ok(())
}

async fn delete_unwanted(
    context: &Context,
    namespace: &str,
    plans: &[PlacementPlan],
    existing: &[WorkloadDeployment],
) -> Result<(), PlacementError> {
    let api: Api<WorkloadDeployment> = context.api_in(namespace);
    let wanted: Vec<String> = plans
        .iter()
        .flat_map(|p| p.deployments.iter().map(|d| d.name_any()))
        .collect();
    for deployment in existing {
        let name = deployment.name_any();
        if wanted.contains(&name) || deployment.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => info!(deployment = %name, "deleted workload deployment no longer selected"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(PlacementError::DeleteDeployment(name, error)),
        }
    }
    Ok(())
}

async fn update_status(
    context: &Context,
    workload: &Workload,
    namespace: &str,
    plans: &[PlacementPlan],
    existing: &[WorkloadDeployment],
) -> Result<Option<std::time::Duration>, PlacementError> {
    let status = rollup::status(workload, plans, existing);
    let api: Api<Workload> = context.api_in(namespace);
    let current = workload.status.as_ref();
    let (pacer, freshness) = (context.pacer(), context.freshness());
    Ok(status_write::write_paced(pacer, freshness, &api, workload, current, &status).await?)
}
