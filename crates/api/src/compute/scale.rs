//! How many instances a placement runs, and how the count changes.
//!
//! `minReplicas` is the count a deployment keeps; with `maxReplicas` and `metrics` the
//! autoscaler moves a WorkloadDeployment's `spec.replicas` between the two (upstream has the
//! fields but no autoscaler). `instanceManagementPolicy` says whether instances are created,
//! updated and deleted one at a time (`OrderedReady`) or all at once (`Parallel`).
//!
//! Differences from upstream, all deliberate:
//! - `minReplicas` must be 0..=1000 (upstream's webhook: 1..=1000, on create only). Zero
//!   pauses a placement without deleting it — the short form's `replicas: 0` maps onto it.
//! - `maxReplicas >= minReplicas`, and `metrics` only together with `maxReplicas` (upstream
//!   checked neither; its autoscaling design asks for both). `maxReplicas` still requires
//!   `metrics`, as upstream.
//! - metric resources may be `cpu` **or `memory`** (upstream: `cpu` only).
//! - `instanceManagementPolicy` is an enum, `OrderedReady` (the default) or `Parallel`
//!   (upstream: a free string of which only `OrderedReady` did anything).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{forbidden, required};

/// Replica count and autoscaling bounds of a placement (copied onto its WorkloadDeployments).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.maxReplicas) || self.maxReplicas >= self.minReplicas")
        .message("maxReplicas must be greater than or equal to minReplicas")
        .field_path(".maxReplicas"),
    validation = required(
        "!has(self.maxReplicas) || (has(self.metrics) && size(self.metrics) > 0)",
        "metrics are required when maxReplicas is set: they tell the autoscaler when to add or remove instances",
    )
    .field_path(".metrics"),
    validation = forbidden(
        "has(self.maxReplicas) || !has(self.metrics) || size(self.metrics) == 0",
        "metrics may only be set together with maxReplicas",
    )
    .field_path(".metrics"),
)]
pub struct HorizontalScaleSettings {
    /// The number of instances to keep running (0 to 1000; 0 pauses the placement); the
    /// autoscaler never goes below.
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,

    /// The most instances the autoscaler may run. Requires `metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,

    /// What the autoscaler watches; only allowed together with `maxReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,

    /// How instances are created, updated and deleted.
    #[serde(default)]
    pub instance_management_policy: InstanceManagementPolicy,
}

impl Default for HorizontalScaleSettings {
    /// One instance, no autoscaling, ordered rollout.
    fn default() -> Self {
        Self {
            min_replicas: 1,
            max_replicas: None,
            metrics: None,
            instance_management_policy: InstanceManagementPolicy::default(),
        }
    }
}

/// How a deployment's instances are created, updated and deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InstanceManagementPolicy {
    /// One instance at a time, like a StatefulSet: create in ascending ordinal order, each
    /// after the previous is ready; update and delete from the highest ordinal down.
    #[default]
    OrderedReady,
    /// All instances at once, without waiting for readiness.
    Parallel,
}

/// A metric the autoscaler scales on.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = required(
    "has(self.resource)",
    "resource is required: only resource metrics (cpu or memory) are supported",
)
.field_path(".resource"))]
pub struct MetricSpec {
    /// A resource metric (CPU or memory) of the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
}

/// A resource metric of the instances and its target.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    /// The resource: `cpu` or `memory`.
    pub name: ResourceMetricName,
    /// The value to keep the metric at.
    pub target: MetricTarget,
}

/// A resource the autoscaler can measure.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceMetricName {
    /// CPU usage.
    #[serde(rename = "cpu")]
    Cpu,
    /// Memory usage.
    #[serde(rename = "memory")]
    Memory,
}

/// The target of a metric: exactly one of the three fields.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(has(self.value) ? 1 : 0) + (has(self.averageValue) ? 1 : 0) + (has(self.averageUtilization) ? 1 : 0) == 1"
).message("exactly one of value, averageValue or averageUtilization must be set"))]
pub struct MetricTarget {
    /// Target value of the metric summed over the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// Target value of the metric averaged over the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Target average, as a percentage of what the instances' type provides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}
