//! ConfigMap and Secret volumes, delivered through Secret Manager instead of instance
//! metadata (which any process on the VM, and anyone with `compute.instances.get`, reads):
//!
//! 1. [`read`] takes the keys of each volume's ConfigMap or Secret from the control plane
//!    (honouring `items` and `optional`) into a [`Delivery`];
//! 2. the instance code stores each payload as secret `<template>-<volume>` and grants the
//!    VM's service account `roles/secretmanager.secretAccessor` on it;
//! 3. instance metadata carries only [`Delivery::reference`]s (`datum-volumes`: secret
//!    names, directories, file mode), and the boot script in [`crate::cloud_init`] fetches
//!    the latest versions with the VM's own token before any workload starts.
//!
//! A [`Delivery`]'s payload is a JSON object `{"files": {"<path>": "<base64>"}}`; its
//! `Debug` never shows it, and no error names anything but the volume, object and key.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use datum_api::compute::InstanceSpec;
use datum_provider::PlatformError;
use datum_provider::volume_source::VolumeSource;
use k8s_openapi::api::core::v1::KeyToPath;
use serde_json::{Value, json};

/// Where a sandbox host keeps the files of volume `name`; containers mount it from there.
pub fn host_dir(name: &str) -> String {
    format!("/var/lib/datum/volumes/{name}")
}

/// One configMap or secret volume and where its files go on the VM.
pub struct Delivery {
    /// The volume's name.
    pub volume: String,
    /// `configMap` or `secret`.
    pub kind: &'static str,
    /// Directories on the VM that receive the files.
    pub dirs: Vec<String>,
    /// `{"files": {...}}` — the values; never logged.
    pub payload: Vec<u8>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("volume", &self.volume)
            .field("kind", &self.kind)
            .field("dirs", &self.dirs)
            .field("payload", &"<redacted>")
            .finish()
    }
}

impl Delivery {
    /// What instance metadata says about this volume: no values.
    pub fn reference(&self, secret: &str) -> Value {
        json!({
            "volume": self.volume,
            "kind": self.kind,
            "secret": secret,
            "dirs": self.dirs,
            "mode": if self.kind == "secret" { "0400" } else { "0444" },
        })
    }
}

/// The configMap and secret volumes of `spec` and the directories each lands in: the
/// sandbox host's [`host_dir`], or a VM attachment's `mountPath`. No values are read.
pub fn planned(spec: &InstanceSpec) -> Vec<(String, &'static str, Vec<String>)> {
    let mut out = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        let kind = match (&volume.config_map, &volume.secret) {
            (Some(_), _) => "configMap",
            (None, Some(_)) => "secret",
            (None, None) => continue,
        };
        let dirs = if spec.runtime.sandbox.is_some() {
            vec![host_dir(&volume.name)]
        } else {
            spec.runtime
                .virtual_machine
                .iter()
                .flat_map(|vm| vm.volume_attachments.iter())
                .filter(|a| a.name == volume.name)
                .filter_map(|a| a.mount_path.clone())
                .collect()
        };
        if !dirs.is_empty() {
            out.push((volume.name.clone(), kind, dirs));
        }
    }
    out
}

fn invalid(reason: &str, message: String) -> PlatformError {
    PlatformError {
        reason: reason.to_owned(),
        message,
    }
}

/// Reads the objects of every planned volume in `namespace`. A missing object fails with
/// reason `VolumeSourceNotFound` unless the volume is `optional` (then it delivers no
/// files).
pub async fn read(
    kube: Option<&kube::Client>,
    namespace: &str,
    spec: &InstanceSpec,
) -> Result<Vec<Delivery>, PlatformError> {
    let mut out = Vec::new();
    for (name, kind, dirs) in planned(spec) {
        let Some(volume) = spec.volumes.iter().flatten().find(|v| v.name == name) else {
            continue;
        };
        let kube = kube.ok_or_else(|| {
            invalid(
                "VolumesUnsupported",
                format!("volume {name}: configMap and secret volumes need the provider's Kubernetes client"),
            )
        })?;
        let (object, optional, items) = match (&volume.config_map, &volume.secret) {
            (Some(c), _) => (c.name.clone(), c.optional, c.items.clone()),
            (None, Some(s)) => (
                s.secret_name.clone().unwrap_or_default(),
                s.optional,
                s.items.clone(),
            ),
            (None, None) => continue,
        };
        let label = if kind == "secret" {
            "Secret"
        } else {
            "ConfigMap"
        };
        let failed = |message: String| {
            invalid(
                "VolumeSourceUnreadable",
                format!("volume {name}: failed to read {label} {namespace}/{object}: {message}"),
            )
        };
        let source = if kind == "secret" {
            VolumeSource::Secret
        } else {
            VolumeSource::ConfigMap
        };
        let data = source
            .read(kube, namespace, &object)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let data = match data {
            Some(data) => data,
            None if optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(invalid(
                    "VolumeSourceNotFound",
                    format!("volume {name}: {label} {namespace}/{object} does not exist"),
                ));
            }
        };
        let files = files(&name, &data, items.as_deref())?;
        out.push(Delivery {
            volume: name,
            kind,
            dirs,
            payload: json!({ "files": files }).to_string().into_bytes(),
        });
    }
    Ok(out)
}

/// File path → base64 content: every key, or only `items` at their paths.
fn files(
    volume: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
) -> Result<BTreeMap<String, String>, PlatformError> {
    let chosen: Vec<(String, &Vec<u8>)> = match items {
        None => data.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(items) => items
            .iter()
            .map(|item| {
                data.get(&item.key)
                    .map(|v| (item.path.clone(), v))
                    .ok_or_else(|| {
                        invalid(
                            "VolumeSourceNotFound",
                            format!(
                                "volume {volume}: item key {:?} is not in its source",
                                item.key
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut out = BTreeMap::new();
    for (path, value) in chosen {
        let inside = !path.is_empty()
            && !path.starts_with('/')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !inside {
            return Err(invalid(
                "InvalidSpec",
                format!(
                    "volume {volume}: item path {path:?} must be relative and stay inside the volume"
                ),
            ));
        }
        out.insert(path, STANDARD.encode(value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_pick_keys_and_paths_stay_inside() {
        let data: BTreeMap<String, Vec<u8>> = [("a".to_owned(), b"1".to_vec())].into();
        let all = files("v", &data, None).expect("files");
        assert_eq!(all["a"], "MQ==");
        let item = KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        };
        assert!(files("v", &data, Some(&[item])).is_err());
        let missing = KeyToPath {
            key: "b".into(),
            path: "b".into(),
            mode: None,
        };
        let e = files("v", &data, Some(&[missing])).expect_err("no key b");
        assert!(!e.message.contains('1'));
    }
}
