//! The instance controller: derives an Instance's `Ready` condition from what its provider
//! reports (`Programmed`, `Running`) and from its scheduling gates.
//!
//! | situation | Ready | reason | message |
//! |---|---|---|---|
//! | scheduling gates present, addresses not allocated | False | `AddressesAllocated`'s (e.g. `AddressPoolExhausted`) | its message |
//! | scheduling gates present | False | `SchedulingGatesPresent` | `Scheduling gates present: <names>` |
//! | `Programmed` not True | False | Programmed's reason (`PendingProgramming` while `Pending`) | Programmed's message, or `Instance has not been programmed` |
//! | provider runs an older template | False | `ProgrammingInProgress` | `Instance is being updated to the current template` |
//! | `Running` not True | False | Running's reason (`Pending` when unknown) | Running's message, or `Instance is not running` |
//! | otherwise | True | `Running` | `Instance is ready` |
//!
//! Unlike upstream, Ready turns False again when the provider reports a failure after it
//! was True (quirk Q4), and it carries the current `observedGeneration` and a transition
//! time of the actual change (quirk Q5). Only the Ready condition is written; the provider's
//! conditions are kept as read (the patch carries the resourceVersion, so a concurrent
//! provider write is never lost).

use std::future::Future;
use std::sync::Arc;

use datum_api::compute::conditions::{PROGRAMMED, READY, RUNNING, WAITING_FOR_CONTROLLER, reasons};
use datum_api::compute::{Instance, InstanceStatus};
use datum_api::conditions::{self, ConditionStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::{debug, warn};

use crate::context::Context;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

#[derive(Debug, thiserror::Error)]
pub enum InstanceReadinessError {
    #[error("failed to write the instance status")]
    Status(#[from] StatusWriteError),
    #[error("instance has no namespace")]
    NoNamespace,
}

/// Runs the instance controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    watch::shared_controller(
        &context.caches().instances,
        watch::Filter::Everything,
        context.settings().concurrency,
    )
    .drive(
        "instance_readiness",
        reconcile,
        error_policy,
        Arc::new(context),
        shutdown,
    )
    .await;
}

fn error_policy(
    instance: Arc<Instance>,
    error: &InstanceReadinessError,
    context: Arc<Context>,
) -> Action {
    if watch::is_conflict(error) {
        context.freshness().outdated(instance.as_ref());
        debug!(instance = %instance.name_any(), %error, "instance changed meanwhile; retrying");
    } else {
        warn!(instance = %instance.name_any(), error = %error, "deriving instance readiness failed");
    }
    watch::retry_after(error, context.settings().retry)
}

/// One pass over an Instance: fetch (cached) → skip if deleting → set Ready.
pub async fn reconcile(
    instance: Arc<Instance>,
    context: Arc<Context>,
) -> Result<Action, InstanceReadinessError> {
    if instance.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = instance
        .namespace()
        .ok_or(InstanceReadinessError::NoNamespace)?;
    if context.freshness().is_outdated(instance.as_ref()) {
        return Ok(Action::requeue(datum_runtime::freshness::RECHECK));
    }
    if awaits_addresses(&instance) {
        // The instance-network controller writes Ready with the addresses.
        return Ok(Action::await_change());
    }
    let mut status = instance
        .status
        .clone()
        .unwrap_or_else(InstanceStatus::pending);
    let mut list = status.conditions.take().unwrap_or_default();
    let ready = ready_condition(&instance, &list);
    let reason = ready.reason.clone();
    conditions::set(&mut list, ready);
    status.conditions = Some(list);
    let api: Api<Instance> = context.api_in(&namespace);
    if let Some(written) =
        status_write::write_if_changed(&api, instance.as_ref(), instance.status.as_ref(), &status)
            .await?
    {
        context.freshness().wrote(instance.as_ref(), &written);
        debug!(instance = %instance.name_any(), %reason, "wrote Ready");
    }
    Ok(Action::await_change())
}

/// Whether the Instance still waits for its first address allocation (the `Network` gate is
/// on and `AddressesAllocated` not yet reported): its first status write is the
/// instance-network controller's, which sets Ready too, so writing Ready now would only
/// add a write.
fn awaits_addresses(instance: &Instance) -> bool {
    let gated = instance
        .spec
        .controller
        .as_ref()
        .and_then(|c| c.scheduling_gates.as_ref())
        .is_some_and(|gates| {
            gates
                .iter()
                .any(|g| g.name == datum_api::compute::scheduling_gates::NETWORK)
        });
    let reported = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|c| {
            conditions::get(c, crate::network::instance_network::ADDRESSES_ALLOCATED).is_some()
        });
    gated && !reported
}

