//! The workload-deployment controller: keeps a WorkloadDeployment's Instances — how many,
//! which template — and reports them in the deployment's status.
//!
//! Reconcile checklist ([`reconcile`]): fetch (the cached deployment) → handle deletion
//! (its Instances go with it through their owner references) → reconcile normal: list the
//! Instances, [`plan::plan`] the next steps, execute them, write the status if it changed.
//!
//! Instances are named `<deployment>-<ordinal>`, so two workers (or a restarted process)
//! can never make two Instances for one slot: the API server's create is the lock, and a
//! `409 AlreadyExists` just means someone else got there first.
//!
//! Networks: before its Instances, the deployment ensures one NetworkBinding per template
//! interface in its location ([`build::network_binding`]; existing ones are never
//! updated, as upstream). Instances are created with the upstream `Network` scheduling
//! gate; [`crate::network::instance_network`] lifts it once the Instance's network contexts
//! are Ready and its addresses allocated. Gates already present are kept on update.
//!
//! Triggers: deployment spec changes (generation: template, `spec.replicas`, the scale
//! subresource) and any change of an owned Instance (its readiness drives the rollout).
//! The status is written at most every [`Settings::rollup_interval`](crate::Settings::rollup_interval)
//! ([`Pacer`](crate::status_write::Pacer)), so a burst of Instance changes yields one write.
//! (kube's debounce would do it too, but postpones the reconcile for as long as changes
//! keep coming, which a deployment of many Instances reporting usage never stops doing.)
//! Instances and NetworkBindings are read from the shared [`caches`](crate::cache).

pub mod build;
pub mod plan;
pub mod status;

use std::future::Future;
use std::sync::Arc;

use datum_api::compute::conditions::READY;
use datum_api::compute::{Instance, WorkloadDeployment};
use datum_api::conditions;
use datum_api::networking::NetworkBinding;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

use plan::{Observed, Step};

