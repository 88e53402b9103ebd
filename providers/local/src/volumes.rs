//! ConfigMap and Secret volumes as files: the keys of the object in the instance's
//! namespace are written under `<instance dir>/volumes/<volume>/` (each file replaced
//! atomically, so a mounted directory sees whole files) and the directory is bind-mounted
//! read-only at each attachment's `mountPath`. Secret files are mode 0400 in a 0500
//! directory; their contents never reach a log, an error or an Event (errors name the
//! object and key only).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use datum_api::compute::InstanceVolume;
use datum_provider::volume_source::VolumeSource;
use k8s_openapi::api::core::v1::KeyToPath;

/// Errors from writing volume files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Kubernetes client was given to the provider.
    #[error("volume {0}: configMap and secret volumes need the provider's Kubernetes client")]
    NoClient(String),
    /// The object is missing and not optional.
    #[error("volume {volume}: {kind} {namespace}/{name} does not exist")]
    Missing {
        /// The volume.
        volume: String,
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Reading the object failed.
    #[error("volume {volume}: failed to read {kind} {namespace}/{name}: {message}")]
    Read {
        /// The volume.
        volume: String,
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        message: String,
    },
    /// An item's path would leave the volume.
    #[error("volume {volume}: item path {path:?} must be relative and stay inside the volume")]
    Path {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
    },
    /// A file could not be written.
    #[error("volume {volume}: failed to write {path}: {source}")]
    Write {
        /// The volume.
        volume: String,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Writes the files of every configMap and secret volume under `dir`; returns the
/// directory of each by volume name.
pub async fn write_all(
    kube: Option<&kube::Client>,
    namespace: &str,
    dir: &Path,
    volumes: &[InstanceVolume],
) -> Result<BTreeMap<String, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    for volume in volumes {
        let (kind, name, optional, items, secret) = match (&volume.config_map, &volume.secret) {
            (Some(c), _) => (
                "ConfigMap",
                c.name.clone(),
                c.optional,
                c.items.clone(),
                false,
            ),
            (None, Some(s)) => (
                "Secret",
                s.secret_name.clone().unwrap_or_default(),
                s.optional,
                s.items.clone(),
                true,
            ),
            (None, None) => continue,
        };
        let kube = kube.ok_or_else(|| Error::NoClient(volume.name.clone()))?;
        let read = |message: String| Error::Read {
            volume: volume.name.clone(),
            kind,
            namespace: namespace.to_owned(),
            name: name.clone(),
            message,
        };
        let source = if secret {
            VolumeSource::Secret
        } else {
            VolumeSource::ConfigMap
        };
        let data = source
            .read(kube, namespace, &name)
            .await
            .map_err(|e| read(e.to_string()))?;
        let data = match data {
            Some(data) => data,
            None if optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(Error::Missing {
                    volume: volume.name.clone(),
                    kind,
                    namespace: namespace.to_owned(),
                    name,
                });
            }
        };
        let target = dir.join(&volume.name);
        write_files(&volume.name, &target, &data, items.as_deref(), secret)?;
        out.insert(volume.name.clone(), target);
    }
    Ok(out)
}

/// Whether `path` is relative and stays inside its directory.
fn contained(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn write_files(
    volume: &str,
    target: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    secret: bool,
) -> Result<(), Error> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write {
            volume: volume.to_owned(),
            path,
            source,
        }
    };
    let files: Vec<(String, &Vec<u8>)> = match items {
        Some(items) => items
            .iter()
            .filter_map(|i| data.get(&i.key).map(|v| (i.path.clone(), v)))
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v)).collect(),
    };
    std::fs::create_dir_all(target).map_err(fail(target))?;
    let (dir_mode, file_mode) = if secret {
        (0o500, 0o400)
    } else {
        (0o755, 0o444)
    };
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(dir_mode))
        .map_err(fail(target))?;
    let mut wanted = Vec::new();
    for (path, value) in files {
        if !contained(&path) {
            return Err(Error::Path {
                volume: volume.to_owned(),
                path,
            });
        }
        let file = target.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(fail(parent))?;
        }
        let tmp = file.with_file_name(format!(
            ".tmp-{}",
            file.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ));
        let _ = std::fs::remove_file(&tmp);
        std::fs::write(&tmp, value).map_err(fail(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file_mode))
            .map_err(fail(&tmp))?;
        std::fs::rename(&tmp, &file).map_err(fail(&file))?;
        wanted.push(file);
    }
    // Keys removed from the object disappear from the volume.
    if let Ok(entries) = std::fs::read_dir(target) {
        for entry in entries.filter_map(Result::ok) {
            let p = entry.path();
            if p.is_file() && !wanted.contains(&p) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn secret_files_are_owner_read_only_and_paths_stay_inside() {
        let dir = std::env::temp_dir().join(format!("datum-vol-{}", std::process::id()));
        let data = BTreeMap::from([("token".to_owned(), b"s3cret".to_vec())]);
        write_files("creds", &dir, &data, None, true).expect("written");
        let meta = std::fs::metadata(dir.join("token")).expect("a file");
        assert_eq!(meta.mode() & 0o777, 0o400);
        let escape = [KeyToPath {
            key: "token".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(write_files("creds", &dir, &data, Some(&escape), true).is_err());
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
