//! The OCI runtime spec of one container: its process (command, args, env from the image
//! and the Instance), a private pid/ipc/uts/mount namespace, the instance's network
//! namespace, Docker's default capability set, cgroup limits from the instance type, and
//! read-only bind mounts for volume files.

use serde_json::{Value, json};

/// Errors from sizing a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A quantity does not parse.
    #[error("invalid quantity {0:?}")]
    Quantity(String),
}

/// Docker's default capabilities (`NET_RAW` included, so `ping` works inside).
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A file or directory bind-mounted read-only into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: String,
    /// Path in the container.
    pub destination: String,
}

/// What one container is.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// The hostname (the instance's name).
    pub hostname: String,
    /// `argv`.
    pub args: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// The instance's network namespace file.
    pub netns_path: String,
    /// The cgroup path (`/datum/<container id>`).
    pub cgroups_path: String,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// CPU limit in millicores.
    pub cpu_millis: Option<i64>,
    /// Read-only bind mounts.
    pub binds: Vec<BindMount>,
}

/// The runtime spec JSON.
pub fn build(spec: &ContainerSpec) -> Value {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}),
    ];
    for b in &spec.binds {
        mounts.push(json!({"destination": b.destination, "type": "bind", "source": b.source, "options": ["rbind", "ro"]}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = spec.memory_bytes {
        resources["memory"] = json!({"limit": limit});
    }
    if let Some(millis) = spec.cpu_millis {
        resources["cpu"] = json!({"quota": millis * 100, "period": 100_000});
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": spec.args,
            "env": spec.env,
            "cwd": if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() },
            "capabilities": {
                "bounding": CAPABILITIES, "effective": CAPABILITIES, "permitted": CAPABILITIES,
            },
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "network", "path": spec.netns_path},
            ],
            "cgroupsPath": spec.cgroups_path,
            "resources": resources,
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                "/proc/sys", "/proc/sysrq-trigger"],
        },
    })
}

/// Parses a Kubernetes quantity into a value scaled by `scale` (1 for bytes, 1000 for
/// millicores), rounding up.
pub fn quantity(text: &str, scale: f64) -> Result<i64, Error> {
    let bad = || Error::Quantity(text.to_owned());
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0_f64.powi(4)),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = suffixes
        .iter()
        .find_map(|(s, f)| text.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((text, 1.0));
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let scaled = (value * factor * scale).ceil();
    if !scaled.is_finite() || !(0.0..=9.0e18).contains(&scaled) {
        return Err(bad());
    }
    Ok(scaled as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(quantity("8Gi", 1.0).ok(), Some(8 * 1024 * 1024 * 1024));
        assert_eq!(quantity("500m", 1000.0).ok(), Some(500));
        assert_eq!(quantity("2", 1000.0).ok(), Some(2000));
        assert!(quantity("lots", 1.0).is_err());
        assert!(quantity("-1", 1.0).is_err());
    }

    #[test]
    fn limits_land_in_the_spec() {
        let spec = build(&ContainerSpec {
            args: vec!["/bin/sh".into()],
            memory_bytes: Some(64 << 20),
            cpu_millis: Some(500),
            netns_path: "/run/netns/x".into(),
            ..ContainerSpec::default()
        });
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(spec["linux"]["namespaces"][4]["path"], "/run/netns/x");
    }
}
