//! IPAddress: one allocation from a Network's address space — a host address of an
//! Instance interface, or a block of the Network's range held by a Subnet.
//!
//! A Datum extension (upstream delegates allocation to an external IPAM service). The object
//! *is* the allocation, and its name is derived from what it allocates, so the API server's
//! atomic create is the lock: two controllers racing for the same address both try to
//! create the same name and exactly one succeeds.
//!
//! | allocation | name | `prefixLength` | owner |
//! |---|---|---|---|
//! | host address of an interface | `<subnet>-<address>` | absent | the Instance |
//! | block of the Network's range | `<network>-<start>-<length>` | the block's | the Subnet |
//!
//! Addresses are written with `.` and `:` replaced by `-`, IPv6 uncompressed
//! ([`IpAddress::host_name`], [`IpAddress::block_name`]). The owner reference lets the garbage
//! collector release an allocation when its holder goes. The spec is immutable: a different
//! allocation is a different object.
//!
//! ```
//! use datum_api::networking::IpAddress;
//!
//! assert_eq!(IpAddress::host_name("default-iad-ipv4", "10.128.0.5"), "default-iad-ipv4-10-128-0-5");
//! assert_eq!(IpAddress::block_name("default", "fd12:3456:789a::", 64), "default-fd12-3456-789a-0-0-0-0-0-64");
//! ```

use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IpFamily, LocalNetworkRef, LocalSubnetReference};

/// One allocation from a Network's address space.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "IPAddress",
    root = "IpAddress",
    namespaced,
    status = "IpAddressStatus",
    derive = "PartialEq",
    doc = "One allocation from a Network's address space: a host address or a block.",
    selectable = ".spec.network.name",
    selectable = ".spec.subnetRef.name",
    selectable = ".spec.instanceRef.uid",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Family", type_ = "string", json_path = ".spec.ipFamily"),
    printcolumn(name = "Subnet", type_ = "string", json_path = ".spec.subnetRef.name"),
    printcolumn(
        name = "Instance",
        type_ = "string",
        json_path = ".spec.instanceRef.name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable"))]
#[x_kube(validation = kube::core::Rule::new(
    "ip(self.address).family() == (self.ipFamily == 'IPv4' ? 4 : 6)"
).message("address must be an address of the family in ipFamily").field_path(".address"))]
pub struct IpAddressSpec {
    /// The Network the allocation is from.
    pub network: LocalNetworkRef,
    /// The Subnet the address is in; for a block, the Subnet holding it.
    pub subnet_ref: LocalSubnetReference,
    /// The address family.
    pub ip_family: IpFamily,
    /// The address; for a block, its first address.
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("isIP(self)")
        .message("address must be an IP address such as 10.128.0.5 or fd12::5"))]
    pub address: String,
    /// The block's prefix length; absent for a host address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 128))]
    pub prefix_length: Option<i32>,
    /// The Instance a host address is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<IpAddressInstanceRef>,
    /// The index, in the Instance's `spec.networkInterfaces`, of the interface it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub interface_index: Option<i32>,
}

/// The Instance a host address is assigned to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressInstanceRef {
    /// The Instance's name.
    pub name: String,
    /// The Instance's UID: a replacement Instance of the same name is another holder.
    pub uid: String,
}

/// The state of an IPAddress. Nothing writes it yet; reserved for providers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressStatus {
    /// Conditions, for example a provider's `Programmed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl IpAddress {
    /// The name of the allocation of host `address` in `subnet`: `<subnet>-<address>`.
    pub fn host_name(subnet: &str, address: &str) -> String {
        bounded(format!("{subnet}-{}", dashed(address)))
    }

    /// The name of the allocation of block `start/length` of `network`:
    /// `<network>-<start>-<length>`.
    pub fn block_name(network: &str, start: &str, length: u8) -> String {
        bounded(format!("{network}-{}-{length}", dashed(start)))
    }
}

/// `address` with `.` and `:` replaced by `-`; IPv6 without `::` compression, so the name
/// never ends in `-` and distinct addresses never share a name.
fn dashed(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join("-"),
        Ok(IpAddr::V4(v4)) => v4.to_string().replace('.', "-"),
        Err(_) => address.replace(['.', ':'], "-"),
    }
}

/// Names longer than Kubernetes allows keep their last 200 characters (the address part)
/// behind a hash of the whole, so they stay unique and deterministic.
fn bounded(name: String) -> String {
    const MAX: usize = 253;
    if name.len() <= MAX {
        return name;
    }
    let tail: String = name
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let tail = tail.trim_start_matches(['-', '.']);
    format!("x{:016x}-{tail}", fnv1a(name.as_bytes()))
}

/// FNV-1a, 64 bits: stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_valid() {
        assert_eq!(IpAddress::host_name("s", "fd00::"), "s-fd00-0-0-0-0-0-0-0");
        assert_ne!(
            IpAddress::host_name("s", "fd00::1:0"),
            IpAddress::host_name("s", "fd00::1:0:0")
        );
        let long = IpAddress::host_name(&"a".repeat(300), "10.0.0.1");
        assert!(long.len() <= 253);
        assert!(long.ends_with("-10-0-0-1"));
        assert_ne!(long, IpAddress::host_name(&"a".repeat(301), "10.0.0.1"));
    }
}
