//! The WorkloadDeployment's status, counted from its Instances.
//!
//! `replicas` counts the Instances, `readyReplicas` the `Ready` ones, `updatedReplicas`
//! those whose provider reports the current template (`status.controller.observedTemplateHash`),
//! `currentReplicas` the updated ones that are also `Programmed`, and `desiredReplicas`
//! is `spec.replicas` (or `minReplicas`). `Available` is True with a ready Instance.

use datum_api::compute::conditions::{AVAILABLE, PROGRAMMED, READY, reasons};
use datum_api::compute::{Instance, WorkloadDeployment, WorkloadDeploymentStatus, labels};
use datum_api::conditions::{self, ConditionStatus};
use kube::ResourceExt;

/// The replicas the deployment should run.
pub fn desired_replicas(deployment: &WorkloadDeployment) -> i32 {
    deployment
        .spec
        .replicas
        .unwrap_or(deployment.spec.scale_settings.min_replicas)
        .max(0)
}

/// The status `deployment` should show, given its Instances and template hash.
pub fn status(
    deployment: &WorkloadDeployment,
    instances: &[Instance],
    hash: &str,
) -> WorkloadDeploymentStatus {
    let generation = deployment.metadata.generation.unwrap_or_default();
    let previous = deployment.status.clone().unwrap_or_default();
    let conditions_of = |i: &Instance| {
        i.status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
    };
    let updated = |i: &Instance| {
        i.status
            .as_ref()
            .and_then(|s| s.controller.as_ref())
            .is_some_and(|c| c.observed_template_hash == hash)
    };
    let replicas = instances.len() as i32;
    let ready = instances
        .iter()
        .filter(|i| conditions::is_true(&conditions_of(i), READY))
        .count() as i32;
    let updated_count = instances.iter().filter(|i| updated(i)).count() as i32;
    let current = instances
        .iter()
        .filter(|i| updated(i) && conditions::is_true(&conditions_of(i), PROGRAMMED))
        .count() as i32;
    let desired = desired_replicas(deployment);
    let condition = if ready > 0 {
        conditions::new(
            AVAILABLE,
            ConditionStatus::True,
            reasons::STABLE_INSTANCE_FOUND,
            format!("{ready}/{replicas} instances are ready"),
            generation,
        )
    } else if desired == 0 && replicas == 0 {
        conditions::new(
            AVAILABLE,
            ConditionStatus::False,
            reasons::INSTANCES_PROVISIONING,
            "No instances are desired",
            generation,
        )
    } else {
        conditions::new(
            AVAILABLE,
            ConditionStatus::False,
            reasons::INSTANCES_PROVISIONING,
            "Instances are being provisioned",
            generation,
        )
    };
    let mut list = previous.conditions.clone().unwrap_or_default();
    conditions::set(&mut list, condition);
    WorkloadDeploymentStatus {
        observed_generation: Some(generation),
        location: super::build::location(deployment),
        conditions: Some(list),
        replicas,
        current_replicas: current,
        desired_replicas: desired,
        ready_replicas: ready,
        updated_replicas: updated_count,
        selector: Some(format!(
            "{}={}",
            labels::WORKLOAD_DEPLOYMENT_UID,
            deployment.uid().unwrap_or_default()
        )),
    }
}
