//! The network-binding controller: answers each NetworkBinding with the NetworkContext of
//! its (network, location) pair, and reports whether that context is Ready.
//!
//! Reconcile checklist ([`reconcile`]): fetch (cached) → skip if deleting (the binding owns
//! nothing) → read the Network → ensure the context → report. The context is named
//! `<network>-<location>` in the Network's namespace
//! ([`names::network_context`](datum_api::networking::names::network_context)), so every
//! binding of a pair — and two racing workers — lands on one context; it carries a
//! controller owner reference to the Network (deleting the Network deletes it) and a spec
//! copy of the Network's families, MTU and generation, kept current.
//!
//! | situation | Ready | reason |
//! |---|---|---|
//! | Network in another namespace (never read, no context made) | False | `CrossNamespaceNetwork` |
//! | Network missing | False | `NetworkNotFound` |
//! | context not Ready | False | `NetworkContextNotReady` |
//! | context Ready | True | `NetworkContextReady` |
//!
//! Triggers: binding spec changes, any change of a NetworkContext (mapped to the bindings
//! of its pair), any change of a Network (mapped to the bindings naming it).

use std::future::Future;
use std::sync::Arc;

use datum_api::conditions::{self, ConditionStatus};
use datum_api::networking::well_known::{condition_types, labels, reasons};
use datum_api::networking::{
    LocalNetworkRef, Network, NetworkBinding, NetworkBindingStatus, NetworkContext,
    NetworkContextRef, NetworkContextSpec, names,
};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::label_values::insert_name;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("failed to read network context {0}")]
    GetContext(String, #[source] kube::Error),
    #[error("failed to create network context {0}")]
    CreateContext(String, #[source] kube::Error),
    #[error("failed to update network context {0}")]
    UpdateContext(String, #[source] kube::Error),
    #[error("failed to write the binding status")]
    Status(#[from] StatusWriteError),
    #[error("binding has no namespace")]
    NoNamespace,
}

/// Runs the network-binding controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let caches = context.caches();
    let controller = watch::shared_controller(
        &caches.network_bindings,
        watch::Filter::Generation,
        context.settings().concurrency,
    );
    let bindings = controller.store();
    let by_context = bindings.clone();
    controller
        .watches_shared_stream(
            caches.network_contexts.subscribe(),
            move |network_context: Arc<NetworkContext>| {
                let namespace = network_context.namespace();
                let name = network_context.name_any();
                by_context
                    .state()
                    .iter()
                    .filter(|b| {
                        b.network_context_name() == name
                            && network_namespace(b).as_ref() == namespace.as_ref()
                    })
                    .map(|b| ObjectRef::from_obj(b.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches_shared_stream(caches.networks.subscribe(), move |network: Arc<Network>| {
            let namespace = network.namespace();
            let name = network.name_any();
            bindings
                .state()
                .iter()
                .filter(|b| {
                    b.spec.network.name == name
                        && network_namespace(b).as_ref() == namespace.as_ref()
                })
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .drive(
            "network_binding",
            reconcile,
            error_policy,
            Arc::new(context),
            shutdown,
        )
        .await;
}

fn error_policy(
    binding: Arc<NetworkBinding>,
    error: &BindingError,
    context: Arc<Context>,
) -> Action {
    if watch::is_conflict(error) {
        context.freshness().outdated(binding.as_ref());
        debug!(binding = %binding.name_any(), %error, "binding changed meanwhile; retrying");
    } else {
        warn!(binding = %binding.name_any(), error = %error, source = ?std::error::Error::source(error), "reconciling network binding failed");
    }
    watch::retry_after(error, context.settings().retry)
}

/// The namespace of the Network a binding names (its own when unset).
fn network_namespace(binding: &NetworkBinding) -> Option<String> {
    binding
        .spec
        .network
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| binding.namespace())
}

/// One pass over a NetworkBinding, as a checklist.
pub async fn reconcile(
    binding: Arc<NetworkBinding>,
    context: Arc<Context>,
) -> Result<Action, BindingError> {
    if binding.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if context.freshness().is_outdated(binding.as_ref()) {
        return Ok(Action::requeue(datum_runtime::freshness::RECHECK));
    }
    let namespace = binding.namespace().ok_or(BindingError::NoNamespace)?;
    let network_namespace = network_namespace(&binding).unwrap_or_else(|| namespace.clone());
    let network_name = binding.spec.network.name.clone();
    if network_namespace != namespace {
        let message = super::cross_namespace_message(
            "spec.network.namespace",
            &network_namespace,
            &network_name,
            &namespace,
        );
        report(
            &context,
            &binding,
            &namespace,
            None,
            reasons::CROSS_NAMESPACE_NETWORK,
            message,
        )
        .await?;
        return Ok(Action::await_change());
    }
    // A Network being deleted gets no context either: the garbage collector is taking its
    // contexts, and one made again would race it and hold the deletion up.
    let network = match context
        .caches()
        .networks
        .get(Some(&network_namespace), &network_name)
    {
        Some(network) if network.metadata.deletion_timestamp.is_none() => network,
        found => {
            let (reason, state) = match found {
                Some(_) => (reasons::NETWORK_DELETING, "is being deleted"),
                None => (reasons::NETWORK_NOT_FOUND, "was not found"),
            };
            let message = format!("Network {network_namespace}/{network_name} {state}");
            report(&context, &binding, &namespace, None, reason, message).await?;
            return Ok(Action::requeue(context.settings().retry));
        }
    };
    let network_context = ensure_context(&context, &binding, &network).await?;
    let ready = network_context
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, condition_types::READY));
    let reference = NetworkContextRef {
        namespace: network_namespace,
        name: network_context.name_any(),
    };
    if ready {
        let message = format!("NetworkContext {} is ready", reference.name);
        report(
            &context,
            &binding,
            &namespace,
            Some(reference),
            reasons::NETWORK_CONTEXT_READY,
            message,
        )
        .await?;
        Ok(Action::requeue(context.settings().resync))
    } else {
        let message = format!("NetworkContext {} is not ready yet", reference.name);
        report(
            &context,
            &binding,
            &namespace,
            Some(reference),
            reasons::NETWORK_CONTEXT_NOT_READY,
            message,
        )
        .await?;
        Ok(Action::await_change())
    }
}

/// The NetworkContext the binding's pair should have, with the Network's values copied.
pub fn desired_context(binding: &NetworkBinding, network: &Network) -> NetworkContext {
    let name = names::network_context(&network.name_any(), &binding.spec.location.name);
    let mut context_labels = std::collections::BTreeMap::new();
    insert_name(&mut context_labels, labels::NETWORK, &network.name_any());
    insert_name(
        &mut context_labels,
        labels::LOCATION,
        &binding.spec.location.name,
    );
    insert_name(
        &mut context_labels,
        labels::NETWORK_UID,
        &network.uid().unwrap_or_default(),
    );
    let mut spec = NetworkContextSpec::new(
        LocalNetworkRef::new(network.name_any()),
        binding.spec.location.clone(),
    );
    spec.ip_families = Some(network.spec.ip_families().to_vec());
    spec.mtu = Some(network.spec.mtu());
    spec.network_generation = network.metadata.generation;
    NetworkContext {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: network.namespace(),
            labels: Some(context_labels),
            owner_references: crate::ownership::controller_reference(network).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

async fn ensure_context(
    context: &Context,
    binding: &NetworkBinding,
    network: &Network,
) -> Result<NetworkContext, BindingError> {
    let desired = desired_context(binding, network);
    let name = desired.name_any();
    let api: Api<NetworkContext> = context.api_in(&network.namespace().unwrap_or_default());
    let cached = context
        .caches()
        .network_contexts
        .get(network.namespace().as_deref(), &name);
    let current = match cached {
        Some(current) => current.as_ref().clone(),
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(created) => {
                info!(context = %name, "created network context");
                return Ok(created);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => api
                .get(&name)
                .await
                .map_err(|e| BindingError::GetContext(name.clone(), e))?,
            Err(e) => return Err(BindingError::CreateContext(name, e)),
        },
    };
    let stale = current.spec.ip_families != desired.spec.ip_families
        || current.spec.mtu != desired.spec.mtu
        || current.spec.network_generation < desired.spec.network_generation;
    if !stale {
        return Ok(current);
    }
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": current.resource_version() },
        "spec": {
            "ipFamilies": desired.spec.ip_families,
            "mtu": desired.spec.mtu,
            "networkGeneration": desired.spec.network_generation,
        }
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| BindingError::UpdateContext(name, e))
}

async fn report(
    context: &Context,
    binding: &NetworkBinding,
    namespace: &str,
    reference: Option<NetworkContextRef>,
    reason: &str,
    message: String,
) -> Result<(), BindingError> {
    let generation = binding.metadata.generation.unwrap_or_default();
    let mut status: NetworkBindingStatus = binding.status.clone().unwrap_or_default();
    let ready = ConditionStatus::from_bool(reason == reasons::NETWORK_CONTEXT_READY);
    conditions::set(
        &mut status.conditions,
        conditions::new(condition_types::READY, ready, reason, message, generation),
    );
    if reference.is_some() {
        status.network_context_ref = reference;
    }
    status.observed_generation = Some(generation);
    let api: Api<NetworkBinding> = context.api_in(namespace);
    if let Some(written) =
        status_write::write_if_changed(&api, binding, binding.status.as_ref(), &status).await?
    {
        context.freshness().wrote(binding, &written);
    }
    Ok(())
}
