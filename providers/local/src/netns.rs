//! Network namespaces the provider owns: created by unsharing a dedicated thread and
//! bind-mounting its namespace at `/run/netns/<name>` (as `ip netns add` does), entered by
//! opening a netlink socket from a thread that joined the namespace. Nothing here ever
//! changes the host's own namespace: every change happens on a thread that left it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where named network namespaces are mounted.
pub const NETNS_DIR: &str = "/run/netns";

/// Errors from managing network namespaces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("failed to {what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A namespace system call failed.
    #[error("failed to {what} for network namespace {name}: {source}")]
    Sys {
        /// What was attempted.
        what: &'static str,
        /// The namespace.
        name: String,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The worker thread died.
    #[error("the network namespace worker thread for {0} panicked")]
    Thread(String),
}

/// The path of the namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether the namespace `name` exists (is mounted).
pub fn exists(name: &str) -> bool {
    // A bind-mounted namespace shows in the mount table; a stale plain file does not.
    is_mounted(&path(name))
}

fn is_mounted(p: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = p.display().to_string();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

/// Makes sure the namespace `name` exists; returns whether it was created now.
pub fn ensure(name: &str) -> Result<bool, Error> {
    if exists(name) {
        return Ok(false);
    }
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        what: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let target = path(name);
    File::create(&target).map_err(|source| Error::Io {
        what: "create",
        path: target.clone(),
        source,
    })?;
    let owned = name.to_owned();
    std::thread::spawn(move || -> Result<(), Error> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|source| Error::Sys {
            what: "unshare",
            name: owned.clone(),
            source,
        })?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| Error::Sys {
            what: "bind-mount",
            name: owned.clone(),
            source,
        })
    })
    .join()
    .map_err(|_| Error::Thread(name.to_owned()))??;
    Ok(true)
}

/// Removes the namespace `name`; absent is success.
pub fn remove(name: &str) -> Result<(), Error> {
    let p = path(name);
    if is_mounted(&p) {
        umount2(&p, MntFlags::MNT_DETACH).map_err(|source| Error::Sys {
            what: "unmount",
            name: name.to_owned(),
            source,
        })?;
    }
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: "remove",
            path: p,
            source,
        }),
    }
}

/// Names of existing namespaces starting with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && is_mounted(&path(n)))
        .collect()
}

/// Opens the namespace file (for moving links into it).
pub fn open(name: &str) -> Result<File, Error> {
    let p = path(name);
    File::open(&p).map_err(|source| Error::Io {
        what: "open",
        path: p,
        source,
    })
}

/// Runs `f` on a fresh thread that joined the namespace `name`; the host namespace and the
/// async runtime's threads are never moved.
pub fn run_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let file = open(name)?;
    let owned = name.to_owned();
    std::thread::spawn(move || -> Result<T, Error> {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| Error::Sys {
            what: "join",
            name: owned,
            source,
        })?;
        Ok(f())
    })
    .join()
    .map_err(|_| Error::Thread(name.to_owned()))?
}

/// Sets a sysctl under `/proc/sys/net` inside the namespace `name`.
pub fn sysctl(name: &str, key: &str, value: &str) -> Result<(), Error> {
    let file = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_owned();
    run_in(name, move || {
        std::fs::write(&file, value).map_err(|e| (file, e))
    })?
    .map_err(|(file, source)| Error::Io {
        what: "write",
        path: PathBuf::from(file),
        source,
    })
}
