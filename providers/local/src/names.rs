//! Deterministic names for everything the provider makes on the host, derived from the
//! SDK's external name (`datum-<uid>`) and the Datum names, so a restarted provider finds
//! what exists instead of making it twice.
//!
//! Kernel interface names are at most 15 bytes, so bridges and veths carry a short hash.

use sha2::{Digest, Sha256};

/// The first `len` hex digits of SHA-256 of `parts` joined by `/`.
pub fn short_hash(parts: &[&str], len: usize) -> String {
    let digest = Sha256::digest(parts.join("/").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.chars().take(len).collect()
}

/// Names under one provider configuration's network-namespace prefix.
#[derive(Clone, Debug)]
pub struct HostNames {
    prefix: String,
}

impl HostNames {
    /// Names starting with `prefix` (e.g. `datum-`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The provider-owned "host" network namespace of a Location: it holds the bridges.
    pub fn location_netns(&self, location: &str) -> String {
        format!("{}h-{}", self.prefix, short_hash(&[location], 10))
    }

    /// The network namespace of one instance.
    pub fn instance_netns(&self, external_name: &str) -> String {
        format!("{}i-{}", self.prefix, short_hash(&[external_name], 16))
    }

    /// The prefix every instance namespace starts with.
    pub fn instance_netns_prefix(&self) -> String {
        format!("{}i-", self.prefix)
    }
}

/// The key of a network: its namespace and name.
pub fn network_key(namespace: &str, network: &str) -> String {
    format!("{namespace}/{network}")
}

/// The bridge of a network inside the Location's namespace (13 bytes).
pub fn bridge(network_key: &str) -> String {
    format!("br-{}", short_hash(&[network_key], 10))
}

/// The host-side veth of interface `index` of an instance (15 bytes).
pub fn host_veth(external_name: &str, index: usize) -> String {
    format!("v{}{:02x}", short_hash(&[external_name], 12), index % 256)
}

/// The instance-side veth before it moves into the instance's namespace (15 bytes).
pub fn peer_veth(external_name: &str, index: usize) -> String {
    format!("p{}{:02x}", short_hash(&[external_name], 12), index % 256)
}

/// The interface name inside the instance: `eth0`, `eth1`, ...
pub fn instance_interface(index: usize) -> String {
    format!("eth{index}")
}

/// The tap of interface `index` of a VM, in its Location's namespace (15 bytes).
pub fn tap(external_name: &str, index: usize) -> String {
    format!("t{}{:02x}", short_hash(&[external_name], 12), index % 256)
}

/// The MAC address of interface `index` of a VM: QEMU's locally administered `52:54:00`
/// prefix and three bytes of a hash, the same on every start.
pub fn mac(external_name: &str, index: usize) -> String {
    let hash = short_hash(&[external_name, &index.to_string()], 6);
    format!("52:54:00:{}:{}:{}", &hash[0..2], &hash[2..4], &hash[4..6])
}

/// The containerd container ID of one container of an instance.
pub fn container_id(external_name: &str, container: &str) -> String {
    format!("{external_name}-{container}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        let external = "datum-0b6f3c1e-5a4e-4a53-9f43-3f1c2a9f7d10";
        assert!(bridge("ns/net").len() <= 15);
        assert!(host_veth(external, 300).len() <= 15);
        assert!(peer_veth(external, 3).len() <= 15);
        assert_ne!(host_veth(external, 0), host_veth(external, 1));
        assert!(tap(external, 300).len() <= 15);
        assert_ne!(tap(external, 0), tap(external, 1));
        assert_ne!(tap(external, 0), host_veth(external, 0));
        assert_eq!(mac(external, 1).len(), 17);
        assert_ne!(mac(external, 0), mac(external, 1));
        assert_eq!(bridge("a/b"), bridge("a/b"));
        assert_ne!(bridge("a/b"), bridge("a/c"));
    }
}
