//! The short-form Workload, `workload.datum.net/v1alpha1`: the shape shown in Datum's product
//! docs, for people who want "run this image, three times, on GCP" without writing a
//! canonical [`compute`](crate::compute) Workload.
//!
//! ```yaml
//! apiVersion: workload.datum.net/v1alpha1
//! kind: Workload
//! metadata: { name: my-app, namespace: my-project }
//! spec:
//!   template:
//!     spec:
//!       containers:
//!         - name: app
//!           image: gcr.io/my-project/my-app:v1.0
//!   placement:
//!     providers: [gcp]
//!     regions: [us-central1]
//!   replicas: 3
//! ```
//!
//! The short-form controller expands each object into one canonical
//! `compute.datumapis.com/v1alpha` Workload of the same name and namespace (owned by this
//! object) and mirrors its status back here:
//!
//! | short form | canonical Workload |
//! |---|---|
//! | `template.metadata` | `template.metadata` |
//! | `template.spec.containers` | `template.spec.runtime.sandbox.containers` |
//! | `template.spec.virtualMachine.image` | a boot disk volume populated from that image, attached to `runtime.virtualMachine` |
//! | `template.spec.virtualMachine.sshKeys` | the `compute.datumapis.com/ssh-keys` template annotation |
//! | `template.spec.instanceType` | `template.spec.runtime.resources.instanceType` (operator default when unset) |
//! | `template.spec.networks` | one `networkInterfaces[]` entry per network |
//! | `placement` | one placement named `default` selecting the Ready Locations whose `spec.provider` key is in `providers` (and whose region is in `regions`, when set) |
//! | `replicas` | that placement's `scaleSettings.minReplicas` |
//!
//! Decisions, so readers need not rediscover them:
//! - **`replicas` counts instances per selected Location**, like the canonical
//!   `minReplicas`; it defaults to 1 and may be 0..=1000. Zero keeps the Workload and its
//!   placement but runs nothing, the way `kubectl scale --replicas=0` pauses a Deployment.
//!   The `scale` subresource points at it, so `kubectl scale` works.
//! - **Exactly one of `containers` or `virtualMachine`**, checked by a CEL rule on
//!   `template.spec` — never by a webhook that may be down.
//! - Every rule that iterates or matches carries a `maxItems`/`maxLength` bound so the API
//!   server's CEL cost estimate stays under its limit and the CRD installs.
//! - The short form deliberately has no volumes, network policy or autoscaling: whoever needs
//!   those writes the canonical Workload.

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

/// The CRDs of this module's kinds.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Workload::crd()]
}

/// What to run, where, and how many: the short form of a Datum Workload.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Each `printcolumn(...)` repeats keys such as `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "workload.datum.net",
    version = "v1alpha1",
    kind = "Workload",
    namespaced,
    status = "WorkloadStatus",
    derive = "PartialEq",
    doc = "A Workload in the short form of Datum's product docs: containers or a VM, the providers and regions to run on, and a replica count. Expanded into a canonical compute.datumapis.com Workload.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        description = "Desired instances per location",
        json_path = ".spec.replicas"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        description = "Instances that are ready",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        description = "Instances running the current template",
        json_path = ".status.updatedReplicas"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Available")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = r#".status.conditions[?(@.type=="Available")].reason"#
    ),
    printcolumn(
        name = "Providers",
        type_ = "string",
        priority = 1,
        json_path = ".spec.placement.providers"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// What every instance runs.
    pub template: WorkloadTemplate,

    /// Where the instances run.
    pub placement: Placement,

    /// Instances per selected location, 0 to 1000. Defaults to 1.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000").message("replicas must be between 0 and 1000"))]
    pub replicas: i32,
}

fn default_replicas() -> i32 {
    1
}

/// The instance template: optional labels and annotations, and the instance spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTemplate {
    /// Labels and annotations copied onto every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,

    /// What each instance runs.
    pub spec: WorkloadTemplateSpec,
}

/// Labels and annotations for every instance of the Workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels set on every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations set on every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One instance: either a set of containers (a sandbox) or a virtual machine.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.containers) != has(self.virtualMachine)")
    .message("exactly one of template.spec.containers or template.spec.virtualMachine must be set"))]
pub struct WorkloadTemplateSpec {
    /// Containers run together in one sandbox. Mutually exclusive with `virtualMachine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub containers: Option<Vec<Container>>,

    /// A virtual machine booted from a Datum image. Mutually exclusive with `containers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<VirtualMachine>,

    /// The Datum instance type, e.g. `datumcloud/d1-standard-2`. When unset the operator's
    /// default instance type is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub instance_type: Option<String>,

