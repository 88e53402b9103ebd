//! The WorkloadDeployment kind: one placement of a Workload in one Location.
//!
//! The control plane makes one per placement and Location, named
//! `<workload>-<placement>-<location or city code>`, and keeps `spec.replicas` Instances of
//! its template. Users normally never write one.
//!
//! Older and newer upstream differ here; we accept both shapes:
//! - where it runs: older upstream sets `spec.cityCode` and has a scheduler fill
//!   `status.location`; newer upstream sets `spec.locationRef` at creation. Our controllers
//!   write `spec.locationRef`; `cityCode` and `status.location` are kept, optional, so
//!   older objects still validate.
//! - `spec.replicas` (newer upstream) is the current target, written by the autoscaler through
//!   the `scale` subresource (`kubectl scale` works too); unset means
//!   `scaleSettings.minReplicas`. `status.selector` selects the deployment's Instances
//!   (`compute.datumapis.com/workload-deployment-uid=<uid>`), for the scale subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::optional_spec::{self, deserialize_missing_as_default};
use super::references::{LocationReference, WorkloadReference};
use super::scale::HorizontalScaleSettings;
use super::schema;
use super::template::InstanceTemplateSpec;

/// One placement of a Workload in one Location.
///
/// May be absent on the wire (see the `optional_spec` module); it then reads as
/// `WorkloadDeploymentSpec::default()`.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "compute.datumapis.com",
    version = "v1alpha",
    kind = "WorkloadDeployment",
    namespaced,
    status = "WorkloadDeploymentStatus",
    schema = "manual",
    derive = "PartialEq",
    derive = "Default",
    annotation("discovery.miloapis.com/parent-contexts", "Project"),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
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
    ),
    printcolumn(
        name = "Location Namespace",
        type_ = "string",
        json_path = ".status.location.namespace",
        priority = 1
    ),
    printcolumn(
        name = "Location Name",
        type_ = "string",
        json_path = ".status.location.name",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase", remote = "Self")]
#[schemars(
    rename = "WorkloadDeploymentSpec",
    description = "One placement of a Workload in one Location."
)]
pub struct WorkloadDeploymentSpec {
    /// The Workload this deployment belongs to.
    pub workload_ref: WorkloadReference,

    /// The placement that produced it.
    pub placement_name: String,

    /// Older upstream: the city code (as written in the Workload) the deployment runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city_code: Option<String>,

    /// The Location the deployment runs in, set at creation (newer upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_ref: Option<LocationReference>,

    /// How many Instances to run now; unset means `scaleSettings.minReplicas`. The target
    /// of the `scale` subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// The Workload's instance template, copied verbatim.
    pub template: InstanceTemplateSpec,

    /// The placement's scale settings, copied verbatim.
    pub scale_settings: HorizontalScaleSettings,
}

deserialize_missing_as_default!(WorkloadDeploymentSpec);

impl JsonSchema for WorkloadDeployment {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WorkloadDeployment".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        optional_spec::root_schema::<WorkloadDeploymentSpec, WorkloadDeploymentStatus>(
            generator,
            "A WorkloadDeployment: one placement of a Workload in one Location.",
            None,
        )
    }
}

/// Observed state of a WorkloadDeployment.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadDeploymentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Older upstream: the Location its scheduler bound the deployment to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationReference>,

    /// Conditions: `Available` says whether any Instance is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// Instances that exist (the scale subresource's status replicas).
    pub replicas: i32,

    /// Instances programmed with the current template.
    pub current_replicas: i32,

    /// Instances wanted: `spec.replicas`, or `scaleSettings.minReplicas` when unset.
    pub desired_replicas: i32,

    /// Instances ready.
    pub ready_replicas: i32,

    /// Instances made from the current template, ready or not (newer upstream).
    #[serde(default)]
    pub updated_replicas: i32,

    /// Label selector of the deployment's Instances, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}
