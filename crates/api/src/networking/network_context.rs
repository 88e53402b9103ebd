//! NetworkContext: a Network's presence in one Location.
//!
//! The networks controller creates one per (network, location) pair that some
//! [`NetworkBinding`](super::NetworkBinding) asks for, named `<network>-<location>`
//! ([`names::network_context`](super::names::network_context)), and copies the network's
//! families, MTU and generation into its spec. The copy lives in spec, not status, because
//! propagation to a location's cell carries spec only. Providers build the real network (a
//! bridge, a VPC) from the context.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IpFamily, LocalNetworkRef, LocalSubnetReference, LocationReference, NetworkPrefixRef};

/// A Network's presence in one Location.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "NetworkContext",
    namespaced,
    status = "NetworkContextStatus",
    derive = "PartialEq",
    doc = "A Network's presence in one Location.",
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network.name"),
    printcolumn(name = "Location", type_ = "string", json_path = ".spec.location.name"),
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
        name = "IPv6Subnet",
        type_ = "string",
        json_path = ".status.ipam.ipv6SubnetRef.name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "IPFamilies",
        type_ = "string",
        json_path = ".spec.ipFamilies",
        priority = 1
    ),
    printcolumn(name = "MTU", type_ = "integer", json_path = ".spec.mtu", priority = 1)
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkContextSpec {
    /// The Network this is a context of. Immutable: the context's name is derived from it.
    #[x_kube(validation = crate::networking::validation::immutable("spec.network"))]
    pub network: LocalNetworkRef,
    /// The Location this context is in. Immutable: the context's name is derived from it.
    #[x_kube(validation = crate::networking::validation::immutable("spec.location"))]
    pub location: LocationReference,
    /// The families, copied from the Network. Readers must refuse a context without them
    /// rather than assume a default: it was made by a controller that did not copy them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = crate::networking::validation::no_duplicates("ipFamilies", "family"))]
    pub ip_families: Option<Vec<IpFamily>>,
    /// The MTU, copied from the Network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1300, max = 8856))]
    pub mtu: Option<i32>,
    /// The Network generation the values above were copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_generation: Option<i64>,
}

impl NetworkContextSpec {
    /// A context of `network` in `location`, with nothing copied from the Network yet.
    pub fn new(network: LocalNetworkRef, location: LocationReference) -> Self {
        Self {
            network,
            location,
            ip_families: None,
            mtu: None,
            network_generation: None,
        }
    }

    /// Whether the context carries IPv6. `None` when its families are unknown, which readers
    /// must treat as an error, never as a default.
    pub fn carries_ipv6(&self) -> Option<bool> {
        let families = self.ip_families.as_deref().filter(|f| !f.is_empty())?;
        Some(families.contains(&IpFamily::Ipv6))
    }
}

/// What the control plane has done for a NetworkContext.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::networking::seeded_conditions::ready)]
pub struct NetworkContextStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The subnet published for this context and the IPAM claim behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<NetworkContextStatusIpam>,
    /// `IPAMAllocated` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The subnet of a NetworkContext and the IPAM claim behind it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkContextStatusIpam {
    /// The IPv6 Subnet published for this context (`<context>-ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_subnet_ref: Option<LocalSubnetReference>,
    /// The IPAM claim holding the subnet's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_claim_ref: Option<NetworkPrefixRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_must_be_known_to_decide_ipv6() {
        let mut spec =
            NetworkContextSpec::new(LocalNetworkRef::new("net"), LocationReference::new("sjc-1"));
        assert_eq!(spec.carries_ipv6(), None);
        spec.ip_families = Some(vec![]);
        assert_eq!(spec.carries_ipv6(), None);
        spec.ip_families = Some(vec![IpFamily::Ipv4]);
        assert_eq!(spec.carries_ipv6(), Some(false));
        spec.ip_families = Some(vec![IpFamily::Ipv6, IpFamily::Ipv4]);
        assert_eq!(spec.carries_ipv6(), Some(true));
    }
}
