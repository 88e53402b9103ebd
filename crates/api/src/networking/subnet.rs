//! Subnet: one address range of a NetworkContext.
//!
//! The networks controller publishes a Subnet per context (`<context>-ipv6`, class
//! `private`) with the range IPAM allocated; a [`SubnetClaim`](super::SubnetClaim) gets a
//! Subnet of the claim's name. The provider creates the real subnet and sets `Programmed`;
//! `Ready` follows it.
//!
//! Every spec field is required, as upstream: an unallocated Subnet says so with an empty
//! `startAddress` and a `prefixLength` of 0.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{IpFamily, LocalNetworkContextRef, LocationReference};

/// One address range of a NetworkContext.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "Subnet",
    namespaced,
    status = "SubnetStatus",
    derive = "PartialEq",
    doc = "One address range of a NetworkContext.",
    printcolumn(name = "Family", type_ = "string", json_path = ".spec.ipFamily"),
    printcolumn(
        name = "Start Address",
        type_ = "string",
        json_path = ".status.startAddress"
    ),
    printcolumn(
        name = "Prefix Length",
        type_ = "integer",
        json_path = ".status.prefixLength"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Context",
        type_ = "string",
        json_path = ".spec.networkContext.name",
        priority = 1
    ),
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.subnetClass",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.ipFamily == 'IPv6' || self.prefixLength <= 32"
).message("prefixLength must be at most 32 for an IPv4 subnet").field_path(".prefixLength"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.startAddress == '' || !isIP(self.startAddress) || \
     ip(self.startAddress).family() == (self.ipFamily == 'IPv4' ? 4 : 6)"
).message("startAddress must be an address of the family in ipFamily").field_path(".startAddress"))]
pub struct SubnetSpec {
    /// The class of subnet, for example `private`.
    pub subnet_class: String,
    /// The NetworkContext the subnet belongs to.
    pub network_context: LocalNetworkContextRef,
    /// The Location the subnet is in.
    pub location: LocationReference,
    /// The subnet's address family.
    pub ip_family: IpFamily,
    /// The first address of the range; empty while unallocated.
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("self == '' || isIP(self)")
        .message("startAddress must be empty (not yet allocated) or an IP address such as fd20:1::"))]
    pub start_address: String,
    /// The length of the range's prefix; 0 while unallocated.
    #[schemars(range(min = 0, max = 128))]
    pub prefix_length: i32,
}

impl SubnetSpec {
    /// The subnet's range as `<startAddress>/<prefixLength>`, once allocated.
    pub fn cidr(&self) -> Option<String> {
        (!self.start_address.is_empty())
            .then(|| format!("{}/{}", self.start_address, self.prefix_length))
    }
}

/// The state of a Subnet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::networking::seeded_conditions::allocated_programmed_ready)]
pub struct SubnetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The first address of the allocated range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_address: Option<String>,
    /// The prefix length of the allocated range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<i32>,
    /// `Allocated`, `Programmed` (written only by the provider) and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl SubnetStatus {
    /// The allocated range as `<startAddress>/<prefixLength>`, once both are known.
    pub fn cidr(&self) -> Option<String> {
        let start = self.start_address.as_deref().filter(|s| !s.is_empty())?;
        Some(format!("{start}/{}", self.prefix_length?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unallocated_subnet_serializes_empty_range() {
        let spec = SubnetSpec {
            subnet_class: "private".into(),
            network_context: LocalNetworkContextRef::new("default-us-central-1"),
            location: LocationReference::new("us-central-1"),
            ip_family: IpFamily::Ipv6,
            start_address: String::new(),
            prefix_length: 0,
        };
        assert_eq!(spec.cidr(), None);
        let value = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(value["startAddress"], "");
        assert_eq!(value["prefixLength"], 0);
        assert_eq!(value["ipFamily"], "IPv6");
    }

    #[test]
    fn status_cidr_needs_both_parts() {
        let mut status = SubnetStatus {
            start_address: Some("fd20:1000:1::".into()),
            ..SubnetStatus::default()
        };
        assert_eq!(status.cidr(), None);
        status.prefix_length = Some(64);
        assert_eq!(status.cidr().as_deref(), Some("fd20:1000:1::/64"));
    }
}
