//! `local.provider.datum.net/v1alpha1` ProviderConfig: how the local provider runs instances
//! on the Linux host it is on (containers under containerd, VMs under QEMU, one network
//! namespace per instance).
//!
//! ```yaml
//! apiVersion: local.provider.datum.net/v1alpha1
//! kind: ProviderConfig
//! metadata: { name: default }
//! spec:
//!   stateDir: /var/lib/datum/local
//!   imageMap:
//!     datumcloud/ubuntu-2204-lts: /var/lib/datum/images/ubuntu-2204-lts.qcow2
//!   registries:
//!     - host: 127.0.0.1:5000
//!       insecure: true
//! ```
//!
//! Everything has a default except the image library, so an empty `spec: {}` is a working
//! configuration for container workloads. Decisions:
//! - **Paths are absolute** (CEL): the provider runs as a daemon whose working directory
//!   means nothing to the person writing the config.
//! - **Storage classes** map a class name to a directory and an image format (`raw` for
//!   speed, `qcow2` for thin provisioning). `local-ssd` and `local-standard` must always
//!   exist (CEL) because defaults elsewhere name them; `diskTypes` says which canonical disk
//!   `type`s (e.g. `pd-standard`) a class serves.
//! - **Registries**: `insecure` (plain HTTP or unverified TLS) is allowed only for loopback
//!   registries such as a `docker-registry` on `127.0.0.1:5000`; mirrors must be `https` unless
//!   they are on loopback too; auth is a Secret reference (a `.dockerconfigjson` key).
//! - **Instance types** size instances by CPU and memory quantities; the default
//!   `datumcloud/d1-standard-2` matches GCP's `n2-standard-2` (2 vCPU, 8Gi).
//! - The containerd defaults are the host's standard socket and namespace `datum`, snapshotter
//!   `overlayfs`, runtime `io.containerd.runc.v2` (see `spec/local-runtime.md`).

use super::{ProviderConfigStatus, SecretKeyRef, map_of, quantity, string_map};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The standard storage class, which every config has.
pub const STORAGE_CLASS_STANDARD: &str = "local-standard";
/// The fast storage class, which every config has.
pub const STORAGE_CLASS_SSD: &str = "local-ssd";

/// How the local provider runs instances on its host.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Each `printcolumn(...)` repeats keys such as `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "local.provider.datum.net",
    version = "v1alpha1",
    kind = "ProviderConfig",
    status = "ProviderConfigStatus",
    derive = "PartialEq",
    doc = "Settings the local provider uses to run containers and VMs on its host: directories, images, storage classes, registries, containerd and instance sizes.",
    printcolumn(name = "State Dir", type_ = "string", json_path = ".spec.stateDir"),
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// Where the provider keeps its state (instance records, disks unless a storage class
    /// says otherwise, logs). Defaults to `/var/lib/datum/local`.
    #[serde(default = "default_state_dir")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("stateDir must be an absolute path"))]
    pub state_dir: String,

    /// The image library: Datum image name (e.g. `datumcloud/ubuntu-2204-lts`) → absolute
    /// path of a disk image file on the host.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map::<256, 4096>")]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253 && self[k].startsWith('/'))")
        .message("imageMap must map image names (at most 253 characters) to absolute file paths"))]
    pub image_map: BTreeMap<String, String>,

    /// Storage classes by name. Must include `local-ssd` and `local-standard`.
    #[serde(default = "default_storage_classes")]
    #[schemars(schema_with = "map_of::<StorageClass, 16>")]
    #[x_kube(validation = Rule::new("'local-ssd' in self && 'local-standard' in self")
        .message("storageClasses must define local-ssd and local-standard"))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 63)").message("storageClasses names must be at most 63 characters"))]
    pub storage_classes: BTreeMap<String, StorageClass>,

    /// Container registries: mirrors, loopback registries without TLS, credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["host".into()]))]
    pub registries: Vec<Registry>,

    /// How to reach containerd.
    #[serde(default)]
    pub containerd: Containerd,

    /// Host networking settings.
    #[serde(default)]
    pub network: Network,

    /// Datum instance type → CPU and memory given to each instance of that type.
    #[serde(default = "default_instance_types")]
    #[schemars(schema_with = "map_of::<InstanceTypeResources, 64>")]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253)").message("instanceTypes names must be at most 253 characters"))]
    pub instance_types: BTreeMap<String, InstanceTypeResources>,
}

/// Where disks of one class live and in which format.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageClass {
    /// The directory disk files are created in. Defaults to `<stateDir>/disks/<class name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("storageClasses[].directory must be an absolute path"))]
    pub directory: Option<String>,

    /// The disk image format: `raw` or `qcow2`.
    pub format: DiskFormat,

    /// Canonical disk types (`volumes[].disk.template.spec.type`, e.g. `pd-standard`) this
    /// class serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub disk_types: Vec<String>,
}

/// A disk image file format.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// A plain file, as fast as the filesystem under it.
    Raw,
    /// QEMU copy-on-write: thin-provisioned, can be backed by an image.
    Qcow2,
}

