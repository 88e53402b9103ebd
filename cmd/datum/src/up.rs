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

use crate::defaults::{self, ProviderChoice};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Directory for state, certificates, kubeconfig and logs
    /// [default: $XDG_DATA_HOME/datum or ~/.local/share/datum]
    #[arg(long, env = "DATUM_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Port for the Kubernetes API server on 127.0.0.1.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// The provider serving the default Location `local`: `local` runs real containers on
    /// this machine (as root), `sim` simulates a cloud.
    #[arg(long, value_enum, default_value_t = ProviderChoice::Local)]
    provider: ProviderChoice,
    /// A registry on this machine to pull images from over plain HTTP, e.g.
    /// `127.0.0.1:5000` (repeatable; loopback addresses only).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Where the controllers serve `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_address: std::net::SocketAddr,
    /// Prefix of the network namespaces the local provider makes (tests give each run its
    /// own, so they can clean up after themselves).
    #[arg(long, default_value = "datum-", hide = true)]
    netns_prefix: String,
    /// Where the provider serves its own `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "127.0.0.1:9465")]
    provider_metrics_address: std::net::SocketAddr,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:
  datum down            stop; the next `datum up` carries on where this one stopped
  datum down --purge    remove every Workload and Network (the provider tears down their
                        containers, VMs and networks), stop, and delete the state directory")]
pub struct DownArgs {
    /// The directory `datum up` was started with.
    #[arg(long, env = "DATUM_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Before stopping, delete every Workload, Instance and Network and wait until the
    /// provider has removed what it made for them; then delete the state directory.
    #[arg(long)]
    purge: bool,
    /// How long --purge waits for the provider (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_parser = crate::deploy::parse_duration, requires = "purge")]
    timeout: Duration,
}

