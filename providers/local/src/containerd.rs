//! containerd: a daemon the provider can own (config, root, state and socket under one
//! directory, as `spec/local-runtime.md` shows) and a small client over its gRPC socket for
//! what the provider does — containers with a runc spec, tasks whose root filesystem is an
//! overlay the provider hands over, kill, delete, list by label.
//!
//! Images do not go through containerd's content store: the provider unpacks them itself
//! (see [`crate::image`]) and passes the overlay mount when it creates the task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetContainerRequest, GetRequest, KillRequest, ListContainersRequest,
    StartRequest,
};
use containerd_client::types::Mount;
use containerd_client::types::v1::{Process, Status};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// The `Any` type of a runtime spec.
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// Errors from containerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon could not be started.
    #[error("failed to start containerd in {dir}: {message}")]
    Start {
        /// Its directory.
        dir: PathBuf,
        /// Why.
        message: String,
    },
    /// A call failed.
    #[error("containerd failed to {what}: {status}")]
    Call {
        /// What was attempted.
        what: String,
        /// The gRPC status (message only).
        status: String,
    },
    /// The namespace is not valid gRPC metadata.
    #[error("containerd namespace {0:?} is not valid")]
    Namespace(String),
}

/// A containerd daemon started by the provider (or a test); killed when dropped.
pub struct Daemon {
    child: tokio::process::Child,
    /// Its socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `containerd` with root, state and socket under `dir`, and waits until it
    /// answers (at most 10 s).
    pub async fn start(dir: &Path) -> Result<Self, Error> {
        let fail = |message: String| Error::Start {
            dir: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n[grpc]\n  address = {socket:?}\n\n[ttrpc]\n  address = {ttrpc:?}\n",
            root = dir.join("root").display().to_string(),
            state = dir.join("state").display().to_string(),
            socket = socket.display().to_string(),
            ttrpc = dir.join("containerd.sock.ttrpc").display().to_string(),
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).map_err(|e| fail(e.to_string()))?;
        let log =
            std::fs::File::create(dir.join("containerd.log")).map_err(|e| fail(e.to_string()))?;
        // The daemon dies with the thread that started it; its shims (and containers) live on.
        let child = tokio::process::Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "containerd", "--config"])
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("setpriv containerd: {e}")))?;
        let daemon = Self { child, socket };
        for _ in 0..200 {
            if let Ok(client) =
                Containerd::connect(&daemon.socket, "datum", "io.containerd.runc.v2")
                && client.version().await.is_ok()
            {
                return Ok(daemon);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(fail("it did not answer within 10 s".to_owned()))
    }

    /// Stops the daemon (the shims, and so the containers, keep running).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A client of one containerd namespace.
#[derive(Clone, Debug)]
pub struct Containerd {
    channel: Channel,
    namespace: String,
    runtime: String,
}

/// `file://` URI of a log file, for a task's stdout and stderr.
pub fn log_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

impl Containerd {
    /// A client of `socket` (connected lazily: an unreachable socket fails each call, not
    /// this), acting in containerd namespace `namespace` with shim `runtime`.
    pub fn connect(socket: &Path, namespace: &str, runtime: &str) -> Result<Self, Error> {
        if tonic::metadata::MetadataValue::try_from(namespace).is_err() {
            return Err(Error::Namespace(namespace.to_owned()));
        }
        let path = socket.to_path_buf();
        let channel = Endpoint::from_static("http://[::]")
            .connect_timeout(Duration::from_secs(2))
            .connect_with_connector_lazy(tower_service(path));
        Ok(Self {
            channel,
            namespace: namespace.to_owned(),
            runtime: runtime.to_owned(),
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = tonic::metadata::MetadataValue::try_from(self.namespace.as_str()) {
            request.metadata_mut().insert("containerd-namespace", value);
        }
        request
    }

    fn fail(what: impl Into<String>) -> impl FnOnce(tonic::Status) -> Error {
        let what = what.into();
        move |status| Error::Call {
            what,
            status: status.message().to_owned(),
        }
    }

    /// The daemon's version.
    pub async fn version(&self) -> Result<String, Error> {
        let mut client = containerd_client::services::v1::version_client::VersionClient::new(
            self.channel.clone(),
        );
        let response = client
            .version(())
            .await
            .map_err(Self::fail("report its version"))?;
        Ok(response.into_inner().version)
    }

    fn containers(
        &self,
    ) -> containerd_client::services::v1::containers_client::ContainersClient<Channel> {
        containerd_client::services::v1::containers_client::ContainersClient::new(
            self.channel.clone(),
        )
    }

    fn tasks(&self) -> containerd_client::services::v1::tasks_client::TasksClient<Channel> {
        containerd_client::services::v1::tasks_client::TasksClient::new(self.channel.clone())
    }

    /// The container `id`, if it exists.
    pub async fn container(&self, id: &str) -> Result<Option<Container>, Error> {
        match self
            .containers()
            .get(self.request(GetContainerRequest { id: id.to_owned() }))
            .await
        {
            Ok(r) => Ok(r.into_inner().container),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Self::fail(format!("get container {id}"))(s)),
        }
    }

    /// Containers whose label `key` is `value`.
    pub async fn containers_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<Container>, Error> {
        let filter = format!("labels.\"{key}\"==\"{value}\"");
        let response = self
            .containers()
            .list(self.request(ListContainersRequest {
                filters: vec![filter],
            }))
            .await
            .map_err(Self::fail("list containers"))?;
        Ok(response.into_inner().containers)
    }

    /// Creates container `id` with the runtime spec `spec` (JSON); existing is success.
    pub async fn create_container(
        &self,
        id: &str,
        spec: &serde_json::Value,
        labels: HashMap<String, String>,
    ) -> Result<(), Error> {
        let container = Container {
            id: id.to_owned(),
            labels,
            runtime: Some(Runtime {
                name: self.runtime.clone(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.to_owned(),
                value: serde_json::to_vec(spec).unwrap_or_default(),
            }),
            ..Container::default()
        };
        match self
            .containers()
            .create(self.request(CreateContainerRequest {
                container: Some(container),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(Self::fail(format!("create container {id}"))(s)),
        }
    }

    /// Deletes container `id`; absent is success.
    pub async fn delete_container(&self, id: &str) -> Result<(), Error> {
        match self
            .containers()
            .delete(self.request(DeleteContainerRequest { id: id.to_owned() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(Self::fail(format!("delete container {id}"))(s)),
        }
    }

    /// The task of container `id`, if there is one.
    pub async fn task(&self, id: &str) -> Result<Option<Process>, Error> {
        match self
            .tasks()
            .get(self.request(GetRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().process),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Self::fail(format!("get the task of {id}"))(s)),
        }
    }

    /// Creates and starts the task of container `id` on `rootfs`, logging to `log`.
    pub async fn start_task(&self, id: &str, rootfs: Vec<Mount>, log: &Path) -> Result<u32, Error> {
        let uri = log_uri(log);
        match self
            .tasks()
            .create(self.request(CreateTaskRequest {
                container_id: id.to_owned(),
                rootfs,
                stdout: uri.clone(),
                stderr: uri,
                ..CreateTaskRequest::default()
            }))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(Self::fail(format!("create the task of {id}"))(s)),
        }
        let response = self
            .tasks()
            .start(self.request(StartRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
            }))
            .await
            .map_err(Self::fail(format!("start the task of {id}")))?;
        Ok(response.into_inner().pid)
    }

    /// Kills the task of container `id` and deletes it; absent is success.
    pub async fn remove_task(&self, id: &str) -> Result<(), Error> {
        let Some(task) = self.task(id).await? else {
            return Ok(());
        };
        if task.status != Status::Stopped as i32 && task.status != Status::Created as i32 {
            match self
                .tasks()
                .kill(self.request(KillRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                    signal: 9,
                    all: true,
                }))
                .await
            {
                Ok(_) => {}
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(Self::fail(format!("kill the task of {id}"))(s)),
            }
            for _ in 0..100 {
                match self.task(id).await? {
                    Some(t) if t.status != Status::Stopped as i32 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => break,
                }
            }
        }
        match self
            .tasks()
            .delete(self.request(DeleteTaskRequest {
                container_id: id.to_owned(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(Self::fail(format!("delete the task of {id}"))(s)),
        }
    }
}

/// Connects each gRPC connection to the unix socket `path`.
fn tower_service(
    path: PathBuf,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>>>
             + Send,
> + Clone
+ Send {
    tower::service_fn(move |_: http::Uri| {
        let path = path.clone();
        async move {
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                tokio::net::UnixStream::connect(path).await?,
            ))
        }
    })
}
