//! QEMU processes: the accelerator probe (KVM when it really works, TCG otherwise), the
//! command line of a VM, launching it daemonized inside its Location's network namespace
//! (`nsenter --net`, never `ip netns exec`), finding a running one again by its pidfile,
//! and stopping it.
//!
//! A VM's QEMU is not a child of the provider (`-daemonize`): it survives a provider
//! restart, and the restarted provider adopts it by the pidfile and QMP socket in the
//! instance's directory, both named from the external name.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::{Error, io, qmp};
use crate::netns;

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Runs `program` with `args`; its stdout on success, else an error carrying its stderr.
pub async fn run(program: &str, args: &[&OsStr]) -> Result<String, Error> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Command {
            program: program.to_owned(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "it is not installed (tools/setup.sh installs it)".to_owned()
            } else {
                e.to_string()
            },
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(Error::Command {
        program: program.to_owned(),
        message: format!("{}: {}", output.status, stderr.trim()),
    })
}

/// How QEMU executes guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// Binary translation: slow, works everywhere.
    Tcg,
}

/// KVM if `/dev/kvm` exists and a guest really runs under it (some hosts expose a
/// `/dev/kvm` no stock guest can run on: it hangs or aborts), else TCG. Probed once per
/// process with a one-sector guest that exits QEMU through `isa-debug-exit`.
pub async fn accel(scratch: &Path) -> Accel {
    static ACCEL: OnceCell<Accel> = OnceCell::const_new();
    *ACCEL
        .get_or_init(|| async {
            if !Path::new("/dev/kvm").exists() {
                return Accel::Tcg;
            }
            let accel = if probe_kvm(scratch).await {
                Accel::Kvm
            } else {
                Accel::Tcg
            };
            tracing::info!(?accel, "probed QEMU acceleration");
            accel
        })
        .await
}