/// One container registry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.insecure) || !self.insecure || self.host.matches('^(localhost|127[.][0-9]+[.][0-9]+[.][0-9]+|\\\\[::1\\\\])(:[0-9]+)?$')")
    .message("registries[].insecure is only allowed for loopback registries (localhost, 127.0.0.0/8 or [::1])"))]
pub struct Registry {
    /// The registry host as it appears in image references, with an optional port, e.g.
    /// `docker.io`, `ghcr.io` or `127.0.0.1:5000`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*|\\\\[[0-9a-fA-F:.]+\\\\])(:[0-9]{1,5})?$')")
        .message("registries[].host must be a registry host name with an optional port, e.g. ghcr.io or 127.0.0.1:5000"))]
    pub host: String,

    /// Mirrors tried in order before the registry itself, as base URLs, e.g.
    /// `https://mirror.example.com`. `http` only for loopback mirrors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 2048)))]
    #[x_kube(validation = Rule::new("self.all(m, isURL(m) && url(m).getHostname() != '' && (url(m).getScheme() == 'https' || (url(m).getScheme() == 'http' && (url(m).getHostname() in ['localhost', '::1'] || url(m).getHostname().startsWith('127.')))))")
        .message("registries[].mirrors must be https URLs, or http URLs to localhost, 127.0.0.0/8 or [::1]"))]
    pub mirrors: Vec<String>,

    /// Talk plain HTTP (or HTTPS without verifying the certificate). Loopback hosts only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,

    /// Credentials for pulling: a Secret key holding a `.dockerconfigjson` document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,
}

/// How to reach containerd.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Containerd {
    /// The containerd socket. Defaults to `/run/containerd/containerd.sock`.
    #[serde(default = "default_containerd_socket")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("containerd.socket must be an absolute path"))]
    pub socket: String,

    /// The containerd namespace the provider's images and containers live in. Defaults to
    /// `datum`.
    #[serde(default = "default_containerd_namespace")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9]([-._a-zA-Z0-9]*[a-zA-Z0-9])?$')")
        .message("containerd.namespace must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))]
    pub namespace: String,

    /// The snapshotter that unpacks images. Defaults to `overlayfs`.
    #[serde(default = "default_snapshotter")]
    #[schemars(length(min = 1, max = 63))]
    pub snapshotter: String,

    /// The OCI runtime shim. Defaults to `io.containerd.runc.v2`.
    #[serde(default = "default_runtime")]
    #[schemars(length(min = 1, max = 253))]
    pub runtime: String,
}

impl Default for Containerd {
    fn default() -> Self {
        Self {
            socket: default_containerd_socket(),
            namespace: default_containerd_namespace(),
            snapshotter: default_snapshotter(),
            runtime: default_runtime(),
        }
    }
}

/// Host networking settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Prefix of every network namespace the provider creates (its own host namespace and one
    /// per instance), so they are easy to find and never collide with others. Defaults to
    /// `datum-`.
    #[serde(default = "default_namespace_prefix")]
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z][-a-z0-9]*$')")
        .message("network.namespacePrefix must be lowercase letters, digits and '-', starting with a letter, at most 16 characters"))]
    pub namespace_prefix: String,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            namespace_prefix: default_namespace_prefix(),
        }
    }
}

/// CPU and memory for one instance type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeResources {
    /// CPUs, e.g. `2` or `500m`.
    #[schemars(schema_with = "quantity")]
    pub cpu: Quantity,

    /// Memory, e.g. `8Gi`.
    #[schemars(schema_with = "quantity")]
    pub memory: Quantity,
}

fn default_state_dir() -> String {
    "/var/lib/datum/local".to_owned()
}

fn default_containerd_socket() -> String {
    "/run/containerd/containerd.sock".to_owned()
}

fn default_containerd_namespace() -> String {
    "datum".to_owned()
}

fn default_snapshotter() -> String {
    "overlayfs".to_owned()
}

fn default_runtime() -> String {
    "io.containerd.runc.v2".to_owned()
}

fn default_namespace_prefix() -> String {
    "datum-".to_owned()
}

/// `local-ssd` (raw files, serving `pd-ssd`) and `local-standard` (qcow2, serving
/// `pd-standard` and `pd-balanced`), both under `<stateDir>/disks/`.
pub fn default_storage_classes() -> BTreeMap<String, StorageClass> {
    let class = |format, disk_types: &[&str]| StorageClass {
        directory: None,
        format,
        disk_types: disk_types.iter().map(|t| (*t).to_owned()).collect(),
    };
    BTreeMap::from([
        (
            STORAGE_CLASS_SSD.to_owned(),
            class(DiskFormat::Raw, &["pd-ssd"]),
        ),
        (
            STORAGE_CLASS_STANDARD.to_owned(),
            class(DiskFormat::Qcow2, &["pd-standard", "pd-balanced"]),
        ),
    ])
}

/// `datumcloud/d1-standard-2`: 2 CPUs and 8Gi, like GCP's `n2-standard-2`.
pub fn default_instance_types() -> BTreeMap<String, InstanceTypeResources> {
    BTreeMap::from([(
        "datumcloud/d1-standard-2".to_owned(),
        InstanceTypeResources {
            cpu: Quantity("2".to_owned()),
            memory: Quantity("8Gi".to_owned()),
        },
    )])
}
