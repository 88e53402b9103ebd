//! The Instance kind: one machine (a container sandbox or a VM) in one Location.
//!
//! The control plane creates Instances from a WorkloadDeployment's template, named
//! `<deployment>-<ordinal>`; a provider serving the Instance's Location makes the machine
//! once no scheduling gate is left, and reports `Programmed` and `Running`; the control plane
//! derives `Ready`.
//!
//! The rules tying an instance's parts together live on [`InstanceSpec`]: volume attachments
//! name existing volumes, and a VM's first attachment (its boot disk) is a `disk` volume.
//!
//! A new Instance reads back with three `Unknown`/`Pending` conditions (`Programmed`,
//! `Running`, `Ready`), as upstream: the CRD defaults `status` to [`InstanceStatus::pending`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::{ListMerge, Rule};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::conditions::{self, reasons};
use super::network_interface::InstanceNetworkInterface;
use super::optional_spec::{self, deserialize_missing_as_default};
use super::references::LocationReference;
use super::runtime::InstanceRuntimeSpec;
use super::schema;
use super::validation::limits;
use super::volume::InstanceVolume;

/// What an instance runs, what it attaches to, and where.
///
/// As an Instance's `spec` it may be absent on the wire (see the `optional_spec` module); it
/// then reads as `InstanceSpec::default()`.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "compute.datumapis.com",
    version = "v1alpha",
    kind = "Instance",
    namespaced,
    status = "InstanceStatus",
    schema = "manual",
    derive = "PartialEq",
    derive = "Default",
    annotation("discovery.miloapis.com/parent-contexts", "Project"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Network IP",
        type_ = "string",
        json_path = ".status.networkInterfaces[0].assignments.networkIP"
    ),
    printcolumn(
        name = "External IP",
        type_ = "string",
        json_path = ".status.networkInterfaces[0].assignments.externalIP"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase", remote = "Self")]
// Plain `JsonSchema` plus a transform rather than `KubeSchema`: `KubeSchema` would copy
// `remote = "Self"` onto its generated structs and leave them dead code.
#[schemars(
    rename = "InstanceSpec",
    description = "What an instance runs, what it attaches to, and where.",
    transform = instance_spec_rules
)]
pub struct InstanceSpec {
    /// What the instance runs.
    pub runtime: InstanceRuntimeSpec,

    /// Network interfaces, at least one.
    #[schemars(length(min = 1, max = limits::NETWORK_INTERFACES))]
    pub network_interfaces: Vec<InstanceNetworkInterface>,

    /// Volumes the containers or VM attach; names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::VOLUMES))]
    pub volumes: Option<Vec<InstanceVolume>>,

    /// The Location the instance runs in; set by the control plane when it creates the
    /// Instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationReference>,

    /// Control-plane state: template hash and scheduling gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<InstanceController>,
}

deserialize_missing_as_default!(InstanceSpec);

/// The rules tying an instance's parts together, and `volumes` as a map keyed by name.
fn instance_spec_rules(schema: &mut Schema) {
    let rules = [
        Rule::new(
            "!has(self.runtime.sandbox) || self.runtime.sandbox.containers.all(c, \
                !has(c.volumeAttachments) || c.volumeAttachments.all(a, \
                    has(self.volumes) && self.volumes.exists(v, v.name == a.name)))",
        )
        .message("every volumeAttachments[].name of a container must name one of the instance's volumes")
        .field_path(".runtime.sandbox.containers"),
        Rule::new(
            "!has(self.runtime.virtualMachine) || self.runtime.virtualMachine.volumeAttachments.all(a, \
                has(self.volumes) && self.volumes.exists(v, v.name == a.name))",
        )
        .message("every volumeAttachments[].name of a virtual machine must name one of the instance's volumes")
        .field_path(".runtime.virtualMachine.volumeAttachments"),
        Rule::new(
            "!has(self.runtime.virtualMachine) || size(self.runtime.virtualMachine.volumeAttachments) == 0 \
                || !has(self.volumes) || self.volumes.all(v, \
                    v.name != self.runtime.virtualMachine.volumeAttachments[0].name || has(v.disk))",
        )
        .message("the first volume attachment of a virtual machine is its boot disk and must name a disk volume")
        .field_path(".runtime.virtualMachine.volumeAttachments"),
    ];
    for rule in rules {
        kube::core::validate(schema, rule).expect("a CEL rule serializes");
    }
    if let Some(volumes) = schema.pointer_mut("/properties/volumes") {
        kube::core::merge_strategy(volumes, ListMerge::Map(vec!["name".into()]).into())
            .expect("a merge strategy serializes");
    }
}

