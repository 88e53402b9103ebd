//! Shared fixture for the local provider's tests: the test binary's control plane with every
//! Datum CRD, and per test a host of its own — a containerd daemon and a loopback
//! `docker-registry` under a scratch directory, a busybox image pushed to it, a unique
//! network-namespace prefix and containerd namespace — all torn down when the test ends,
//! failed or not (killing tasks, removing namespaces and processes it made).
#![allow(dead_code)] // each test binary uses a different subset

pub mod system;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::provider_config::local::{
    Containerd as ContainerdSettings, Network, ProviderConfig, ProviderConfigSpec, Registry,
    default_instance_types, default_storage_classes,
};
use datum_provider::Options;
use datum_provider_local::containerd::{Containerd, Daemon};
use datum_provider_local::{LocalHost, LocalProvider, netns};
use datum_runtime::shutdown::CancellationToken;
use datum_testenv::ControlPlane;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

/// The busybox OCI layouts, built once per test binary: `(plain /bin/sh, serving)`.
fn image_layouts() -> &'static (PathBuf, PathBuf) {
    static LAYOUTS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LAYOUTS.get_or_init(|| {
        // Kept in the target directory between runs (built again only when missing).
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-provider-images");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/local-image.sh");
        let plain = dir.join("sh");
        let serving = dir.join("serving");
        for (out, cmd) in [
            (&plain, vec!["/bin/sh"]),
            (&serving, vec!["/bin/httpd", "-f", "-p", "8080"]),
        ] {
            if out.join("index.json").exists() {
                continue;
            }
            let status = Command::new(&script)
                .arg(out)
                .args(cmd)
                .status()
                .expect("tools/local-image.sh runs");
            assert!(status.success(), "the test image builds");
        }
        (plain, serving)
    })
}

/// A test's own host: containerd, a registry with images, a namespace prefix.
pub struct Host {
    pub dir: PathBuf,
    pub prefix: String,
    pub containerd_namespace: String,
    pub registry: String,
    daemon: Option<Daemon>,
    registry_process: Child,
    pub cp: &'static ControlPlane,
    pub client: Client,
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts everything for test `name`.
pub async fn host(_test: &str) -> Host {
    datum_provider_local::image::install_crypto_provider();
    let cp = ControlPlane::shared_with(datum_api::crds::all)
        .await
        .expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    let n = SERIAL.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}{n}", std::process::id() % 100_000);
    let dir = PathBuf::from(format!("/tmp/dpl-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let daemon = Daemon::start(&dir.join("containerd"))
        .await
        .expect("containerd starts");

    let port = free_port();
    let registry = format!("127.0.0.1:{port}");
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: {registry} }}\n",
            dir.join("registry").display()
        ),
    )
    .expect("the registry config is written");
    let registry_process = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "docker-registry", "serve"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    let (plain, serving) = image_layouts();
    for (layout, reference) in [
        (plain, "datum/busybox:v1"),
        (serving, "library/nginx:1"),
        (serving, "library/nginx:2"),
    ] {
        let mut pushed = false;
        for _ in 0..50 {
            let status = Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("docker://{registry}/{reference}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("skopeo runs");
            if status.success() {
                pushed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(pushed, "{reference} is pushed to the loopback registry");
    }
    Host {
        prefix: format!("t{tag}-"),
        containerd_namespace: format!("test{tag}"),
        registry,
        daemon: Some(daemon),
        registry_process,
        dir,
        cp,
        client,
    }
}

impl Host {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd").join("containerd.sock")
    }

    /// A ProviderConfig for this host (`socket` overrides the containerd socket).
    pub fn config(&self, name: &str, socket: Option<&str>) -> ProviderConfig {
        ProviderConfig::new(
            name,
            ProviderConfigSpec {
                state_dir: self.dir.join("state").display().to_string(),
                image_map: Default::default(),
                storage_classes: default_storage_classes(),
                registries: vec![
                    Registry {
                        host: self.registry.clone(),
                        insecure: true,
                        ..Registry::default()
                    },
                    Registry {
                        host: "docker.io".to_owned(),
                        mirrors: vec![format!("http://{}", self.registry)],
                        ..Registry::default()
                    },
                ],
                containerd: ContainerdSettings {
                    socket: socket
                        .map(str::to_owned)
                        .unwrap_or_else(|| self.socket().display().to_string()),
                    namespace: self.containerd_namespace.clone(),
                    ..ContainerdSettings::default()
                },
                network: Network {
                    namespace_prefix: self.prefix.clone(),
                },
                instance_types: default_instance_types(),
            },
        )
    }

    /// Applies the config.
    pub async fn apply_config(&self, config: &ProviderConfig) {
        let mut config = config.clone();
        config.metadata.managed_fields = None;
        config.metadata.resource_version = None;
        let name = config.metadata.name.clone().unwrap_or_default();
        Api::<ProviderConfig>::all(self.client.clone())
            .patch(
                &name,
                &PatchParams::apply("local-tests").force(),
                &Patch::Apply(&config),
            )
            .await
            .expect("the ProviderConfig applies");
    }

    /// A client of this host's containerd namespace.
    pub fn containerd(&self) -> Containerd {
        Containerd::connect(
            &self.socket(),
            &self.containerd_namespace,
            "io.containerd.runc.v2",
        )
        .expect("a containerd client")
    }

    /// The connected host, as the provider sees it.
    pub fn local_host(&self) -> LocalHost {
        LocalHost::new(&self.config("probe", None).spec, None, false).expect("connects")
    }

    /// Network namespaces this test made that still exist.
    pub fn namespaces(&self) -> Vec<String> {
        netns::list(&self.prefix)
    }

    /// Runs the SDK runtime in-process with `config`, watching `namespace`.
    pub fn start(&self, provider: LocalProvider, config: &str, namespace: &str) -> Running {
        let shutdown = CancellationToken::new();
        let mut options = Options::new(config);
        options.namespace = Some(namespace.to_owned());
        options.resync = Duration::from_secs(2);
        options.progress_requeue = Duration::from_millis(500);
        options.config_poll = Duration::from_millis(500);
        options.backoff_max = Duration::from_secs(2);
        let client = self.client.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = datum_provider::run(provider, client, options, token).await {
                eprintln!("the runtime stopped: {error}");
            }
        });
        Running { task, shutdown }
    }
}

