//! `datum up` and `datum down`: the whole system on one machine.
//!
//! State (etcd data, certificates, kubeconfig, logs) lives in one directory, so running
//! `datum up` again picks up where the last run stopped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use datum_runtime::shutdown::CancellationToken;
use datum_testenv::{ControlPlane, Options};
use tokio::signal::unix::{SignalKind, signal};

use crate::defaults;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Directory for state, certificates, kubeconfig and logs
    /// [default: $XDG_DATA_HOME/datum or ~/.local/share/datum]
    #[arg(long, env = "DATUM_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Port for the Kubernetes API server on 127.0.0.1.
    #[arg(long, default_value_t = 6443)]
    port: u16,
}

#[derive(clap::Args)]
pub struct DownArgs {
    /// The directory `datum up` was started with.
    #[arg(long, env = "DATUM_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("datum"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/datum"))
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("datum.pid")
}

/// The pid of a running `datum up` for this directory, if there is one.
fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("datum")
        .then_some(pid)
}

/// Whether `pid` is a live process (a zombie has exited; only its parent has not reaped it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn step(n: usize, total: usize, what: &str) {
    eprintln!("[{n}/{total}] {what}");
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    if let Some(pid) = running_pid(&dir) {
        bail!(
            "datum is already running (pid {pid}) with state in {}; stop it with `datum down`",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    step(
        1,
        3,
        "starting etcd, kube-apiserver and kube-controller-manager (the first run builds them from source, several minutes)",
    );
    let started = Instant::now();
    let plane = ControlPlane::start(Options {
        data_dir: Some(dir.clone()),
        apiserver_port: Some(args.port),
    })
    .await
    .context("the control plane did not start")?;
    let client = plane.admin_client().await?;

    step(2, 4, "installing the Datum CRDs");
    datum_testenv::install_crds(&client, &datum_api::crds::all()).await?;

    step(
        3,
        4,
        "starting the controllers and the sim provider, with a default Location and Network",
    );
    defaults::apply(&client, &dir.join("sim")).await?;
    let stop = CancellationToken::new();
    let controllers = tokio::spawn(datum_control::run(
        client.clone(),
        datum_control::Settings::default(),
        stop.clone().cancelled_owned(),
    ));
    let provider = tokio::spawn(datum_provider::run(
        datum_provider_sim::SimProvider,
        client.clone(),
        datum_provider::Options::new(defaults::PROVIDER_CONFIG),
        stop.clone(),
    ));

    step(4, 4, "ready");
    std::fs::write(pid_file(&dir), std::process::id().to_string())?;
    println!(
        "Datum is up in {:.0?} (API server {}).\n\n  export KUBECONFIG={}\n  kubectl get locations,networks,workloads -A\n\nLocation `{}` (city code {}) is served by the sim provider. Stop with Ctrl-C or `datum down`; state stays in {}.",
        started.elapsed(),
        plane.server_url(),
        plane.kubeconfig_path().display(),
        defaults::LOCATION,
        defaults::CITY_CODE,
        dir.display()
    );

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut health = tokio::time::interval(Duration::from_secs(2));
    let outcome = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            _ = health.tick() => {
                if let Err(e) = plane.check_running() {
                    break Err(anyhow::Error::new(e).context("a control-plane process stopped unexpectedly"));
                }
            }
        }
    };
    eprintln!("stopping…");
    stop.cancel();
    // Controllers finish the reconciles they started; the API server must outlive them.
    let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), provider).await;
    plane.stop();
    let _ = std::fs::remove_file(pid_file(&dir));
    outcome
}

pub async fn down(args: DownArgs) -> anyhow::Result<()> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let Some(pid) = running_pid(&dir) else {
        eprintln!(
            "datum is not running (no live process in {})",
            pid_file(&dir).display()
        );
        return Ok(());
    };
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("could not signal datum (pid {pid}); is it running as another user?");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("datum (pid {pid}) did not stop within 60s; kill it with `kill -9 {pid}`");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("datum stopped");
    Ok(())
}
