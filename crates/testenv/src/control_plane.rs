//! Starting, reaching and stopping one control plane.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

use crate::Error;
use crate::binaries::locate_binaries;
use crate::crds::install_crds;
use crate::pki::{Pki, write_private};
use crate::process::{ManagedProcess, remove_on_exit};

/// How long the API server may take to become ready; a cold start on 2 cores takes ~10 s.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The same after a restart, when every client reconnects at once and re-lists what it
/// watches: under a 1,000-Instance chaos run on 2 busy cores, the RBAC bootstrap hook alone
/// has taken over 2 minutes.
const RESTART_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Where and how to run a control plane.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Keep state here across restarts (`datum up`). `None`: a fresh temporary directory,
    /// deleted when the process exits (tests).
    pub data_dir: Option<PathBuf>,
    /// The API server's port; `None` picks a free one (persisted in `data_dir`).
    pub apiserver_port: Option<u16>,
    /// CRDs installed (and waited for) before the controller manager starts, so its garbage
    /// collector follows their owner references from the start: it looks for new resource
    /// types only every 30 s, and until then deleting an owner leaves its dependents.
    pub crds: Vec<CustomResourceDefinition>,
}

/// A running etcd, kube-apiserver and kube-controller-manager.
#[derive(Debug)]
pub struct ControlPlane {
    data_dir: PathBuf,
    server: String,
    pki: Pki,
    kubeconfig: PathBuf,
    processes: Vec<Arc<ManagedProcess>>,
}

/// The ports one control plane listens on, kept in `<data>/ports` so a restart reuses them.
#[derive(Clone, Copy, Debug)]
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
}

impl Ports {
    fn load_or_pick(dir: &Path, apiserver: Option<u16>) -> Result<Self, Error> {
        let file = dir.join("ports");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let numbers: Vec<u16> = text
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [etcd_client, etcd_peer, stored] = numbers[..] {
                return Ok(Self {
                    etcd_client,
                    etcd_peer,
                    apiserver: apiserver.unwrap_or(stored),
                });
            }
        }
        let ports = Self {
            etcd_client: free_port()?,
            etcd_peer: free_port()?,
            apiserver: match apiserver {
                Some(port) => port,
                None => free_port()?,
            },
        };
        let text = format!(
            "{} {} {}\n",
            ports.etcd_client, ports.etcd_peer, ports.apiserver
        );
        std::fs::write(&file, text).map_err(|source| Error::Write { path: file, source })?;
        Ok(ports)
    }
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| Error::Spawn {
            name: "port allocation",
            source,
        })
}

