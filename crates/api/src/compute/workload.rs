//! The Workload kind: what to run (an instance template) and where (placements).
//!
//! Users write Workloads; the control plane makes one WorkloadDeployment per placement and
//! Location and rolls their counts up into the Workload's status.
//!
//! ```
//! use datum_api::compute::Workload;
//!
//! let workload: Workload = serde_yaml::from_str(r#"
//! apiVersion: compute.datumapis.com/v1alpha
//! kind: Workload
//! metadata: { name: web }
//! spec:
//!   template:
//!     spec:
//!       runtime:
//!         resources: { instanceType: datumcloud/d1-standard-2 }
//!         sandbox:
//!           containers: [{ name: web, image: docker.io/library/nginx:1.27 }]
//!       networkInterfaces: [{ network: { name: default } }]
//!   placements:
//!   - name: us
//!     cityCodes: [DFW]
//!     scaleSettings: { minReplicas: 2 }
//! "#).unwrap();
//! assert_eq!(workload.spec.placements[0].scale_settings.min_replicas, 2);
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::gateway::WorkloadGatewayStatus;
use super::placement::WorkloadPlacement;
use super::references::LocationReference;
use super::schema;
use super::template::InstanceTemplateSpec;
use super::validation::limits;

/// What to run and where.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "compute.datumapis.com",
    version = "v1alpha",
    kind = "Workload",
    namespaced,
    status = "WorkloadStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Workload: an instance template and the placements that say where and how many instances run.",
    annotation("discovery.miloapis.com/parent-contexts", "Project"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Available")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Available")].reason"#
    ),
    printcolumn(
        name = "Deployments",
        type_ = "string",
        json_path = ".status.deployments"
    ),
    printcolumn(name = "Replicas", type_ = "string", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Desired",
        type_ = "string",
        json_path = ".status.desiredReplicas"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "string",
        json_path = ".status.currentReplicas"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// What every instance looks like.
    pub template: InstanceTemplateSpec,

    /// Where instances run, and how many; at least one placement.
    #[schemars(length(min = 1, max = limits::PLACEMENTS))]
    pub placements: Vec<WorkloadPlacement>,

    /// Deprecated and ignored: the Workload gateway, removed upstream. Any object is accepted
    /// and kept, so that old manifests apply unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::loose_object")]
    pub gateway: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Observed state of a Workload, rolled up from its WorkloadDeployments.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions: `Available` says whether any placement is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// Number of WorkloadDeployments, including ones being removed.
    pub deployments: i32,

    /// Instances that exist.
    pub replicas: i32,

    /// Instances programmed with the current template.
    pub current_replicas: i32,

    /// Instances wanted.
    pub desired_replicas: i32,

    /// Instances ready.
    pub ready_replicas: i32,

    /// Instances made from the current template, ready or not (newer upstream; absent in
    /// statuses written by older controllers).
    #[serde(default)]
    pub updated_replicas: i32,

    /// The same counts per placement, in spec order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placements: Option<Vec<WorkloadPlacementStatus>>,

    /// Deprecated, never written: status of the Workload gateway, removed upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<WorkloadGatewayStatus>,
}

/// Observed state of one placement.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPlacementStatus {
    /// Name of the placement.
    pub name: String,

    /// Conditions: `Available` says whether any deployment of the placement is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// The Locations the placement currently resolves to (newer upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<LocationReference>>,

    /// Instances that exist.
    pub replicas: i32,

    /// Instances programmed with the current template.
    pub current_replicas: i32,

    /// Instances wanted.
    pub desired_replicas: i32,

    /// Instances ready.
    pub ready_replicas: i32,

    /// Instances made from the current template, ready or not (newer upstream).
    #[serde(default)]
    pub updated_replicas: i32,
}