async fn probe_kvm(scratch: &Path) -> bool {
    // mov al, 0x42; out 0xf4, al; hlt; jmp $-1 — then the boot signature.
    let code = [0xb0, 0x42, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd];
    let mut sector = vec![0u8; 512];
    sector[..code.len()].copy_from_slice(&code);
    sector[510] = 0x55;
    sector[511] = 0xaa;
    let image = scratch.join("kvm-probe.img");
    if std::fs::create_dir_all(scratch).is_err() || std::fs::write(&image, &sector).is_err() {
        return false;
    }
    let mut drive = OsString::from("format=raw,if=floppy,file=");
    drive.push(escape(&image));
    let child = tokio::process::Command::new(QEMU)
        .args(["-accel", "kvm", "-cpu", "host", "-M", "pc", "-m", "16"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-drive")
        .arg(drive)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    // Under KVM the guest exits within milliseconds (TCG: 0.2 s); a broken KVM hangs.
    let status = tokio::time::timeout(Duration::from_secs(2), child).await;
    let _ = std::fs::remove_file(&image);
    // isa-debug-exit exits with (value << 1) | 1.
    matches!(status, Ok(Ok(s)) if s.code() == Some((0x42 << 1) | 1))
}

/// A path as a QEMU option value: commas doubled.
pub fn escape(path: &Path) -> OsString {
    OsString::from(path.as_os_str().to_string_lossy().replace(',', ",,"))
}

/// The files of one VM, in its instance directory.
#[derive(Clone, Debug)]
pub struct VmFiles {
    /// The instance directory.
    pub dir: PathBuf,
}

impl VmFiles {
    /// QEMU's pidfile.
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    /// The QMP socket.
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    /// The serial console's log.
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    /// The NoCloud seed ISO.
    pub fn seed_iso(&self) -> PathBuf {
        self.dir.join("seed.iso")
    }
    /// The seed's source files.
    pub fn seed_dir(&self) -> PathBuf {
        self.dir.join("seed")
    }

    /// The PID of this VM's QEMU if it runs: the pidfile names a live process (not a
    /// zombie) whose command line holds this VM's QMP socket, so a recycled PID never
    /// counts.
    pub fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(") ")?.1.chars().next()?;
        if matches!(state, 'Z' | 'X' | 'x') {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let qmp = self.qmp();
        let needle = qmp.as_os_str().to_string_lossy().replace(',', ",,");
        String::from_utf8_lossy(&cmdline)
            .contains(&needle)
            .then_some(pid)
    }
}

/// Everything a VM's command line is made from.
#[derive(Clone, Debug)]
pub struct Machine {
    /// The external name, shown as the guest's name.
    pub name: String,
    /// Accelerator.
    pub accel: Accel,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Direct kernel boot: `(vmlinux, initrd)`.
    pub kernel: Option<(PathBuf, PathBuf)>,
    /// Block devices in order: `(file, format, serial, boot)`.
    pub disks: Vec<Drive>,
    /// NICs: `(tap, mac)`.
    pub nics: Vec<(String, String)>,
}

/// One block device.
#[derive(Clone, Debug)]
pub struct Drive {
    /// The image file.
    pub file: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    /// The serial the guest sees (`/dev/disk/by-id/virtio-<serial>`), at most 20 bytes.
    pub serial: Option<String>,
    /// Boot from it.
    pub boot: bool,
    /// Read-only.
    pub read_only: bool,
}

impl Machine {
    /// QEMU's arguments for this machine with its files.
    pub fn args(&self, files: &VmFiles) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |parts: &[&OsStr]| {
            for p in parts {
                args.push(p.to_os_string());
            }
        };
        let joined = |prefix: &str, path: &Path, suffix: &str| {
            let mut s = OsString::from(prefix);
            s.push(escape(path));
            s.push(suffix);
            s
        };
        // TCG keeps QEMU's default CPU model: the one the Debian guest kernel is known to
        // boot fastest on under emulation.
        let (accel, cpu) = match self.accel {
            Accel::Kvm => ("kvm", "host"),
            Accel::Tcg => ("tcg", "qemu64"),
        };
        push(&[
            "-name".as_ref(),
            format!("guest={}", self.name).as_ref(),
            "-machine".as_ref(),
            format!("pc,accel={accel}").as_ref(),
            "-cpu".as_ref(),
            cpu.as_ref(),
            "-smp".as_ref(),
            self.cpus.to_string().as_ref(),
            "-m".as_ref(),
            format!("{}M", self.memory_mib).as_ref(),
            "-nodefaults".as_ref(),
            "-no-user-config".as_ref(),
            "-nographic".as_ref(),
            "-chardev".as_ref(),
            joined("file,id=console,append=on,path=", &files.serial_log(), "").as_ref(),
            "-serial".as_ref(),
            "chardev:console".as_ref(),
            "-qmp".as_ref(),
            joined("unix:", &files.qmp(), ",server=on,wait=off").as_ref(),
            "-pidfile".as_ref(),
            files.pidfile().as_os_str(),
            "-daemonize".as_ref(),
        ]);
        if let Some((kernel, initrd)) = &self.kernel {
            push(&[
                "-kernel".as_ref(),
                kernel.as_os_str(),
                "-initrd".as_ref(),
                initrd.as_os_str(),
                "-append".as_ref(),
                "console=ttyS0 quiet panic=-1".as_ref(),
            ]);
        }
        for (i, d) in self.disks.iter().enumerate() {
            let mut drive = joined(
                &format!("if=none,id=disk{i},format={},file=", d.format),
                &d.file,
                "",
            );
            if d.read_only {
                drive.push(",readonly=on");
            }
            let mut device = format!("virtio-blk-pci,drive=disk{i}");
            if let Some(serial) = &d.serial {
                device.push_str(&format!(",serial={serial}"));
            }
            if d.boot {
                device.push_str(",bootindex=0");
            }
            push(&[
                "-drive".as_ref(),
                drive.as_ref(),
                "-device".as_ref(),
                device.as_ref(),
            ]);
        }
        for (i, (tap, mac)) in self.nics.iter().enumerate() {
            push(&[
                "-netdev".as_ref(),
                format!("tap,id=net{i},ifname={tap},script=no,downscript=no").as_ref(),
                "-device".as_ref(),
                format!("virtio-net-pci,netdev=net{i},mac={mac},romfile=").as_ref(),
            ]);
        }
        args
    }
}

/// Starts the VM daemonized, inside `location_netns` when it has interfaces; returns its
/// PID once QEMU set the machine up.
pub async fn launch(
    machine: &Machine,
    files: &VmFiles,
    location_netns: Option<&str>,
) -> Result<i32, Error> {
    for stale in [files.qmp(), files.pidfile()] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&stale)(e)),
            _ => {}
        }
    }
    let qemu_args = machine.args(files);
    let mut argv: Vec<&OsStr> = Vec::new();
    let net;
    let program = match location_netns {
        Some(ns) => {
            net = format!("--net={}", netns::path(ns).display());
            argv.push(net.as_ref());
            argv.push(QEMU.as_ref());
            "nsenter"
        }
        None => QEMU,
    };
    argv.extend(qemu_args.iter().map(OsString::as_os_str));
    run(program, &argv).await?;
    files.running_pid().ok_or_else(|| Error::Command {
        program: QEMU.to_owned(),
        message: format!(
            "it exited right after starting; see {}",
            files.serial_log().display()
        ),
    })
}

/// Stops the VM: with `grace`, an ACPI power-button press (`system_powerdown`) and that
/// long for the guest to power off; then QMP `quit`, then SIGKILL when it is still there
/// after 10 s.
pub async fn stop(files: &VmFiles, grace: Duration) -> Result<(), Error> {
    let Some(pid) = files.running_pid() else {
        return Ok(());
    };
    if !grace.is_zero() && qmp::execute(&files.qmp(), "system_powerdown").await.is_ok() {
        let deadline = tokio::time::Instant::now() + grace;
        while files.running_pid().is_some() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if files.running_pid().is_none() {
            return Ok(());
        }
    }
    if let Err(e) = qmp::execute(&files.qmp(), "quit").await {
        tracing::debug!(error = %e, "QMP quit failed; killing QEMU");
    }
    for _ in 0..100 {
        if files.running_pid().is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if files.running_pid().is_some() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for _ in 0..50 {
        if files.running_pid().is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::Command {
        program: QEMU.to_owned(),
        message: format!("process {pid} does not stop"),
    })
}
