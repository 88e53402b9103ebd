//! A real Kubernetes control plane — etcd, kube-apiserver and kube-controller-manager — on
//! loopback, for tests and for `datum up`.
//!
//! The binaries are built from pinned upstream Go modules (`tools/kube`, `tools/etcd`) by
//! `tools/control-plane.sh`, once per machine, into a cache keyed by version. The API server
//! runs with generated certificates, RBAC authorization and service-account tokens; the
//! controller manager runs the garbage collector and namespace controllers.
//!
//! In tests, one control plane serves a whole test binary and each test takes a fresh
//! namespace:
//!
//! ```no_run
//! # async fn demo() -> Result<(), datum_testenv::Error> {
//! let cp = datum_testenv::ControlPlane::shared().await?;
//! let client = cp.admin_client().await?;
//! let namespace = cp.fresh_namespace(&client, "demo").await?;
//! # let _ = namespace; Ok(()) }
//! ```
//!
//! Every process is started with a parent-death signal, so nothing outlives the test binary
//! or `datum up`, even when it panics or is killed.

mod binaries;
mod control_plane;
mod crds;
mod error;
mod manifests;
mod pki;
mod process;

pub use binaries::{BinDir, locate_binaries};
pub use control_plane::{ControlPlane, Options};
pub use crds::install_crds;
pub use error::Error;
pub use manifests::{Applied, apply_manifests, apply_object, container_args};