/// What the control plane records on an Instance for the provider.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceController {
    /// Hash of the template the Instance was made from; the provider echoes it in
    /// `status.controller.observedTemplateHash` once applied.
    pub template_hash: String,

    /// Gates that must all be removed before a provider acts on the Instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub scheduling_gates: Option<Vec<SchedulingGate>>,
}

/// A gate holding the provider back, e.g. `Network` until the networks are ready.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingGate {
    /// Name of the gate.
    pub name: String,
}

impl JsonSchema for Instance {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Instance".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let pending = serde_json::to_value(InstanceStatus::pending())
            .expect("the pending Instance status serializes");
        optional_spec::root_schema::<InstanceSpec, InstanceStatus>(
            generator,
            "An Instance: one machine (a container sandbox or a VM) in one Location.",
            Some(pending),
        )
    }
}

/// Observed state of an Instance, written by its provider and the control plane.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions: `Programmed` and `Running` (written by the provider), `Ready` (written by
    /// the control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Option<Vec<Condition>>,

    /// Addresses of each interface, in the order of `spec.networkInterfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interfaces: Option<Vec<InstanceNetworkInterfaceStatus>>,

    /// What the provider has applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<InstanceControllerStatus>,

    /// The platform's identifier for the machine (e.g. `gce://project/zone/name`), written by
    /// the provider.
    #[serde(
        rename = "providerID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_id: Option<String>,

    /// Resource usage the provider last measured; the autoscaler reads it. Absent when the
    /// platform reports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<InstanceUsage>,
}

/// Resource usage of one Instance, as its provider measured it (a Datum extension; upstream
/// has no autoscaler and no usage figures).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceUsage {
    /// CPU in use as a percentage of the CPU the instance type grants (may exceed 100 on
    /// platforms that allow bursting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cpu_utilization: Option<i32>,

    /// Memory in use as a percentage of the memory the instance type grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub memory_utilization: Option<i32>,

    /// CPU in use, e.g. `250m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,

    /// Memory in use, e.g. `128Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,

    /// When the figures were measured; the autoscaler ignores stale ones.
    pub observed_at: Time,
}

impl InstanceStatus {
    /// The status a new Instance reads back with (the CRD's default for `status`):
    /// `Programmed`, `Running` and `Ready` all `Unknown`, reason `Pending`, message
    /// "Waiting for controller", last transition at the Unix epoch.
    pub fn pending() -> Self {
        let condition = |type_: &str| Condition {
            type_: type_.to_owned(),
            status: "Unknown".to_owned(),
            reason: reasons::PENDING.to_owned(),
            message: conditions::WAITING_FOR_CONTROLLER.to_owned(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        };
        Self {
            conditions: Some(vec![
                condition(conditions::PROGRAMMED),
                condition(conditions::RUNNING),
                condition(conditions::READY),
            ]),
            ..Self::default()
        }
    }
}

/// Addresses of one network interface.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceNetworkInterfaceStatus {
    /// The addresses assigned to the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignments: Option<InstanceNetworkInterfaceAssignments>,
}

/// The addresses assigned to a network interface.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceNetworkInterfaceAssignments {
    /// The address inside the network, allocated by the control plane's IPAM: IPv4, or
    /// IPv6 on an IPv6-only network.
    #[serde(rename = "networkIP", default, skip_serializing_if = "Option::is_none")]
    pub network_ip: Option<String>,

    /// The interface's IPv6 address on a dual-stack network (a Datum extension).
    #[serde(
        rename = "networkIPv6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub network_ipv6: Option<String>,

    /// The public address, if the interface has one.
    #[serde(
        rename = "externalIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_ip: Option<String>,
}

/// What the provider has applied to an Instance.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceControllerStatus {
    /// The `spec.controller.templateHash` the machine matches.
    pub observed_template_hash: String,
}
