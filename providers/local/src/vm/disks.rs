//! Disks of VMs: the image library and the storage classes of the ProviderConfig.
//!
//! - **Images** (`spec.imageMap`: image name → absolute path) come in two forms: a disk
//!   image file (qcow2 or raw), booted by its own bootloader from a per-instance qcow2
//!   overlay backed by it (`qemu-img create -b`), sized as the boot volume asks; or a
//!   directory holding `vmlinux` and `initrd.img`, booted directly (no boot disk).
//! - **Disks** (`disk` volumes without an image) are files of the volume's storage class —
//!   the class named like the disk `type`, or the class whose `diskTypes` lists it — in the
//!   class's directory (default `<stateDir>/disks/<class>`) and format, named
//!   `<external name>-<volume>.<format>`. They exist from the first start until the
//!   instance is deleted, so stopping and starting a VM keeps them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use datum_api::compute::{DiskSpec, InstanceSpec};
use datum_api::provider_config::local::{DiskFormat, ProviderConfigSpec, StorageClass};

use super::Error;
use super::qemu::{Drive, run};
use crate::runtime_spec;

/// What a VM boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// A kernel and initrd, booted directly.
    Kernel {
        /// The uncompressed kernel.
        vmlinux: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
    },
    /// A disk image booted by its own bootloader through an overlay.
    Disk {
        /// The image in the library.
        image: PathBuf,
        /// The boot volume.
        volume: String,
    },
}

/// One disk file of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskFile {
    /// The volume it serves.
    pub volume: String,
    /// The file.
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    /// Its size in bytes (the boot overlay: at least the image's).
    pub size: Option<u64>,
    /// Backing image (the boot overlay only).
    pub backing: Option<PathBuf>,
    /// The serial the guest sees it by.
    pub serial: String,
}

impl DiskFile {
    /// The block device QEMU gets.
    pub fn drive(&self) -> Drive {
        Drive {
            file: self.path.clone(),
            format: self.format.clone(),
            serial: Some(self.serial.clone()),
            boot: self.backing.is_some(),
            read_only: false,
        }
    }
}

fn format_name(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    }
}

/// The storage class serving disk `type`: the class of that name, else the one listing it
/// in `diskTypes`.
pub fn storage_class<'a>(
    config: &'a ProviderConfigSpec,
    disk_type: &str,
) -> Option<(&'a str, &'a StorageClass)> {
    config
        .storage_classes
        .get_key_value(disk_type)
        .or_else(|| {
            config
                .storage_classes
                .iter()
                .find(|(_, c)| c.disk_types.iter().any(|t| t == disk_type))
        })
        .map(|(name, class)| (name.as_str(), class))
}

fn class_dir(config: &ProviderConfigSpec, name: &str, class: &StorageClass) -> PathBuf {
    class.directory.as_ref().map_or_else(
        || Path::new(&config.state_dir).join("disks").join(name),
        PathBuf::from,
    )
}

fn requested_size(volume: &str, spec: &DiskSpec) -> Result<Option<u64>, Error> {
    let Some(q) = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    else {
        return Ok(None);
    };
    let bytes = runtime_spec::quantity(&q.0, 1.0).map_err(|_| Error::DiskSize {
        volume: volume.to_owned(),
        size: q.0.clone(),
    })?;
    Ok(Some(u64::try_from(bytes).unwrap_or(0)).filter(|b| *b > 0))
}

/// The attached disk volumes of a VM: what it boots and its other disks, in attachment
/// order. Nothing is made yet.
pub fn plan(
    config: &ProviderConfigSpec,
    spec: &InstanceSpec,
    external_name: &str,
) -> Result<(Boot, Vec<DiskFile>), Error> {
    let attached: Vec<&str> = spec
        .runtime
        .virtual_machine
        .iter()
        .flat_map(|vm| &vm.volume_attachments)
        .map(|a| a.name.as_str())
        .collect();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut boot = None;
    let mut disks = Vec::new();
    for (n, name) in attached.iter().enumerate() {
        let Some(volume) = volumes.iter().find(|v| v.name == *name) else {
            return Err(Error::VolumeMissing((*name).to_owned()));
        };
        // configMap and secret volumes mean nothing to a VM (no mount inside the guest).
        let Some(disk) = &volume.disk else { continue };
        let dspec = &disk.template.spec;
        let serial: String = disk
            .device_name
            .clone()
            .unwrap_or_else(|| format!("persistent-disk-{n}"))
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(20)
            .collect();
        let image = dspec
            .populator
            .as_ref()
            .and_then(|p| p.image.as_ref())
            .map(|i| i.name.clone());
        if let Some(image) = image {
            if boot.is_some() {
                return Err(Error::TwoBootDisks);
            }
            let path = config
                .image_map
                .get(&image)
                .ok_or_else(|| Error::ImageUnknown(image.clone()))?;
            let path = PathBuf::from(path);
            if path.is_dir() {
                let (vmlinux, initrd) = (path.join("vmlinux"), path.join("initrd.img"));
                if !vmlinux.is_file() || !initrd.is_file() {
                    return Err(Error::ImageMissing { image, path });
                }
                boot = Some(Boot::Kernel { vmlinux, initrd });
                continue;
            }
            if !path.is_file() {
                return Err(Error::ImageMissing { image, path });
            }
            let (class_name, class) =
                storage_class(config, &dspec.type_).ok_or_else(|| Error::StorageClass {
                    volume: volume.name.clone(),
                    disk_type: dspec.type_.clone(),
                })?;
            disks.push(DiskFile {
                volume: volume.name.clone(),
                path: class_dir(config, class_name, class)
                    .join(format!("{external_name}-{}.qcow2", volume.name)),
                format: "qcow2".to_owned(),
                size: requested_size(&volume.name, dspec)?,
                backing: Some(path.clone()),
                serial,
            });
            boot = Some(Boot::Disk {
                image: path,
                volume: volume.name.clone(),
            });
            continue;
        }
        let (class_name, class) =
            storage_class(config, &dspec.type_).ok_or_else(|| Error::StorageClass {
                volume: volume.name.clone(),
                disk_type: dspec.type_.clone(),
            })?;
        let size = requested_size(&volume.name, dspec)?
            .ok_or_else(|| Error::DiskSizeMissing(volume.name.clone()))?;
        let format = format_name(class.format);
        disks.push(DiskFile {
            volume: volume.name.clone(),
            path: class_dir(config, class_name, class)
                .join(format!("{external_name}-{}.{format}", volume.name)),
            format: format.to_owned(),
            size: Some(size),
            backing: None,
            serial,
        });
    }
    let boot = boot.ok_or(Error::NoBootDisk)?;
    Ok((boot, disks))
}