/// The Ready condition `instance` should carry, given its current conditions.
pub fn ready_condition(instance: &Instance, current: &[Condition]) -> Condition {
    let generation = instance.metadata.generation.unwrap_or_default();
    let not_ready = |reason: &str, message: String| {
        conditions::new(READY, ConditionStatus::False, reason, message, generation)
    };
    let gates: Vec<String> = instance
        .spec
        .controller
        .as_ref()
        .and_then(|c| c.scheduling_gates.as_ref())
        .map(|gates| gates.iter().map(|g| g.name.clone()).collect())
        .unwrap_or_default();
    if !gates.is_empty() {
        if let Some(waiting) = conditions::get(
            current,
            crate::network::instance_network::ADDRESSES_ALLOCATED,
        )
        .filter(|c| c.status == ConditionStatus::False.as_str())
        {
            return not_ready(&waiting.reason, waiting.message.clone());
        }
        return not_ready(
            reasons::SCHEDULING_GATES_PRESENT,
            format!("Scheduling gates present: {}", gates.join(", ")),
        );
    }
    let programmed = conditions::get(current, PROGRAMMED);
    if !conditions::is_true(current, PROGRAMMED) {
        let reason = programmed
            .map(|c| c.reason.as_str())
            .filter(|r| !r.is_empty() && *r != reasons::PENDING)
            .unwrap_or(reasons::PENDING_PROGRAMMING);
        let message = programmed
            .filter(|c| c.status != ConditionStatus::Unknown.as_str() && !c.message.is_empty())
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "Instance has not been programmed".to_owned());
        return not_ready(reason, message);
    }
    let spec_hash = instance
        .spec
        .controller
        .as_ref()
        .map(|c| c.template_hash.as_str());
    let observed_hash = instance
        .status
        .as_ref()
        .and_then(|s| s.controller.as_ref())
        .map(|c| c.observed_template_hash.as_str());
    if let (Some(spec), Some(observed)) = (spec_hash, observed_hash)
        && spec != observed
    {
        return not_ready(
            reasons::PROGRAMMING_IN_PROGRESS,
            "Instance is being updated to the current template".to_owned(),
        );
    }
    let running = conditions::get(current, RUNNING);
    if !conditions::is_true(current, RUNNING) {
        let reason = running
            .map(|c| c.reason.as_str())
            .filter(|r| !r.is_empty())
            .unwrap_or(reasons::PENDING);
        let message = running
            .filter(|c| {
                c.status != ConditionStatus::Unknown.as_str() && c.message != WAITING_FOR_CONTROLLER
            })
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "Instance is not running".to_owned());
        return not_ready(reason, message);
    }
    conditions::new(
        READY,
        ConditionStatus::True,
        reasons::RUNNING,
        "Instance is ready",
        generation,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(conditions: Vec<Condition>) -> (Instance, Vec<Condition>) {
        (Instance::new("i-0", Default::default()), conditions)
    }

    #[test]
    fn ready_follows_programmed_and_running_both_ways() {
        let (instance, list) = with(InstanceStatus::pending().conditions.unwrap_or_default());
        let ready = ready_condition(&instance, &list);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::PENDING_PROGRAMMING)
        );

        let up = vec![
            conditions::new(
                PROGRAMMED,
                ConditionStatus::True,
                reasons::PROGRAMMED,
                "ok",
                1,
            ),
            conditions::new(RUNNING, ConditionStatus::True, reasons::RUNNING, "ok", 1),
        ];
        let (instance, list) = with(up);
        assert_eq!(ready_condition(&instance, &list).status, "True");

        let crashed = vec![
            conditions::new(
                PROGRAMMED,
                ConditionStatus::True,
                reasons::PROGRAMMED,
                "ok",
                1,
            ),
            conditions::new(
                RUNNING,
                ConditionStatus::False,
                reasons::STOPPED,
                "container exited 1",
                1,
            ),
        ];
        let (instance, list) = with(crashed);
        let ready = ready_condition(&instance, &list);
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            ("False", reasons::STOPPED, "container exited 1")
        );
    }
}
