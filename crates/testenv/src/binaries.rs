//! Where the control plane binaries come from: the pinned Go build in `tools/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// A directory holding `etcd`, `kube-apiserver` and `kube-controller-manager`.
#[derive(Clone, Debug)]
pub struct BinDir(pub PathBuf);

impl BinDir {
    pub fn etcd(&self) -> PathBuf {
        self.0.join("etcd")
    }
    pub fn kube_apiserver(&self) -> PathBuf {
        self.0.join("kube-apiserver")
    }
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.0.join("kube-controller-manager")
    }
}

/// The repository's `tools/` directory, known at compile time.
fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools")
}

/// Finds the binaries, building them on first use (progress goes to stderr).
///
/// `DATUM_CONTROL_PLANE_BIN` overrides the location, for installs without the source tree.
pub fn locate_binaries() -> Result<BinDir, Error> {
    if let Some(dir) = std::env::var_os("DATUM_CONTROL_PLANE_BIN") {
        return Ok(BinDir(PathBuf::from(dir)));
    }
    let script = tools_dir().join("control-plane.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Build(format!("cannot run {}: {e}", script.display())))?;
    if !output.status.success() {
        return Err(Error::Build(format!(
            "{} exited with {}",
            script.display(),
            output.status
        )));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err(Error::Build("the build script printed no directory".into()));
    }
    Ok(BinDir(PathBuf::from(dir)))
}