/// The format and virtual size of an image, from `qemu-img info`.
async fn image_info(path: &Path) -> Result<(String, u64), Error> {
    let out = run(
        "qemu-img",
        &["info".as_ref(), "--output=json".as_ref(), path.as_os_str()],
    )
    .await?;
    let info: serde_json::Value = serde_json::from_str(&out).map_err(|e| Error::Command {
        program: "qemu-img".to_owned(),
        message: format!("unreadable info for {}: {e}", path.display()),
    })?;
    let format = info["format"].as_str().unwrap_or("raw").to_owned();
    let size = info["virtual-size"].as_u64().unwrap_or(0);
    Ok((format, size))
}

/// Makes the disk file exist (kept as it is when it does).
pub async fn ensure(disk: &DiskFile) -> Result<(), Error> {
    if disk.path.exists() {
        return Ok(());
    }
    if let Some(dir) = disk.path.parent() {
        std::fs::create_dir_all(dir).map_err(super::io(dir))?;
    }
    let tmp = disk.path.with_extension("tmp");
    let mut args: Vec<&OsStr> = vec!["create".as_ref(), "-q".as_ref(), "-f".as_ref()];
    args.push(disk.format.as_ref());
    let backing_format;
    let size;
    if let Some(backing) = &disk.backing {
        let (format, image_size) = image_info(backing).await?;
        backing_format = format;
        args.extend(["-b".as_ref(), backing.as_os_str(), "-F".as_ref()]);
        args.push(backing_format.as_ref());
        args.push(tmp.as_os_str());
        // Never smaller than the image: a boot disk cannot shrink below what it holds.
        size = disk.size.unwrap_or(0).max(image_size).to_string();
        args.push(size.as_ref());
    } else {
        size = disk.size.unwrap_or(0).to_string();
        args.push(tmp.as_os_str());
        args.push(size.as_ref());
    }
    run("qemu-img", &args).await?;
    std::fs::rename(&tmp, &disk.path).map_err(super::io(&disk.path))?;
    Ok(())
}

/// Deletes a disk file; absent is success.
pub fn remove(path: &Path) -> Result<(), Error> {
    for p in [path.to_path_buf(), path.with_extension("tmp")] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(super::io(&p)(e)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::provider_config::local::default_storage_classes;

    fn config() -> ProviderConfigSpec {
        serde_json::from_value(serde_json::json!({ "stateDir": "/s" })).expect("a config")
    }

    #[test]
    fn classes_match_by_name_then_disk_type() {
        let mut c = config();
        c.storage_classes = default_storage_classes();
        assert_eq!(
            storage_class(&c, "local-ssd").map(|s| s.0),
            Some("local-ssd")
        );
        assert_eq!(storage_class(&c, "pd-ssd").map(|s| s.0), Some("local-ssd"));
        assert_eq!(
            storage_class(&c, "pd-balanced").map(|s| s.0),
            Some("local-standard")
        );
        assert!(storage_class(&c, "pd-extreme").is_none());
    }

    #[test]
    fn a_vm_needs_a_known_boot_image() {
        let spec: InstanceSpec = serde_json::from_value(serde_json::json!({
            "runtime": {
                "resources": {},
                "virtualMachine": { "volumeAttachments": [{ "name": "boot" }, { "name": "data" }] },
            },
            "volumes": [
                { "name": "boot", "disk": { "template": { "spec": {
                    "populator": { "image": { "name": "datumcloud/nowhere" } } } } } },
                { "name": "data", "disk": { "template": { "spec": {
                    "type": "pd-ssd", "resources": { "requests": { "storage": "1Gi" } } } } } },
            ],
            "networkInterfaces": [],
        }))
        .expect("a spec");
        let err = plan(&config(), &spec, "datum-x").expect_err("no such image");
        assert!(err.to_string().contains("datumcloud/nowhere"), "{err}");
    }
}