#[derive(Debug, thiserror::Error)]
pub enum InstanceControlError {
    #[error("failed to create instance {0}")]
    CreateInstance(String, #[source] kube::Error),
    #[error("failed to update instance {0}")]
    UpdateInstance(String, #[source] kube::Error),
    #[error("failed to delete instance {0}")]
    DeleteInstance(String, #[source] kube::Error),
    #[error("failed to create network binding {0}")]
    CreateBinding(String, #[source] kube::Error),
    #[error("failed to write the deployment status")]
    Status(#[from] StatusWriteError),
    #[error("deployment has no namespace")]
    NoNamespace,
}

/// Runs the workload-deployment controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let caches = context.caches();
    watch::shared_controller(
        &caches.deployments,
        watch::Filter::Generation,
        context.settings().concurrency,
    )
    .owns_shared_stream(caches.instances.subscribe())
    .drive(
        "instance_control",
        reconcile,
        error_policy,
        Arc::new(context),
        shutdown,
    )
    .await;
}

fn error_policy(
    deployment: Arc<WorkloadDeployment>,
    error: &InstanceControlError,
    context: Arc<Context>,
) -> Action {
    if watch::is_conflict(error) {
        context.freshness().outdated(deployment.as_ref());
        debug!(deployment = %deployment.name_any(), %error, "deployment changed meanwhile; retrying");
    } else {
        warn!(deployment = %deployment.name_any(), namespace = ?deployment.namespace(), error = %error, source = ?std::error::Error::source(error), "reconciling deployment failed");
    }
    watch::retry_after(error, context.settings().retry)
}

/// One pass over a WorkloadDeployment, as a checklist.
pub async fn reconcile(
    deployment: Arc<WorkloadDeployment>,
    context: Arc<Context>,
) -> Result<Action, InstanceControlError> {
    if deployment.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if context.freshness().is_outdated(deployment.as_ref()) {
        return Ok(Action::requeue(datum_runtime::freshness::RECHECK));
    }
    let namespace = deployment
        .namespace()
        .ok_or(InstanceControlError::NoNamespace)?;
    let api: Api<Instance> = context.api_in(&namespace);
    let instances = cached_instances(&context, &deployment);
    let hash = deployment.spec.template.hash();
    if let Some(location) = build::location(&deployment) {
        ensure_bindings(&context, &deployment, &namespace, &location).await?;
        let replicas = u32::try_from(status::desired_replicas(&deployment)).unwrap_or_default();
        let observed: Vec<Observed> = instances.iter().map(observe).collect();
        let steps = plan::plan(
            &deployment.name_any(),
            replicas,
            deployment.spec.scale_settings.instance_management_policy,
            &hash,
            &observed,
        );
        execute(
            &context,
            &api,
            &deployment,
            &location,
            &instances,
            &hash,
            steps,
        )
        .await?;
    } else {
        debug!(deployment = %deployment.name_any(), "deployment has no location yet");
    }
    if let Some(delay) = update_status(&context, &deployment, &namespace, &instances, &hash).await?
    {
        return Ok(Action::requeue(delay));
    }
    Ok(Action::requeue(context.settings().resync))
}

/// Creates the NetworkBinding of each template interface that does not exist yet.
async fn ensure_bindings(
    context: &Context,
    deployment: &WorkloadDeployment,
    namespace: &str,
    location: &datum_api::compute::LocationReference,
) -> Result<(), InstanceControlError> {
    let api: Api<NetworkBinding> = context.api_in(namespace);
    for (index, interface) in deployment
        .spec
        .template
        .spec
        .network_interfaces
        .iter()
        .enumerate()
    {
        let binding = build::network_binding(deployment, location, index, &interface.network);
        let name = binding.name_any();
        if context
            .caches()
            .network_bindings
            .get(Some(namespace), &name)
            .is_some()
        {
            continue;
        }
        match api.create(&PostParams::default(), &binding).await {
            Ok(_) => info!(binding = %name, "created network binding"),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(InstanceControlError::CreateBinding(name, error)),
        }
    }
    Ok(())
}

/// The deployment's Instances, from the shared cache (a create or delete not yet seen there
/// is harmless: names are per ordinal, so a repeated create is a `409`, a repeated delete a
/// `404`).
fn cached_instances(context: &Context, deployment: &WorkloadDeployment) -> Vec<Instance> {
    let uid = deployment.uid().unwrap_or_default();
    let namespace = deployment.namespace().unwrap_or_default();
    let instances: Vec<Instance> = context
        .caches()
        .instances
        .indexed(&uid)
        .into_iter()
        .filter(|i| i.namespace().as_deref() == Some(namespace.as_str()))
        .map(|i| i.as_ref().clone())
        .collect();
    for instance in &instances {
        context
            .expectations()
            .seen(&namespace, &instance.name_any());
    }
    instances
}

/// What the planner needs from an Instance.
pub fn observe(instance: &Instance) -> Observed {
    let spec_hash = instance
        .spec
        .controller
        .as_ref()
        .map(|c| c.template_hash.clone());
    let status = instance.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|c| conditions::is_true(c, READY));
    let runs_spec = status
        .and_then(|s| s.controller.as_ref())
        .is_none_or(|c| Some(&c.observed_template_hash) == spec_hash.as_ref());
    Observed {
        name: instance.name_any(),
        deleting: instance.metadata.deletion_timestamp.is_some(),
        available: ready && runs_spec,
        template_hash: spec_hash,
    }
}

async fn execute(
    context: &Context,
    api: &Api<Instance>,
    deployment: &WorkloadDeployment,
    location: &datum_api::compute::LocationReference,
    instances: &[Instance],
    hash: &str,
    steps: Vec<Step>,
) -> Result<(), InstanceControlError> {
    for step in steps {
        match step {
            Step::Create(ordinal) => {
                let instance = build::new_instance(deployment, location, ordinal, hash);
                let name = instance.name_any();
                let namespace = deployment.namespace().unwrap_or_default();
                if context.expectations().pending(&namespace, &name) {
                    debug!(instance = %name, "created already; waiting for the cache to show it");
                    continue;
                }
                match api.create(&PostParams::default(), &instance).await {
                    Ok(_) => {
                        context.expectations().created(&namespace, &name);
                        info!(instance = %name, "created instance");
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        // Ours from an earlier pass, most likely: expect it like one.
                        context.expectations().created(&namespace, &name);
                        debug!(instance = %name, "instance already exists")
                    }
                    Err(error) => return Err(InstanceControlError::CreateInstance(name, error)),
                }
            }
            Step::Update(name) => {
                let Some(current) = instances.iter().find(|i| i.name_any() == name) else {
                    continue;
                };
                let ordinal = plan::ordinal(&deployment.name_any(), &name);
                let updated = build::updated_instance(deployment, current, ordinal, hash);
                api.replace(&name, &PostParams::default(), &updated)
                    .await
                    .map_err(|e| InstanceControlError::UpdateInstance(name.clone(), e))?;
                info!(instance = %name, template_hash = %hash, "updated instance to the current template");
            }
            Step::Delete(name) => match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => info!(instance = %name, "deleted surplus instance"),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(InstanceControlError::DeleteInstance(name, error)),
            },
        }
    }
    Ok(())
}

async fn update_status(
    context: &Context,
    deployment: &WorkloadDeployment,
    namespace: &str,
    instances: &[Instance],
    hash: &str,
) -> Result<Option<std::time::Duration>, InstanceControlError> {
    let status = status::status(deployment, instances, hash);
    let api: Api<WorkloadDeployment> = context.api_in(namespace);
    let (pacer, freshness) = (context.pacer(), context.freshness());
    let current = deployment.status.as_ref();
    Ok(status_write::write_paced(pacer, freshness, &api, deployment, current, &status).await?)
}
