//! The short-form controller: a `workload.datum.net/v1alpha1` Workload → the canonical
//! `compute.datumapis.com` Workload of the same name it owns, with the canonical status
//! mirrored back so `kubectl get` on the short form shows the truth.
//!
//! Reconcile checklist ([`reconcile`]): fetch (cached) → handle deletion (the canonical
//! Workload goes with it through its owner reference) → reconcile normal: list Locations,
//! [`expansion::canonical_spec`], create or update the canonical Workload, mirror status.
//!
//! Triggers: short-form spec changes (generation), any change of the owned canonical
//! Workload (its status), and any Location change (the provider/region match is re-resolved).

pub mod expansion;

use std::future::Future;
use std::sync::Arc;

use datum_api::compute;
use datum_api::networking::Location;
use datum_api::short_form;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

#[derive(Debug, thiserror::Error)]
pub enum ShortFormError {
    #[error("failed to list Locations")]
    ListLocations(#[source] kube::Error),
    #[error("failed to expand the short form")]
    Expand(#[from] expansion::ExpansionError),
    #[error("failed to read the canonical workload {0}")]
    GetCanonical(String, #[source] kube::Error),
    #[error("failed to write the canonical workload {0}")]
    WriteCanonical(String, #[source] kube::Error),
    #[error("canonical workload {0} exists and is not owned by this short form")]
    NotOwned(String),
    #[error("failed to write the short-form status")]
    Status(#[from] StatusWriteError),
    #[error("short-form workload has no namespace")]
    NoNamespace,
}

/// Runs the short-form controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let workloads: Api<short_form::Workload> = context.scoped_api();
    let controller = watch::controller(
        workloads,
        watch::Filter::Generation,
        context.settings().concurrency,
    );
    let store = controller.store();
    controller
        .owns_stream(watch::objects(context.scoped_api::<compute::Workload>()))
        .watches_stream(
            watch::objects(context.cluster_api::<Location>()),
            move |_| watch::all_in(&store),
        )
        .drive(
            "short_form",
            reconcile,
            error_policy,
            Arc::new(context),
            shutdown,
        )
        .await;
}

fn error_policy(
    workload: Arc<short_form::Workload>,
    error: &ShortFormError,
    context: Arc<Context>,
) -> Action {
    if watch::is_conflict(error) {
        debug!(workload = %workload.name_any(), %error, "short-form workload changed meanwhile; retrying");
    } else {
        warn!(workload = %workload.name_any(), namespace = ?workload.namespace(), error = %error, source = ?std::error::Error::source(error), "reconciling short-form workload failed");
    }
    watch::retry_after(error, context.settings().retry)
}

/// One pass over a short-form Workload, as a checklist.
pub async fn reconcile(
    short: Arc<short_form::Workload>,
    context: Arc<Context>,
) -> Result<Action, ShortFormError> {
    if short.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = short.namespace().ok_or(ShortFormError::NoNamespace)?;
    let locations = context
        .cluster_api::<Location>()
        .list(&ListParams::default())
        .await
        .map_err(ShortFormError::ListLocations)?
        .items;
    let spec = expansion::canonical_spec(&short, &locations)?;
    let canonical = apply_canonical(&context, &short, &namespace, spec).await?;
    mirror_status(&context, &short, &namespace, &canonical).await?;
    Ok(Action::requeue(context.settings().resync))
}

async fn apply_canonical(
    context: &Context,
    short: &short_form::Workload,
    namespace: &str,
    spec: compute::WorkloadSpec,
) -> Result<compute::Workload, ShortFormError> {
    let api: Api<compute::Workload> = context.api_in(namespace);
    let name = short.name_any();
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| ShortFormError::GetCanonical(name.clone(), e))?;
    match existing {
        None => {
            let workload = compute::Workload {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    owner_references: crate::ownership::controller_reference(short)
                        .map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                spec,
                status: None,
            };
            let created = api
                .create(&PostParams::default(), &workload)
                .await
                .map_err(|e| ShortFormError::WriteCanonical(name.clone(), e))?;
            info!(workload = %name, "created canonical workload from the short form");
            Ok(created)
        }
        Some(current) => {
            let owned = current
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == short.uid().as_ref());
            if !owned {
                return Err(ShortFormError::NotOwned(name));
            }
            if current.spec == spec {
                return Ok(current);
            }
            let mut updated = current;
            updated.spec = spec;
            updated.metadata.managed_fields = None;
            let replaced = api
                .replace(&name, &PostParams::default(), &updated)
                .await
                .map_err(|e| ShortFormError::WriteCanonical(name.clone(), e))?;
            info!(workload = %name, "updated canonical workload from the short form");
            Ok(replaced)
        }
    }
}

async fn mirror_status(
    context: &Context,
    short: &short_form::Workload,
    namespace: &str,
    canonical: &compute::Workload,
) -> Result<(), ShortFormError> {
    let status = expansion::mirrored_status(short, canonical);
    let api: Api<short_form::Workload> = context.api_in(namespace);
    status_write::write_if_changed(&api, short, short.status.as_ref(), &status).await?;
    Ok(())
}