pub fn default_data_dir() -> anyhow::Result<PathBuf> {
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

/// Whether this process runs with effective UID 0 (the second field of `Uid:`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Fails with the flag to change when something already listens on `address`, before
/// anything is started (the API server would otherwise die with a bind error in its log,
/// and a provider's health server would fail unseen).
fn ensure_free(address: std::net::SocketAddr, flag: &str) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(address) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{address} is already in use (another `datum up` or Kubernetes?); stop that, or pass another {flag}"
        ),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("cannot listen on {address}; pass another {flag}"))),
    }
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

    if args.provider == ProviderChoice::Local && !is_root() {
        bail!(
            "the local provider needs root (it makes network namespaces and runs containerd); run `sudo datum up`, or `datum up --provider sim` for a simulated cloud"
        );
    }
    let loopback = std::net::Ipv4Addr::LOCALHOST;
    ensure_free((loopback, args.port).into(), "--port")?;
    ensure_free(args.metrics_address, "--metrics-address")?;
    ensure_free(args.provider_metrics_address, "--provider-metrics-address")?;
    // Before any TLS client exists: the image puller and kube must agree on one provider.
    datum_provider_local::image::install_crypto_provider();
    let total = 4;
    step(
        1,
        total,
        "starting etcd, kube-apiserver, the Datum CRDs and kube-controller-manager (the first run builds them from source, several minutes)",
    );
    let started = Instant::now();
    let plane = ControlPlane::start(Options {
        data_dir: Some(dir.clone()),
        apiserver_port: Some(args.port),
        crds: datum_api::crds::all(),
    })
    .await
    .context("the control plane did not start")?;
    let client = plane.admin_client().await?;

    let daemon = match args.provider {
        ProviderChoice::Local => {
            step(2, total, "starting containerd for the local provider");
            Some(
                datum_provider_local::containerd::Daemon::start(&dir.join("containerd"))
                    .await
                    .context(
                        "containerd did not start (is it installed? tools/setup.sh installs it)",
                    )?,
            )
        }
        ProviderChoice::Sim => {
            step(2, total, "the sim provider needs no daemon");
            None
        }
    };

    step(
        3,
        total,
        &format!(
            "starting the controllers and the {} provider, with a default Location and Network",
            args.provider.key()
        ),
    );
    let settings = defaults::Settings {
        provider: args.provider,
        dir: &dir,
        registries: &args.insecure_registries,
        netns_prefix: &args.netns_prefix,
    };
    defaults::apply(&client, &settings).await?;
    let stop = CancellationToken::new();
    let metrics = std::sync::Arc::new(datum_runtime::metrics::Metrics::new());
    let health = std::sync::Arc::new(datum_runtime::health::Health::default());
    let listener = datum_runtime::health::bind(args.metrics_address)
        .await
        .with_context(|| {
            format!(
                "cannot serve metrics on {}; pass another --metrics-address",
                args.metrics_address
            )
        })?;
    let metrics_address = listener.local_addr()?;
    tokio::spawn(datum_runtime::health::serve(
        listener,
        metrics.clone(),
        health.clone(),
        stop.clone(),
    ));
    health.set_ready(true);
    let mut controllers = tokio::spawn(datum_control::run(
        client.clone(),
        datum_control::Settings {
            metrics,
            ..datum_control::Settings::default()
        },
        stop.clone().cancelled_owned(),
    ));
    let mut options = datum_provider::Options::new(defaults::PROVIDER_CONFIG);
    options.health_address = Some(args.provider_metrics_address);
    let mut provider = match args.provider {
        ProviderChoice::Local => tokio::spawn(datum_provider::run(
            datum_provider_local::LocalProvider {
                kube: Some(client.clone()),
                ..Default::default()
            },
            client.clone(),
            options,
            stop.clone(),
        )),
        ProviderChoice::Sim => tokio::spawn(datum_provider::run(
            datum_provider_sim::SimProvider,
            client.clone(),
            options,
            stop.clone(),
        )),
    };

    step(4, total, "ready");
    std::fs::write(pid_file(&dir), std::process::id().to_string())?;
    println!(
        "Datum is up in {:.0?} (API server {}, metrics on http://{}/metrics).\n\n  export KUBECONFIG={}\n  kubectl get locations,networks,workloads -A\n  datum deploy hello --image <image>\n  datum status\n\nLocation `{}` (city code {}) is served by the {} provider. Stop with Ctrl-C or `datum down`; state stays in {}.",
        started.elapsed(),
        plane.server_url(),
        metrics_address,
        plane.kubeconfig_path().display(),
        defaults::LOCATION,
        defaults::CITY_CODE,
        args.provider.key(),
        dir.display()
    );

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut health = tokio::time::interval(Duration::from_secs(2));
    let outcome = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            // Neither returns before `stop`: if one does, the system is not running.
            ended = &mut controllers => {
                break Err(anyhow::anyhow!("the controllers stopped unexpectedly ({ended:?}); see the log above"));
            }
            ended = &mut provider => {
                let why = match ended {
                    Ok(Ok(())) => "it returned".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                break Err(anyhow::anyhow!("the {} provider stopped unexpectedly: {why}", args.provider.key()));
            }
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
    if !controllers.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    }
    if !provider.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(10), provider).await;
    }
    // Containers keep running under their shims; the next `datum up` adopts them.
    if let Some(daemon) = daemon {
        daemon.stop().await;
    }
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
        if args.purge && dir.exists() {
            bail!(
                "datum is not running, so what it made cannot be removed first: start it with `datum up` (with the same --provider), then run `datum down --purge`"
            );
        }
        eprintln!(
            "datum is not running (no live process in {})",
            pid_file(&dir).display()
        );
        return Ok(());
    };
    if args.purge {
        let client = crate::connect::ConnectArgs::of_data_dir(&dir)
            .client()
            .await?;
        crate::purge::remove_everything(&client, args.timeout).await?;
        eprintln!("removed every Workload, Instance and Network");
    }
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
    if args.purge {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot delete the state directory {}", dir.display()))?;
        eprintln!("deleted {}", dir.display());
    }
    Ok(())
}
