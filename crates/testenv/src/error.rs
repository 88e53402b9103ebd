use std::path::PathBuf;

/// What can go wrong while bringing up or talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to build the control plane binaries (tools/control-plane.sh): {0}")]
    Build(String),
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to start {name}: {source}")]
    Spawn {
        name: &'static str,
        source: std::io::Error,
    },
    #[error("{name} exited before it was ready ({status}); last log lines:\n{log}")]
    Exited {
        name: &'static str,
        status: String,
        log: String,
    },
    #[error("{name} was not ready after {seconds}s; last log lines:\n{log}")]
    NotReady {
        name: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("failed to generate certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("failed to build a client: {0}")]
    Client(String),
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("CRD {name} was not established in time: {detail}")]
    CrdNotEstablished { name: String, detail: String },
    #[error("the control plane failed to start earlier: {0}")]
    StartFailed(String),
    #[error("cannot apply the manifest: {0}")]
    Manifest(String),
    #[error("the API server does not serve {0}")]
    UnknownKind(String),
    #[error("{object} was rejected: {message}")]
    Rejected { object: String, message: String },
    #[error("failed to restart {name}: {detail}")]
    Restart { name: &'static str, detail: String },
}