/// A runtime running in this process.
pub struct Running {
    task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Running {
    /// Stops as a crash would.
    pub fn crash(self) {
        self.shutdown.cancel();
        self.task.abort();
    }

    /// Stops gracefully.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // VMs a failed test left running: their QEMU holds taps and files under `dir`.
        kill_qemus_under(&self.dir);
        // Kill whatever tasks are left (a failed test), then the daemons, namespaces, files.
        // Each call bounded (coreutils `timeout`): a `ctr tasks kill` once hung 14 minutes
        // on a task a crash test left behind, and a clean-up must never hang a run.
        let ctr = |args: &[&str]| {
            Command::new("timeout")
                .args(["--kill-after=5", "20", "ctr"])
                .arg("--address")
                .arg(self.socket())
                .args(["--namespace", &self.containerd_namespace])
                .args(args)
                .stderr(Stdio::null())
                .output()
        };
        if let Ok(out) = ctr(&["tasks", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
                std::thread::sleep(Duration::from_millis(100));
                let _ = ctr(&["tasks", "rm", "-f", id]);
                let _ = ctr(&["containers", "rm", id]);
            }
        }
        drop(self.daemon.take());
        let _ = self.registry_process.kill();
        let _ = self.registry_process.wait();
        for name in netns::list(&self.prefix) {
            let _ = netns::remove(&name);
        }
        // Overlay mounts of killed tasks are gone with their shims; leave nothing mounted.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        // runc leaves the empty parent cgroup `/datum`; remove it unless others use it.
        for hierarchy in [
            "memory", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "pids", "systemd",
            "unified",
        ] {
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(hierarchy).join("datum"));
        }
    }
}

/// Polls `probe` until it yields a value; panics after 60 s naming `what`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    probe: impl Fn() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `argv` inside the network namespace `netns` (never the host's): its success.
pub fn in_netns(netns_name: &str, argv: &[&str]) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", netns::path(netns_name).display()))
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The names of the links in the host's own network namespace.
pub fn host_links() -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    links
}

/// The PIDs of the QEMU processes whose command line mentions `dir`.
pub fn qemus_under(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let cmdline = String::from_utf8_lossy(&cmdline);
                    cmdline.starts_with("qemu-system") && cmdline.contains(&needle)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs the QEMU processes whose command line mentions `dir`.
pub fn kill_qemus_under(dir: &Path) {
    let pids = qemus_under(dir);
    for pid in &pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    if !pids.is_empty() {
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Creates a Location served by the local provider.
pub async fn location(client: &Client, name: &str) {
    use datum_api::networking::{Location, LocationProvider, LocationSpec};
    let spec = LocationSpec::new(
        "self-managed",
        LocationProvider::named("local", serde_json::Map::new()).expect("a provider Location"),
    );
    Api::<Location>::all(client.clone())
        .create(
            &kube::api::PostParams::default(),
            &Location::new(name, spec),
        )
        .await
        .expect("the Location is created");
}

/// Whether the Instance's condition `type_` is `True`.
pub fn is_true(i: &Instance, type_: &str) -> bool {
    i.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Whether the Instance reports `Running=True`.
pub fn running(i: &Instance) -> bool {
    is_true(i, "Running")
}

/// The first interface's address in the Instance's status.
pub fn address(i: &Instance) -> Option<String> {
    i.status
        .as_ref()?
        .network_interfaces
        .as_ref()?
        .first()?
        .assignments
        .as_ref()?
        .network_ip
        .clone()
}

/// Waits until the namespace of `instances` holds no Instance.
pub async fn all_gone(instances: &Api<Instance>) {
    eventually("every Instance is gone", || async {
        instances
            .list(&Default::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
    })
    .await;
}