    /// Names of the Networks (in the Workload's namespace) each instance attaches to, one
    /// interface per network, in order. Defaults to the `default` network.
    #[serde(default = "default_networks")]
    #[schemars(length(min = 1, max = 8), inner(length(max = 253)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))")
        .message("template.spec.networks entries must be Network names (DNS subdomains)"))]
    pub networks: Vec<String>,
}

fn default_networks() -> Vec<String> {
    vec!["default".to_owned()]
}

/// Neither containers nor a VM yet (set one), on the `default` network.
impl Default for WorkloadTemplateSpec {
    fn default() -> Self {
        Self {
            containers: None,
            virtual_machine: None,
            instance_type: None,
            networks: default_networks(),
        }
    }
}

/// One container of a sandbox instance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Unique within the instance; a DNS label.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("containers[].name must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    pub name: String,

    /// A registry-qualified image reference, e.g. `ghcr.io/acme/app:v1`.
    #[schemars(length(min = 1, max = 4096))]
    pub image: String,

    /// Replaces the image's ENTRYPOINT (an argv, not a shell string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Replaces the image's CMD; with `command`, the invocation is command then args.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Environment variables, as in a Kubernetes container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Option<Vec<EnvVar>>,

    /// Ports the container listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub ports: Option<Vec<Port>>,
}

/// A named port an instance listens on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// An IANA service name: at most 15 lowercase letters, digits and '-', with at least
    /// one letter, e.g. `http`.
    #[schemars(length(min = 1, max = 15))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.matches('[a-z]') && !self.contains('--')")
        .message("ports[].name must be an IANA service name: lowercase letters, digits and single '-', at least one letter, at most 15 characters"))]
    pub name: String,

    /// The port number, 1 to 65535.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("ports[].port must be between 1 and 65535"))]
    pub port: i32,

    /// `TCP` (the default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A transport protocol, spelled as Kubernetes spells it.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// A virtual machine booted from a Datum image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    /// The Datum image the boot disk is populated from, e.g. `datumcloud/ubuntu-2204-lts`.
    /// Each provider maps image names to its own images (see its ProviderConfig `imageMap`).
    #[schemars(length(min = 1, max = 253))]
    pub image: String,

    /// SSH public keys installed for login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub ssh_keys: Vec<SshKey>,

    /// Ports the VM listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub ports: Option<Vec<Port>>,
}

/// One SSH public key for one user of a VM.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SshKey {
    /// The login name, e.g. `ubuntu`.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z_][a-z0-9_-]*$')")
        .message("sshKeys[].username must be a Linux user name: lowercase letters, digits, '_' and '-', not starting with a digit or '-'"))]
    pub username: String,

    /// One OpenSSH public key line, e.g. `ssh-ed25519 AAAA... me@laptop`.
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.matches('^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh[.]com) [A-Za-z0-9+/]+={0,3}( [^\\n]*)?$')")
        .message("sshKeys[].publicKey must be a single OpenSSH public key line, e.g. 'ssh-ed25519 AAAA... me@laptop'"))]
    pub public_key: String,
}

/// Where the instances run: every Ready Location served by one of `providers` (and in one
/// of `regions`, when set).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Provider names, as the key of a Location's `spec.provider` (`gcp`, `local`, `sim`, or a
    /// custom provider's name).
    #[schemars(length(max = 16), inner(length(max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[x_kube(validation = Rule::new("size(self) > 0").message("placement.providers must name at least one provider, e.g. gcp"))]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("placement.providers entries must be DNS labels (lowercase letters, digits and '-'), e.g. gcp"))]
    pub providers: Vec<String>,

    /// Regions to run in, e.g. `us-central1`. When unset, every region of the providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), inner(length(max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[x_kube(validation = Rule::new("self.all(r, r.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("placement.regions entries must be DNS labels (lowercase letters, digits and '-'), e.g. us-central1"))]
    pub regions: Option<Vec<String>>,
}

/// Observed state, mirrored from the canonical Workload.
///
/// Conditions: `Available` is copied from the canonical Workload (same reasons, e.g.
/// `NoAvailablePlacements`); the short-form controller reports problems of its own (the
/// canonical Workload could not be written) on `Available` too, with its own reason.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The generation of this object the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The canonical `compute.datumapis.com` Workload this one expands into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadReference>,

    /// Instances that exist, in all locations.
    #[serde(default)]
    pub replicas: i32,

    /// Instances the placement asks for, in all locations.
    #[serde(default)]
    pub desired_replicas: i32,

    /// Instances running the current template, ready or not.
    #[serde(default)]
    pub updated_replicas: i32,

    /// Instances that are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Conditions, one per type, each with the `observedGeneration` it was written for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Names the canonical Workload, in this object's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReference {
    /// The canonical Workload's name.
    pub name: String,
}
