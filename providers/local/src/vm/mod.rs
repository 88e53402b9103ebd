//! Instances as virtual machines (`spec.runtime.virtualMachine`) under QEMU: KVM when it
//! really works, TCG otherwise.
//!
//! One VM per instance, in `<stateDir>/instances/<external name>/`: QEMU daemonized with its
//! pidfile (`qemu.pid`), QMP socket (`qmp.sock`), serial console log (`serial.log`) and
//! NoCloud seed (`seed.iso`); a record (`vm.json`) of what was made, so deletes and orphan
//! sweeps clean up without the spec. Each network interface is a tap (named from the
//! external name) on its network's bridge in the Location's namespace, and QEMU runs in that
//! namespace, so the host's own namespace never gains a link. Disks: [`disks`]. Seed:
//! [`seed`].
//!
//! - **Adoption**: QEMU outlives the provider; a restarted provider finds it by pidfile and
//!   QMP socket and never starts a second one.
//! - **Power**: `Running` once QMP reports `running` and the guest said it is up on its
//!   console (the test image's `DATUM-VM-READY`, or cloud-init's "finished" line), or two
//!   minutes passed; `Stopped` when QEMU is gone, and update starts it again (restart
//!   policy `Always`, as for containers). A changed spec restarts the VM (ACPI power
//!   button, up to 20 s, then `quit`); disks stay.
//! - **Usage**: from QEMU's process in `/proc` — CPU time (`utime + stime`, all threads)
//!   between observations against the VM's vCPUs, and resident memory (`VmRSS`) against the
//!   instance type's memory; the first observation after a (re)start has no CPU figure.
//! - **Delete**: QMP `quit` (then SIGKILL), taps, policies, addresses, disks, directory.

pub mod disks;
pub mod qemu;
pub mod qmp;
pub mod seed;

use std::path::{Path, PathBuf};
use std::time::Duration;

use datum_api::compute::{Instance, InstanceSpec, annotations};
use datum_provider::{
    ExternalResource, InstanceLive, InterfaceAddresses, Observation, PlatformError, PowerState,
    Usage,
};
use serde::{Deserialize, Serialize};

use crate::provider::LocalHost;
use crate::{bridge, names, netns, usage};
use qemu::{Machine, VmFiles};

/// What the test image prints on its console once it is up.
pub const READY_MARKER: &str = "DATUM-VM-READY";
/// After this long a VM counts as up even if its guest never said so.
const READY_GRACE: Duration = Duration::from_secs(120);
/// How long a guest gets to power off before a restart for a changed spec pulls the plug.
const RESTART_GRACE: Duration = Duration::from_secs(20);
/// The record of a VM in its instance directory.
const RECORD: &str = "vm.json";

