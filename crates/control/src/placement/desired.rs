//! The WorkloadDeployments a Workload should have: one per placement × selected Location.
//!
//! Names are `<workload>-<placement>-<location>`; when two pairs would produce the same name
//! (`a`+`b-c` and `a-b`+`c`), the first in spec order wins and the other is reported in the
//! placement's resolution as a collision, never fought over (quirk Q6).

use std::collections::BTreeSet;

use datum_api::compute::{
    HorizontalScaleSettings, LocationReference, Workload, WorkloadDeployment,
    WorkloadDeploymentSpec, WorkloadPlacement, WorkloadReference, labels,
};
use datum_api::networking::Location;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::selection;
use crate::label_values::insert_name;

/// What one placement resolved to.
#[derive(Clone, Debug)]
pub struct PlacementPlan {
    pub placement: WorkloadPlacement,
    /// Selected Location names, sorted.
    pub locations: Vec<String>,
    /// The deployments this placement should have.
    pub deployments: Vec<WorkloadDeployment>,
}

/// The name of the deployment of `placement` in `location`.
pub fn deployment_name(workload: &str, placement: &str, location: &str) -> String {
    format!("{workload}-{placement}-{location}")
}

/// Whether the autoscaler, not the placement, sets the deployment's `spec.replicas`.
pub fn is_autoscaled(scale: &HorizontalScaleSettings) -> bool {
    scale.max_replicas.is_some() && scale.metrics.as_ref().is_some_and(|m| !m.is_empty())
}

/// One plan per placement, in spec order.
pub fn plan(workload: &Workload, locations: &[Location]) -> Vec<PlacementPlan> {
    let mut taken = BTreeSet::new();
    workload
        .spec
        .placements
        .iter()
        .map(|placement| {
            let selected = selection::select(placement, locations);
            let deployments = selected
                .iter()
                .filter_map(|location| {
                    let deployment = desired_deployment(workload, placement, &location.name_any());
                    taken.insert(deployment.name_any()).then_some(deployment)
                })
                .collect();
            PlacementPlan {
                placement: placement.clone(),
                locations: selected.iter().map(|l| l.name_any()).collect(),
                deployments,
            }
        })
        .collect()
}

fn desired_deployment(
    workload: &Workload,
    placement: &WorkloadPlacement,
    location: &str,
) -> WorkloadDeployment {
    let uid = workload.uid().unwrap_or_default();
    let name = deployment_name(&workload.name_any(), &placement.name, location);
    let mut labels =
        std::collections::BTreeMap::from([(labels::WORKLOAD_UID.to_owned(), uid.clone())]);
    insert_name(&mut labels, labels::WORKLOAD_NAME, &workload.name_any());
    insert_name(&mut labels, labels::PLACEMENT_NAME, &placement.name);
    WorkloadDeployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: workload.namespace(),
            labels: Some(labels),
            owner_references: crate::ownership::controller_reference(workload)
                .map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: WorkloadDeploymentSpec {
            workload_ref: WorkloadReference {
                name: workload.name_any(),
                uid,
            },
            placement_name: placement.name.clone(),
            city_code: None,
            location_ref: Some(LocationReference::new(location)),
            replicas: Some(placement.scale_settings.min_replicas),
            template: workload.spec.template.clone(),
            scale_settings: placement.scale_settings.clone(),
        },
        status: None,
    }
}

/// The spec `existing` should have: `desired`'s, but keeping the autoscaler's
/// `spec.replicas` (clamped into the current bounds) when the placement is autoscaled.
pub fn merged_spec(
    desired: &WorkloadDeploymentSpec,
    existing: &WorkloadDeploymentSpec,
) -> WorkloadDeploymentSpec {
    let mut spec = desired.clone();
    let scale = &desired.scale_settings;
    if is_autoscaled(scale)
        && let Some(current) = existing.replicas
    {
        let max = scale
            .max_replicas
            .unwrap_or(scale.min_replicas)
            .max(scale.min_replicas);
        spec.replicas = Some(current.clamp(scale.min_replicas, max));
    }
    spec
}
