//! The fallback address allocator, used while the control plane's IPAM assignments are not
//! visible to the provider (the SDK hands providers the spec only): each network gets a /24
//! out of `10.213.0.0/16` and each instance interface an address in it, `.1` being the
//! gateway on the bridge.
//!
//! An allocation is a file created with `O_EXCL` under the state directory
//! (`ipam/networks/<slot>` holding the network key, `ipam/<slot>/<host>` holding the
//! owner), so allocation is conflict-free across concurrent reconciles and survives
//! restarts: the lowest free slot wins, and an owner that already holds one gets it back.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Errors from allocating.
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
    /// Every slot is taken.
    #[error("no free {0} left")]
    Exhausted(&'static str),
}

/// A network's allocation: its /24 and gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkRange {
    /// Which /24 of `10.213.0.0/16`.
    pub slot: u8,
}

impl NetworkRange {
    /// The gateway, `.1`.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, 1)
    }

    /// The host address `host` in the range.
    pub fn address(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, host)
    }

    /// The prefix length.
    pub const PREFIX: u8 = 24;
}

/// The allocator over one state directory.
#[derive(Clone, Debug)]
pub struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    /// Allocations kept under `<state_dir>/ipam`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("ipam"),
        }
    }

    /// The range of `network_key`, allocating one if needed.
    pub fn network(&self, network_key: &str) -> Result<NetworkRange, Error> {
        let slot = claim(
            &self.dir.join("networks"),
            network_key,
            0..=255,
            "network range",
        )?;
        Ok(NetworkRange { slot })
    }

    /// The range of `network_key` if it has one.
    pub fn find_network(&self, network_key: &str) -> Option<NetworkRange> {
        find(&self.dir.join("networks"), network_key).map(|slot| NetworkRange { slot })
    }

    /// Releases the range of `network_key` and every address in it.
    pub fn release_network(&self, network_key: &str) -> Result<(), Error> {
        if let Some(slot) = find(&self.dir.join("networks"), network_key) {
            remove(&self.dir.join(slot.to_string()))?;
            remove(&self.dir.join("networks").join(slot.to_string()))?;
        }
        Ok(())
    }

    /// The address of `owner` (e.g. `<external name>/<interface>`) in `range`.
    pub fn address(&self, range: NetworkRange, owner: &str) -> Result<Ipv4Addr, Error> {
        let host = claim(
            &self.dir.join(range.slot.to_string()),
            owner,
            2..=254,
            "address",
        )?;
        Ok(range.address(host))
    }

    /// The address of `owner` in `range`, if it has one.
    pub fn find_address(&self, range: NetworkRange, owner: &str) -> Option<Ipv4Addr> {
        find(&self.dir.join(range.slot.to_string()), owner).map(|h| range.address(h))
    }

    /// Every network with a range.
    pub fn networks(&self) -> Vec<(String, NetworkRange)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("networks")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let slot = e.file_name().to_str()?.parse().ok()?;
                let key = std::fs::read_to_string(e.path()).ok()?;
                Some((key, NetworkRange { slot }))
            })
            .collect()
    }

    /// Releases every address whose owner starts with `owner_prefix`, in every range.
    pub fn release_addresses(&self, owner_prefix: &str) -> Result<(), Error> {
        let Ok(ranges) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for range in ranges.filter_map(Result::ok) {
            if range.file_name() == "networks" {
                continue;
            }
            let Ok(hosts) = std::fs::read_dir(range.path()) else {
                continue;
            };
            for host in hosts.filter_map(Result::ok) {
                let owner = std::fs::read_to_string(host.path()).unwrap_or_default();
                if owner.starts_with(owner_prefix) {
                    remove(&host.path())?;
                }
            }
        }
        Ok(())
    }
}

fn find(dir: &Path, owner: &str) -> Option<u8> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|o| o == owner))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .min()
}

fn claim(
    dir: &Path,
    owner: &str,
    slots: std::ops::RangeInclusive<u8>,
    what: &'static str,
) -> Result<u8, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        what: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    if let Some(slot) = find(dir, owner) {
        return Ok(slot);
    }
    for slot in slots {
        let path = dir.join(slot.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {
                std::fs::write(&path, owner).map_err(|source| Error::Io {
                    what: "write",
                    path,
                    source,
                })?;
                return Ok(slot);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io {
                    what: "create",
                    path,
                    source,
                });
            }
        }
    }
    Err(Error::Exhausted(what))
}

fn remove(path: &Path) -> Result<(), Error> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_stable_and_distinct() {
        let dir = std::env::temp_dir().join(format!("datum-ipam-{}", std::process::id()));
        let ipam = Ipam::new(&dir);
        let a = ipam.network("ns/a").expect("a range");
        let b = ipam.network("ns/b").expect("a range");
        assert_ne!(a, b);
        assert_eq!(ipam.network("ns/a").expect("again"), a);
        let x = ipam.address(a, "datum-x/0").expect("an address");
        let y = ipam.address(a, "datum-y/0").expect("an address");
        assert_ne!(x, y);
        assert_eq!(ipam.address(a, "datum-x/0").expect("again"), x);
        ipam.release_addresses("datum-x/").expect("released");
        assert_eq!(ipam.address(a, "datum-z/0").expect("reused"), x);
        let _ = std::fs::remove_dir_all(dir);
    }
}
