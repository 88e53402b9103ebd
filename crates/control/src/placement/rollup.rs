//! The Workload's status, rolled up from its deployments.
//!
//! Per placement, in spec order: the selected Locations, the summed counters of its
//! deployments, and `Available` (True when one deployment is; `NoMatchingLocation` when the
//! placement selects nothing). The Workload is `Available` when a placement is; otherwise
//! the first placement that matched nothing is named, else `NoAvailablePlacements`.

use datum_api::compute::conditions::{AVAILABLE, reasons};
use datum_api::compute::{
    LocationReference, Workload, WorkloadDeployment, WorkloadPlacementStatus, WorkloadStatus,
};
use datum_api::conditions::{self, ConditionStatus};
use kube::ResourceExt;

use super::desired::PlacementPlan;
use super::selection;

/// The status `workload` should show, given its plans and its current deployments.
pub fn status(
    workload: &Workload,
    plans: &[PlacementPlan],
    deployments: &[WorkloadDeployment],
) -> WorkloadStatus {
    let generation = workload.metadata.generation.unwrap_or_default();
    let previous = workload.status.clone().unwrap_or_default();
    let mut status = WorkloadStatus {
        observed_generation: Some(generation),
        conditions: previous.conditions.clone(),
        gateway: previous.gateway.clone(),
        ..WorkloadStatus::default()
    };
    let mut placements = Vec::new();
    for plan in plans {
        let wanted: Vec<String> = plan.deployments.iter().map(|d| d.name_any()).collect();
        let mine: Vec<&WorkloadDeployment> = deployments
            .iter()
            .filter(|d| wanted.contains(&d.name_any()))
            .collect();
        let previous_conditions = previous
            .placements
            .iter()
            .flatten()
            .find(|p| p.name == plan.placement.name)
            .and_then(|p| p.conditions.clone());
        let placement = placement_status(plan, &mine, previous_conditions, generation);
        status.deployments += wanted.len() as i32;
        status.replicas += placement.replicas;
        status.ready_replicas += placement.ready_replicas;
        status.current_replicas += placement.current_replicas;
        status.updated_replicas += placement.updated_replicas;
        status.desired_replicas += placement.desired_replicas;
        placements.push(placement);
    }
    let available = placements
        .iter()
        .any(|p| conditions::is_true(p.conditions.as_deref().unwrap_or_default(), AVAILABLE));
    let unmatched = plans.iter().find(|plan| plan.locations.is_empty());
    let condition = if available {
        conditions::new(
            AVAILABLE,
            ConditionStatus::True,
            reasons::AVAILABLE_PLACEMENT_FOUND,
            "At least one available placement was found",
            generation,
        )
    } else if let Some(plan) = unmatched {
        conditions::new(
            AVAILABLE,
            ConditionStatus::False,
            reasons::NO_MATCHING_LOCATION,
            format!(
                "placement {:?} matched no ready location: {} selected nothing",
                plan.placement.name,
                selection::describe(&plan.placement)
            ),
            generation,
        )
    } else {
        conditions::new(
            AVAILABLE,
            ConditionStatus::False,
            reasons::NO_AVAILABLE_PLACEMENTS,
            "No available placements were found for the workload",
            generation,
        )
    };
    let mut list = status.conditions.take().unwrap_or_default();
    conditions::set(&mut list, condition);
    status.conditions = Some(list);
    status.placements = Some(placements);
    status
}

fn placement_status(
    plan: &PlacementPlan,
    deployments: &[&WorkloadDeployment],
    previous_conditions: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    generation: i64,
) -> WorkloadPlacementStatus {
    let mut status = WorkloadPlacementStatus {
        name: plan.placement.name.clone(),
        locations: Some(plan.locations.iter().map(LocationReference::new).collect()),
        ..WorkloadPlacementStatus::default()
    };
    let mut any_available = false;
    for deployment in deployments {
        let Some(s) = &deployment.status else {
            continue;
        };
        status.replicas += s.replicas;
        status.ready_replicas += s.ready_replicas;
        status.current_replicas += s.current_replicas;
        status.updated_replicas += s.updated_replicas;
        status.desired_replicas += s.desired_replicas;
        any_available |=
            conditions::is_true(s.conditions.as_deref().unwrap_or_default(), AVAILABLE);
    }
    let condition = if any_available {
        conditions::new(
            AVAILABLE,
            ConditionStatus::True,
            reasons::AVAILABLE_DEPLOYMENT_FOUND,
            "At least one available deployment was found",
            generation,
        )
    } else if plan.locations.is_empty() {
        conditions::new(
            AVAILABLE,
            ConditionStatus::False,
            reasons::NO_MATCHING_LOCATION,
            format!(
                "{} selected no ready location",
                selection::describe(&plan.placement)
            ),
            generation,
        )
    } else {
        conditions::new(
            AVAILABLE,
            ConditionStatus::False,
            reasons::NO_AVAILABLE_DEPLOYMENTS,
            "No available deployments were found for the placement",
            generation,
        )
    };
    let mut list = previous_conditions.unwrap_or_default();
    conditions::set(&mut list, condition);
    status.conditions = Some(list);
    status
}