/// Errors from running VMs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance is not a VM.
    #[error("spec.runtime.virtualMachine is missing")]
    NotVm,
    /// No attached disk volume carries an image.
    #[error(
        "a virtual machine needs a boot disk: attach a disk volume with populator.image (e.g. datumcloud/ubuntu-2204-lts)"
    )]
    NoBootDisk,
    /// Two attached volumes carry an image.
    #[error(
        "a virtual machine boots from one image: only one attached disk may have populator.image"
    )]
    TwoBootDisks,
    /// An attachment names no volume.
    #[error(
        "spec.runtime.virtualMachine.volumeAttachments names volume {0:?}, which is not in spec.volumes"
    )]
    VolumeMissing(String),
    /// The image is not in the library.
    #[error("image {0:?} is not in the ProviderConfig's spec.imageMap")]
    ImageUnknown(String),
    /// The library names a missing file.
    #[error(
        "image {image:?} maps to {path}, which is neither a disk image file nor a directory with vmlinux and initrd.img"
    )]
    ImageMissing {
        /// The image name.
        image: String,
        /// Where the library says it is.
        path: PathBuf,
    },
    /// No storage class serves the disk type.
    #[error(
        "disk type {disk_type:?} of volume {volume:?} matches no storage class in the ProviderConfig's spec.storageClasses (by name or diskTypes)"
    )]
    StorageClass {
        /// The volume.
        volume: String,
        /// The type.
        disk_type: String,
    },
    /// The size does not parse.
    #[error("volume {volume:?} requests storage {size:?}, which is not a size")]
    DiskSize {
        /// The volume.
        volume: String,
        /// The requested size.
        size: String,
    },
    /// An empty disk without a size.
    #[error("volume {0:?} needs a size: set disk.template.spec.resources.requests.storage")]
    DiskSizeMissing(String),
    /// The QMP socket path does not fit a unix socket address.
    #[error("the QMP socket path {0} is longer than 107 bytes: choose a shorter spec.stateDir")]
    SocketPath(PathBuf),
    /// A program failed.
    #[error("{program} failed: {message}")]
    Command {
        /// The program.
        program: String,
        /// What went wrong (its stderr).
        message: String,
    },
    /// QMP failed.
    #[error("QMP on {socket} failed: {message}")]
    Qmp {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file could not be made or read.
    #[error("failed to prepare {path}: {source}")]
    Files {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Sizing, interfaces or policies failed.
    #[error(transparent)]
    Instance(Box<crate::instance::Error>),
    /// A network operation failed.
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    /// A link operation failed.
    #[error(transparent)]
    Link(#[from] bridge::Error),
    /// Releasing addresses failed.
    #[error(transparent)]
    Ipam(#[from] crate::ipam::Error),
}

impl From<Error> for PlatformError {
    fn from(e: Error) -> Self {
        let e = match e {
            Error::Instance(inner) => return (*inner).into(),
            other => other,
        };
        let reason = match &e {
            Error::NotVm => "RuntimeUnsupported",
            Error::NoBootDisk
            | Error::TwoBootDisks
            | Error::VolumeMissing(_)
            | Error::ImageUnknown(_)
            | Error::ImageMissing { .. } => "ImageUnavailable",
            Error::StorageClass { .. } | Error::DiskSize { .. } | Error::DiskSizeMissing(_) => {
                "VolumeFailed"
            }
            Error::Command { .. } | Error::Qmp { .. } => "QemuFailed",
            _ => "InstanceFailed",
        };
        PlatformError {
            reason: reason.to_owned(),
            message: e.to_string(),
        }
    }
}

impl From<crate::instance::Error> for Error {
    fn from(e: crate::instance::Error) -> Self {
        Self::Instance(Box::new(e))
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Files {
        path: path.to_path_buf(),
        source,
    }
}

/// What was made for a VM: enough to remove it without its spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Record {
    /// Hash of what the running QEMU was started from (empty until it first started).
    spec_hash: String,
    location: String,
    location_netns: Option<String>,
    network_keys: Vec<String>,
    taps: Vec<String>,
    /// Per interface, its addresses.
    addresses: Vec<Vec<String>>,
    disks: Vec<PathBuf>,
}

/// The hash of what a VM's QEMU is started from.
fn spec_hash(spec: &InstanceSpec, accel: qemu::Accel) -> String {
    let material = serde_json::json!({
        "runtime": spec.runtime,
        "volumes": spec.volumes,
        "networkInterfaces": spec.network_interfaces,
        "kvm": accel == qemu::Accel::Kvm,
    });
    names::short_hash(&[&material.to_string()], 16)
}

fn location(spec: &InstanceSpec) -> String {
    spec.location
        .as_ref()
        .map(|l| l.name.clone())
        .unwrap_or_else(|| "default".to_owned())
}

impl LocalHost {
    fn vm_dir(&self, external_name: &str) -> PathBuf {
        self.state_dir.join("instances").join(external_name)
    }

    fn vm_files(&self, external_name: &str) -> VmFiles {
        VmFiles {
            dir: self.vm_dir(external_name),
        }
    }

    fn read_vm_record(&self, external_name: &str) -> Option<Record> {
        let bytes = std::fs::read(self.vm_dir(external_name).join(RECORD)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_vm_record(&self, external_name: &str, record: &Record) -> Result<(), Error> {
        let path = self.vm_dir(external_name).join(RECORD);
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(record).unwrap_or_default();
        std::fs::write(&tmp, body).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Whether the instance is (or was made as) a VM: its spec says so, or a VM record of
    /// it exists (an orphan being swept).
    pub fn is_vm(&self, r: &ExternalResource<'_, Instance>) -> bool {
        r.spec.runtime.virtual_machine.is_some()
            || self.vm_dir(&r.external_name).join(RECORD).exists()
    }

    /// The external names of the VMs that exist (one per VM).
    pub fn vm_external_names(&self) -> Vec<String> {
        std::fs::read_dir(self.state_dir.join("instances"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().join(RECORD).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// Makes the VM exist and run as the spec says.
    pub async fn ensure_vm(&self, r: &ExternalResource<'_, Instance>) -> Result<(), Error> {
        if r.spec.runtime.virtual_machine.is_none() {
            return Err(Error::NotVm);
        }
        let external = &r.external_name;
        let (cpu_millis, memory_bytes) = self.sizing(r.spec)?;
        let (boot, disk_files) = disks::plan(&self.config, r.spec, external)?;
        let files = self.vm_files(external);
        if files.qmp().as_os_str().len() > 107 {
            return Err(Error::SocketPath(files.qmp()));
        }
        std::fs::create_dir_all(&files.dir).map_err(io(&files.dir))?;
        let accel = qemu::accel(&self.state_dir.join("qemu")).await;
        let hash = spec_hash(r.spec, accel);

        let planned = self.plan_interfaces(r).await?;
        self.ensure_policies(r, &planned).await?;
        let mut record = self.read_vm_record(external).unwrap_or_default();
        if files.running_pid().is_some() {
            if record.spec_hash == hash {
                return Ok(());
            }
            tracing::info!(instance = %external, "the VM's spec changed: restarting it");
            qemu::stop(&files, RESTART_GRACE).await?;
        }
        // Record everything before making it, so a crash in between leaves nothing unknown.
        let location = location(r.spec);
        let location_netns = planned.first().map(|p| p.network.location_netns.clone());
        let taps: Vec<String> = planned
            .iter()
            .map(|p| names::tap(external, p.index))
            .collect();
        merge(&mut record.taps, &taps);
        merge(
            &mut record.disks,
            &disk_files
                .iter()
                .map(|d| d.path.clone())
                .collect::<Vec<_>>(),
        );
        let keys: Vec<String> = r
            .spec
            .network_interfaces
            .iter()
            .map(|i| {
                names::network_key(
                    i.network.namespace.as_deref().unwrap_or(r.namespace),
                    &i.network.name,
                )
            })
            .collect();
        merge(&mut record.network_keys, &keys);
        record.location = location;
        if location_netns.is_some() {
            record.location_netns = location_netns.clone();
        }
        record.addresses = planned
            .iter()
            .map(|p| p.addresses.iter().map(|a| a.address.to_string()).collect())
            .collect();
        record.spec_hash = String::new();
        self.write_vm_record(external, &record)?;

        for p in &planned {
            ensure_tap(
                &p.network.location_netns,
                &names::tap(external, p.index),
                &p.network.bridge,
            )
            .await?;
        }
        for disk in &disk_files {
            disks::ensure(disk).await?;
        }
        let ssh_keys = r.annotations.get(annotations::SSH_KEYS).map(String::as_str);
        seed::write(
            &files.seed_dir(),
            &files.seed_iso(),
            &seed::meta_data(external, &seed::hostname(r.name)),
            &seed::user_data(ssh_keys),
            &seed::network_config(external, &planned),
        )
        .await?;

        let mut drives: Vec<qemu::Drive> = disk_files.iter().map(disks::DiskFile::drive).collect();
        drives.push(qemu::Drive {
            file: files.seed_iso(),
            format: "raw".to_owned(),
            serial: Some("cidata".to_owned()),
            boot: false,
            read_only: true,
        });
        let machine = Machine {
            name: external.clone(),
            accel,
            cpus: vcpus(cpu_millis),
            memory_mib: u64::try_from(memory_bytes.max(1 << 20) >> 20).unwrap_or(256),
            kernel: match &boot {
                disks::Boot::Kernel { vmlinux, initrd } => Some((vmlinux.clone(), initrd.clone())),
                disks::Boot::Disk { .. } => None,
            },
            disks: drives,
            nics: planned
                .iter()
                .map(|p| (names::tap(external, p.index), names::mac(external, p.index)))
                .collect(),
        };
        let _ = std::fs::remove_file(files.dir.join("ready"));
        let pid = qemu::launch(&machine, &files, location_netns.as_deref()).await?;
        tracing::info!(instance = %external, pid, ?accel, "started the VM");
        record.spec_hash = hash;
        self.write_vm_record(external, &record)
    }

    /// What exists of the VM.
    pub async fn observe_vm(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Observation<InstanceLive>, Error> {
        let external = &r.external_name;
        let files = self.vm_files(external);
        let record = self.read_vm_record(external);
        let pid = files.running_pid();
        let Some(record) = record.or_else(|| pid.map(|_| Record::default())) else {
            return Ok(Observation::Absent);
        };
        let power = match pid {
            None => PowerState::Stopped,
            Some(_) => match qmp::execute(&files.qmp(), "query-status").await {
                Ok(status) if status["status"] == "running" => {
                    if guest_ready(&files) {
                        PowerState::Running
                    } else {
                        PowerState::Starting
                    }
                }
                Ok(status) if status["status"] == "shutdown" => PowerState::Stopped,
                _ => PowerState::Starting,
            },
        };
        let accel = qemu::accel(&self.state_dir.join("qemu")).await;
        let current = record.spec_hash == spec_hash(r.spec, accel);
        let addresses = (0..r.spec.network_interfaces.len())
            .map(|index| InterfaceAddresses {
                network_ip: r
                    .assigned
                    .get(index)
                    .and_then(|a| a.network_ip.clone())
                    .or_else(|| record.addresses.get(index)?.first().cloned()),
                external_ip: None,
            })
            .collect();
        let usage = pid.and_then(|pid| self.vm_usage(r, pid));
        Ok(Observation::Exists {
            id: external.clone(),
            up_to_date: current && power == PowerState::Running && self.policies_current(r),
            live: InstanceLive {
                provider_id: Some(format!("local://{external}")),
                addresses,
                power,
                usage,
            },
        })
    }

    /// The usage of the VM whose QEMU is `pid`: its CPU time against the vCPUs it was
    /// given, its resident memory against the instance type's memory.
    ///
    /// Memory is QEMU's `VmRSS`, not a QMP figure: `query-memory-size-summary` gives the
    /// configured size, not what is used, and `query-balloon` needs a balloon device and a
    /// guest driver these VMs do not have. RSS is the guest memory the host really backs
    /// (plus QEMU's own, e.g. TCG's translation cache); it does not shrink when the guest
    /// frees pages, as there is no balloon to give them back.
    fn vm_usage(&self, r: &ExternalResource<'_, Instance>, pid: i32) -> Option<Usage> {
        let (cpu_millis, memory_bytes) = self.sizing(r.spec).ok()?;
        let counters = usage::read_process(Path::new("/proc"), pid)?;
        let granted_millis = i64::from(vcpus(cpu_millis)) * 1000;
        let (cpu_utilization, memory_utilization) =
            self.usage
                .percentages(&r.external_name, counters, granted_millis, memory_bytes);
        Some(Usage {
            cpu_utilization,
            memory_utilization,
        })
    }

    /// Removes the VM and everything made for it.
    pub async fn delete_vm(&self, r: &ExternalResource<'_, Instance>) -> Result<(), Error> {
        let external = &r.external_name;
        let files = self.vm_files(external);
        // Its disks go too: no need to let the guest shut down cleanly.
        qemu::stop(&files, Duration::ZERO).await?;
        let mut record = self.read_vm_record(external).unwrap_or_default();
        if record.location.is_empty() {
            record.location = location(r.spec);
        }
        // What the spec says too, in case the record is older than the last change.
        let taps: Vec<String> = (0..r.spec.network_interfaces.len())
            .map(|i| names::tap(external, i))
            .collect();
        merge(&mut record.taps, &taps);
        if let Ok((_, planned_disks)) = disks::plan(&self.config, r.spec, external) {
            let paths: Vec<PathBuf> = planned_disks.into_iter().map(|d| d.path).collect();
            merge(&mut record.disks, &paths);
        }
        self.set_policies(&record.location, external, &Default::default())
            .await?;
        let location_netns = record
            .location_netns
            .clone()
            .unwrap_or_else(|| self.names.location_netns(&record.location));
        if netns::exists(&location_netns) {
            let link = bridge::Netlink::open(&location_netns)?;
            for tap in &record.taps {
                link.remove_link(tap).await?;
            }
        }
        self.ipam.release_addresses(&format!("{external}/"))?;
        for key in &record.network_keys {
            self.release_network(&record.location, key).await?;
        }
        for disk in &record.disks {
            disks::remove(disk)?;
        }
        match std::fs::remove_dir_all(&files.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&files.dir)(e)),
            _ => {}
        }
        self.usage.forget(external);
        Ok(())
    }
}

/// The vCPUs a VM gets for `cpu_millis` of its instance type: whole CPUs, rounded up.
fn vcpus(cpu_millis: i64) -> u32 {
    u32::try_from(cpu_millis.max(1).saturating_add(999) / 1000).unwrap_or(1)
}

fn merge<T: PartialEq + Clone>(into: &mut Vec<T>, items: &[T]) {
    for item in items {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

/// Whether the guest said it is up on its console (or had time enough to).
fn guest_ready(files: &VmFiles) -> bool {
    let stamp = files.dir.join("ready");
    if stamp.exists() {
        return true;
    }
    let log = std::fs::read(files.serial_log()).unwrap_or_default();
    let text = String::from_utf8_lossy(&log);
    let said = text.contains(READY_MARKER)
        || text
            .lines()
            .any(|l| l.contains("Cloud-init v.") && l.contains(" finished at "));
    let waited = std::fs::metadata(files.pidfile())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e > READY_GRACE);
    if said || waited {
        let _ = std::fs::write(&stamp, "");
    }
    said || waited
}

/// Makes the tap `tap` exist in `location_netns`, as a port of `bridge`, up.
async fn ensure_tap(location_netns: &str, tap: &str, bridge_name: &str) -> Result<(), Error> {
    let link = bridge::Netlink::open(location_netns)?;
    if link.index(tap).await?.is_none() {
        qemu::run(
            "ip",
            &[
                "-n".as_ref(),
                location_netns.as_ref(),
                "tuntap".as_ref(),
                "add".as_ref(),
                "dev".as_ref(),
                tap.as_ref(),
                "mode".as_ref(),
                "tap".as_ref(),
            ],
        )
        .await?;
    }
    qemu::run(
        "ip",
        &[
            "-n".as_ref(),
            location_netns.as_ref(),
            "link".as_ref(),
            "set".as_ref(),
            tap.as_ref(),
            "master".as_ref(),
            bridge_name.as_ref(),
            "up".as_ref(),
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_are_whole_cpus_rounded_up() {
        assert_eq!(vcpus(0), 1);
        assert_eq!(vcpus(250), 1);
        assert_eq!(vcpus(1000), 1);
        assert_eq!(vcpus(1001), 2);
        assert_eq!(vcpus(4000), 4);
        assert_eq!(vcpus(i64::MAX), 1, "beyond u32: one, never a panic");
    }
}
