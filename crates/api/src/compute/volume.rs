//! Volumes an instance's containers or VM attach: a disk, a ConfigMap or a Secret.
//!
//! Exactly one source per volume (upstream's webhook rule, here a CEL rule). Volume names are
//! DNS labels and unique (the list is a map keyed by `name`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, SecretVolumeSource};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;
use super::template::TemplateMetadata;
use super::validation::{dns_label, forbidden, limits, required};

/// A volume and its source.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = forbidden(
        "(has(self.disk) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) <= 1",
        "may not specify more than 1 volume source: set one of disk, configMap or secret",
    ),
    validation = required(
        "has(self.disk) || has(self.configMap) || has(self.secret)",
        "must specify a volume source: one of disk, configMap or secret",
    ),
)]
pub struct InstanceVolume {
    /// Name of the volume, unique within the instance; attachments refer to it.
    #[schemars(length(max = limits::NAME_LENGTH))]
    #[x_kube(validation = dns_label("volume name"))]
    pub name: String,

    /// A disk created for each instance from a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskTemplateVolumeSource>,

    /// The keys of a ConfigMap in the instance's namespace, as files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::config_map_volume_source")]
    pub config_map: Option<ConfigMapVolumeSource>,

    /// The keys of a Secret in the instance's namespace, as files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::secret_volume_source")]
    pub secret: Option<SecretVolumeSource>,
}

/// A disk made for each instance from a template.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskTemplateVolumeSource {
    /// Name the disk appears under in `/dev/disk/by-id/datumcloud-*` inside the instance;
    /// defaults to `persistent-disk-<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,

    /// What each instance's disk looks like.
    pub template: DiskTemplate,
}

/// Metadata and spec of a per-instance disk.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskTemplate {
    /// Labels and annotations of the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,

    /// Type, size and initial content of the disk.
    pub spec: DiskSpec,
}

/// Type, size and initial content of a disk.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskSpec {
    /// Disk type; `pd-standard` unless set.
    #[serde(rename = "type", default = "default_disk_type")]
    pub type_: String,

    /// Size of the disk (`requests.storage`); an image populator implies its image's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<DiskResourceRequirements>,

    /// What the disk initially holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub populator: Option<DiskPopulator>,
}

/// The disk type the API server fills in when none is given.
pub const DEFAULT_DISK_TYPE: &str = "pd-standard";

fn default_disk_type() -> String {
    DEFAULT_DISK_TYPE.to_owned()
}

impl Default for DiskSpec {
    fn default() -> Self {
        Self {
            type_: default_disk_type(),
            resources: None,
            populator: None,
        }
    }
}

/// Requested size of a disk.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskResourceRequirements {
    /// Requested resources; `storage` is the size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// Initial content of a disk: an image, or an empty filesystem.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskPopulator {
    /// Copy an OS image onto the disk (makes it bootable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDiskPopulator>,

    /// Format the disk with an empty filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemDiskPopulator>,
}

/// An image to copy onto a disk.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageDiskPopulator {
    /// Name of the image, e.g. `datumcloud/ubuntu-2204-lts`.
    pub name: String,
}

/// A filesystem to format a disk with.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemDiskPopulator {
    /// The filesystem type.
    #[serde(rename = "type")]
    pub type_: FilesystemType,
}

/// A filesystem a disk can be formatted with.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FilesystemType {
    /// ext4.
    #[default]
    #[serde(rename = "ext4")]
    Ext4,
}
