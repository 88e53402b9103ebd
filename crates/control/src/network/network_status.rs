//! The network controller: reports a Network's IPv6 range in `status.ipam.ipv6Prefix` and
//! its `IPAMAllocated` and `Ready` conditions.
//!
//! The range is the one [`ranges::range`] derives (the spec's, else the ULA /48 of the
//! Network's UID); nothing needs holding, because subnets are cut from it by the
//! network-context controller. Reconcile checklist: fetch (cached) → skip if deleting
//! (its contexts go with it through owner references) → write the status.

use std::future::Future;
use std::sync::Arc;

use datum_api::conditions::{self, ConditionStatus};
use datum_api::networking::well_known::{condition_types, reasons};
use datum_api::networking::{IpFamily, Network, NetworkStatus, NetworkStatusIpam};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::{debug, warn};

use super::ranges;
use crate::context::Context;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

#[derive(Debug, thiserror::Error)]
pub enum NetworkStatusError {
    #[error("failed to write the network status")]
    Status(#[from] StatusWriteError),
    #[error("network has no namespace")]
    NoNamespace,
}

/// Runs the network controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    watch::shared_controller(
        &context.caches().networks,
        watch::Filter::Generation,
        context.settings().concurrency,
    )
    .drive(
        "network",
        reconcile,
        error_policy,
        Arc::new(context),
        shutdown,
    )
    .await;
}

fn error_policy(
    network: Arc<Network>,
    error: &NetworkStatusError,
    context: Arc<Context>,
) -> Action {
    if watch::is_conflict(error) {
        debug!(network = %network.name_any(), %error, "another writer was first (409); retrying");
    } else {
        warn!(network = %network.name_any(), error = %error, "reconciling network failed");
    }
    Action::requeue(context.settings().retry)
}

/// One pass over a Network: fetch (cached) → skip if deleting → write the status.
pub async fn reconcile(
    network: Arc<Network>,
    context: Arc<Context>,
) -> Result<Action, NetworkStatusError> {
    if network.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = network.namespace().ok_or(NetworkStatusError::NoNamespace)?;
    let generation = network.metadata.generation.unwrap_or_default();
    let mut status: NetworkStatus = network.status.clone().unwrap_or_default();
    let mut ipam = (
        ConditionStatus::True,
        reasons::ALLOCATED,
        "Ranges assigned".to_owned(),
    );
    if network.spec.carries_ipv6() {
        match ranges::range(&network, IpFamily::Ipv6, &context.settings().networks) {
            Ok(prefix) => {
                let mut current = status.ipam.clone().unwrap_or_default();
                current.ipv6_prefix = Some(prefix.to_string());
                status.ipam = Some(NetworkStatusIpam { ..current });
                ipam.2 = format!("IPv6 range {prefix}");
            }
            Err(error) => {
                ipam = (
                    ConditionStatus::False,
                    reasons::RANGE_UNSUPPORTED,
                    error.to_string(),
                );
            }
        }
    }
    for family in network.spec.ip_families() {
        if *family == IpFamily::Ipv4
            && let Err(error) =
                ranges::range(&network, IpFamily::Ipv4, &context.settings().networks)
        {
            ipam = (
                ConditionStatus::False,
                reasons::RANGE_UNSUPPORTED,
                error.to_string(),
            );
        }
    }
    let ready = if ipam.0 == ConditionStatus::True {
        conditions::new(
            condition_types::READY,
            ConditionStatus::True,
            reasons::READY,
            ipam.2.clone(),
            generation,
        )
    } else {
        conditions::new(
            condition_types::READY,
            ipam.0,
            ipam.1,
            ipam.2.clone(),
            generation,
        )
    };
    conditions::set(
        &mut status.conditions,
        conditions::new(
            condition_types::IPAM_ALLOCATED,
            ipam.0,
            ipam.1,
            ipam.2,
            generation,
        ),
    );
    conditions::set(&mut status.conditions, ready);
    status.observed_generation = Some(generation);
    let api: Api<Network> = context.api_in(&namespace);
    status_write::write_if_changed(&api, network.as_ref(), network.status.as_ref(), &status)
        .await?;
    Ok(Action::await_change())
}