impl ControlPlane {
    /// The control plane shared by every test in this test binary, started on first use.
    pub async fn shared() -> Result<&'static ControlPlane, Error> {
        Self::shared_with(Vec::new).await
    }

    /// Like [`ControlPlane::shared`], with `crds()` installed as [`Options::crds`] describes.
    /// The first call in a test binary starts the plane, so every caller of one binary
    /// passes the same CRDs.
    pub async fn shared_with(
        crds: fn() -> Vec<CustomResourceDefinition>,
    ) -> Result<&'static ControlPlane, Error> {
        static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();
        SHARED
            .get_or_init(|| async {
                let options = Options {
                    crds: crds(),
                    ..Options::default()
                };
                Self::start(options).await.map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(|e| Error::StartFailed(e.clone()))
    }

    /// Builds the binaries if needed, starts the three processes and waits until the API
    /// server reports ready.
    pub async fn start(options: Options) -> Result<ControlPlane, Error> {
        let bins = tokio::task::spawn_blocking(locate_binaries)
            .await
            .map_err(|e| Error::Build(e.to_string()))??;
        let data_dir = match &options.data_dir {
            Some(dir) => dir.clone(),
            None => temporary_data_dir()?,
        };
        let ports = Ports::load_or_pick(&data_dir, options.apiserver_port)?;
        let pki = Pki::load_or_generate(&data_dir.join("pki"))?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let kubeconfig = data_dir.join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &pki.ca_cert,
            &pki.admin_cert,
            &pki.admin_key,
        )?;
        let controller_manager_kubeconfig = data_dir.join("controller-manager.kubeconfig");
        write_kubeconfig(
            &controller_manager_kubeconfig,
            &server,
            &pki.ca_cert,
            &pki.controller_manager_cert,
            &pki.controller_manager_key,
        )?;

        let logs = data_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| Error::Write {
            path: logs.clone(),
            source,
        })?;
        let mut plane = ControlPlane {
            data_dir,
            server,
            pki,
            kubeconfig,
            processes: Vec::new(),
        };
        let persistent = options.data_dir.is_some();

        plane.processes.push(Arc::new(ManagedProcess::start(
            "etcd",
            &bins.etcd(),
            plane.etcd_args(ports, persistent),
            &logs,
        )?));
        plane.processes.push(Arc::new(ManagedProcess::start(
            "kube-apiserver",
            &bins.kube_apiserver(),
            plane.apiserver_args(ports),
            &logs,
        )?));
        plane.wait_ready(READY_TIMEOUT).await?;
        if !options.crds.is_empty() {
            install_crds(&plane.admin_client().await?, &options.crds).await?;
        }
        plane.processes.push(Arc::new(ManagedProcess::start(
            "kube-controller-manager",
            &bins.kube_controller_manager(),
            controller_manager_args(&controller_manager_kubeconfig, &plane.pki),
            &logs,
        )?));
        Ok(plane)
    }

    fn etcd_args(&self, ports: Ports, persistent: bool) -> Vec<String> {
        let client = format!("http://127.0.0.1:{}", ports.etcd_client);
        let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
        let mut args = vec![
            "--name=datum".to_owned(),
            format!("--data-dir={}", self.data_dir.join("etcd").display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=datum={peer}"),
            "--log-level=warn".to_owned(),
            "--quota-backend-bytes=8589934592".to_owned(),
        ];
        if !persistent {
            // Test state is thrown away anyway; skipping fsync makes etcd several times faster.
            args.push("--unsafe-no-fsync".to_owned());
        }
        args
    }

    fn apiserver_args(&self, ports: Ports) -> Vec<String> {
        let pki = &self.pki;
        vec![
            format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.apiserver),
            format!("--cert-dir={}", self.data_dir.join("pki").display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!(
                "--service-account-key-file={}",
                pki.service_account_pub.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ),
            "--authorization-mode=RBAC".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            // Fairness queues only cost CPU on a single-user loopback server.
            "--enable-priority-and-fairness=false".to_owned(),
            "--profiling=false".to_owned(),
            "--v=0".to_owned(),
        ]
    }

    /// Polls `/readyz` until the API server answers `ok`, failing early if a process died.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let mut last_answer = String::new();
        loop {
            for process in &self.processes {
                process.check_running()?;
            }
            if let Ok(client) = self.admin_client().await {
                let request = http::Request::get("/readyz?verbose")
                    .body(Vec::new())
                    .map_err(|e| Error::Client(e.to_string()))?;
                match client.request_text(request).await {
                    Ok(body) if body.trim().ends_with("readyz check passed") => return Ok(()),
                    Ok(body) => last_answer = body,
                    Err(error) => last_answer = error.to_string(),
                }
            }
            if started.elapsed() > timeout {
                let log = self
                    .processes
                    .iter()
                    .find(|p| p.name == "kube-apiserver")
                    .map(|p| p.log_tail())
                    .unwrap_or_default();
                return Err(Error::NotReady {
                    name: "kube-apiserver",
                    seconds: timeout.as_secs(),
                    log: format!("{log}\n/readyz answered: {last_answer}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The API server's URL, e.g. `https://127.0.0.1:6443`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// An admin kubeconfig (client certificate in `system:masters`), for kubectl.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory holding state, certificates, kubeconfigs and logs.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Process ids by name, e.g. for a test that kills the API server.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes.iter().map(|p| (p.name, p.pid())).collect()
    }

    /// A client with cluster-admin rights. Each call builds a new client, so a client never
    /// outlives the async runtime it was made on (each `#[tokio::test]` has its own).
    pub async fn admin_client(&self) -> Result<Client, Error> {
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| Error::Client(e.to_string()))?;
        client_from(kubeconfig).await
    }

    /// A client authenticated as ServiceAccount `namespace/name` (created if missing), with
    /// only the rights RBAC gives that account. Also writes a kubeconfig for it under
    /// `<data>/kubeconfigs/`, returned alongside for kubectl.
    pub async fn service_account_client(
        &self,
        admin: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<(Client, PathBuf), Error> {
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(24 * 3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        let token = issued
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| Error::Client("no token issued".into()))?;

        let dir = self.data_dir.join("kubeconfigs");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(format!("{namespace}.{name}.kubeconfig"));
        let yaml = kubeconfig_yaml(&self.server, &self.pki.ca_cert, &format!("token: {token}"));
        write_private(&path, &yaml)?;
        let kubeconfig = Kubeconfig::from_yaml(&yaml).map_err(|e| Error::Client(e.to_string()))?;
        Ok((client_from(kubeconfig).await?, path))
    }

    /// Creates a namespace with a unique name derived from `prefix` (e.g. the test name).
    pub async fn fresh_namespace(&self, client: &Client, prefix: &str) -> Result<String, Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut stem: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        stem.truncate(50);
        let name = format!("{}-{n}", stem.trim_matches('-'));
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("datum.test/namespace".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(name)
    }

    /// Stops kube-apiserver (SIGTERM, then SIGKILL after a grace period), starts it again on
    /// the same port with the same etcd, certificates and flags, and waits until it is
    /// ready. Existing clients reconnect on their next request; watches must be re-established
    /// by their owners, as after any API server restart.
    pub async fn restart_apiserver(&self) -> Result<(), Error> {
        let apiserver = self
            .processes
            .iter()
            .find(|p| p.name == "kube-apiserver")
            .cloned()
            .ok_or(Error::Restart {
                name: "kube-apiserver",
                detail: "this control plane has none".into(),
            })?;
        tokio::task::spawn_blocking(move || apiserver.restart(Duration::from_secs(10)))
            .await
            .map_err(|e| Error::Restart {
                name: "kube-apiserver",
                detail: e.to_string(),
            })??;
        self.wait_ready(RESTART_READY_TIMEOUT).await
    }

    /// Fails with the log tail of the first process that has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        self.processes.iter().try_for_each(|p| p.check_running())
    }

    /// Stops the controller manager, API server and etcd, in that order.
    pub fn stop(&self) {
        for process in self.processes.iter().rev() {
            process.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn controller_manager_args(kubeconfig: &Path, pki: &Pki) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
        "--controllers=garbagecollector,namespace,serviceaccount".to_owned(),
        format!("--root-ca-file={}", pki.ca_cert.display()),
        "--leader-elect=false".to_owned(),
        "--use-service-account-credentials=false".to_owned(),
        "--bind-address=127.0.0.1".to_owned(),
        "--secure-port=0".to_owned(),
        "--v=0".to_owned(),
    ]
}

/// A directory under the system temp dir, unique to this control plane, removed when this
/// process exits (unless `DATUM_TESTENV_KEEP` is set). Directories left by processes that no
/// longer exist (a crash before cleanup ran) are swept first.
fn temporary_data_dir() -> Result<PathBuf, Error> {
    let root = std::env::temp_dir().join("datum-testenv");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let stale = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    // One directory per process, and in it one per control plane the process starts.
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let process_dir = root.join(std::process::id().to_string());
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let dir = process_dir.join(n.to_string());
    std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    // DATUM_TESTENV_KEEP=1 keeps the directory (logs, etcd data) for debugging a failure.
    if n == 0 && std::env::var_os("DATUM_TESTENV_KEEP").is_none() {
        remove_on_exit(&process_dir)?;
    }
    Ok(dir)
}

fn kubeconfig_yaml(server: &str, ca: &Path, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: datum
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: datum
  user:
    {user}
contexts:
- name: datum
  context:
    cluster: datum
    user: datum
current-context: datum
",
        ca = ca.display()
    )
}

fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<(), Error> {
    let user = format!(
        "client-certificate: {}\n    client-key: {}",
        cert.display(),
        key.display()
    );
    write_private(path, &kubeconfig_yaml(server, ca, &user))
}

async fn client_from(kubeconfig: Kubeconfig) -> Result<Client, Error> {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Client(e.to_string()))?;
    Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
}
