//! What an instance runs: a sandbox of containers or a virtual machine.
//!
//! Exactly one of `sandbox` and `virtualMachine` is set (upstream's webhook rule, here a CEL
//! rule on create and update). Newer upstream additions accepted here: `runtime.class` (the
//! RuntimeClass to run on), container `command`, `args` and `envFrom`, and an optional
//! `resources.instanceType` (newer upstream defaults it; older required it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::references::LocalSecretReference;
use super::schema;
use super::validation::{dns_label, forbidden, iana_service_name, limits, required};

/// The runtime of an instance: its type and either a sandbox or a virtual machine.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = forbidden(
        "!has(self.sandbox) || !has(self.virtualMachine)",
        "may not be set together with sandbox: an instance has exactly one runtime, sandbox or virtualMachine",
    )
    .field_path(".virtualMachine"),
    validation = required(
        "has(self.sandbox) || has(self.virtualMachine)",
        "an instance needs exactly one runtime: set sandbox or virtualMachine",
    ),
)]
pub struct InstanceRuntimeSpec {
    /// Name of the RuntimeClass to run on; empty means the default class (newer upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub class: Option<String>,

    /// The instance type and extra resource requests.
    pub resources: InstanceRuntimeResources,

    /// Run containers in a managed sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxRuntime>,

    /// Run a virtual machine booted from the first attached volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<VirtualMachineRuntime>,
}

/// The size of an instance.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRuntimeResources {
    /// The instance type, e.g. `datumcloud/d1-standard-2`. Optional since newer upstream,
    /// which then uses the operator's default type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,

    /// Resources beyond what the instance type provides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// Containers run in a managed sandbox.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRuntime {
    /// The containers; names are unique.
    #[schemars(length(min = 1, max = limits::CONTAINERS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub containers: Vec<SandboxContainer>,

    /// Secrets, in the instance's namespace, for pulling the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalSecretReference>>,
}

/// A container in a sandbox.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxContainer {
    /// Name of the container, unique within the sandbox.
    #[schemars(length(max = limits::NAME_LENGTH))]
    #[x_kube(validation = dns_label("container name"))]
    pub name: String,

    /// Fully qualified image reference, e.g. `docker.io/library/nginx:1.27`.
    pub image: String,

    /// Replaces the image's entrypoint (an argv, not a shell string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Replaces the image's arguments; run after `command` if both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Environment variables; names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::env_vars", length(max = limits::ENV))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Option<Vec<EnvVar>>,

    /// Environment variables taken from ConfigMaps and Secrets in the instance's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::env_from")]
    pub env_from: Option<Vec<EnvFromSource>>,

    /// Resource limits and requests of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ContainerResourceRequirements>,

    /// Volumes mounted into the container; each names one of the instance's `volumes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::VOLUMES))]
    pub volume_attachments: Option<Vec<VolumeAttachment>>,

    /// Ports the container listens on; names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::PORTS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub ports: Option<Vec<NamedPort>>,
}

/// Compute resources of a container.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceRequirements {
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// What the container is guaranteed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// A virtual machine booted from the volume of its first attachment.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineRuntime {
    /// Volumes attached to the VM; the first is the boot disk and must be a `disk` volume.
    #[schemars(length(min = 1, max = limits::VOLUMES))]
    pub volume_attachments: Vec<VolumeAttachment>,

    /// Ports the VM listens on; names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::PORTS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub ports: Option<Vec<NamedPort>>,
}

/// A volume attached to a container or VM.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeAttachment {
    /// Name of the volume, one of the instance's `volumes[].name`.
    #[schemars(length(max = limits::NAME_LENGTH))]
    pub name: String,

    /// Where to mount the volume's filesystem. Without it a disk is attached as a block
    /// device. Disk volumes need a filesystem populator to be mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

/// A named port of a container or VM.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamedPort {
    /// Name of the port (an IANA service name, e.g. `http`), for other features to refer to.
    #[schemars(length(max = limits::PORT_NAME_LENGTH))]
    #[x_kube(validation = iana_service_name())]
    pub name: String,

    /// Port number, 1 to 65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// `TCP` (the default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}
