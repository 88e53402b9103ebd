//! Network: a project's private network (a VPC), with automatic IP address management.
//!
//! A Network exists once per namespace and spans every Location its workloads reach; the
//! per-location part of it is a [`NetworkContext`](super::NetworkContext). With
//! `ipam.mode: Auto` the control plane allocates the network's ranges and a subnet per
//! context; with `Policy` nothing is allocated automatically.
//!
//! ```
//! use datum_api::networking::{IpamMode, Network, NetworkIpam, NetworkSpec};
//!
//! let network = Network::new("default", NetworkSpec::new(NetworkIpam::new(IpamMode::Auto)));
//! assert!(network.spec.carries_ipv6()); // IPv6 is the default family
//! assert_eq!(network.spec.mtu(), 1460);
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IpFamily, NetworkPrefixRef, well_known::defaults};

/// A project's private network, with automatic IP address management.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "Network",
    namespaced,
    status = "NetworkStatus",
    derive = "PartialEq",
    doc = "A project's private network, with automatic IP address management.",
    printcolumn(name = "IPAM", type_ = "string", json_path = ".spec.ipam.mode"),
    printcolumn(name = "IPFamilies", type_ = "string", json_path = ".spec.ipFamilies"),
    printcolumn(
        name = "IPv6Prefix",
        type_ = "string",
        description = "The IPv6 range allocated to the network",
        json_path = ".status.ipam.ipv6Prefix"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "MTU", type_ = "integer", json_path = ".spec.mtu", priority = 1),
    printcolumn(
        name = "IPv4Range",
        type_ = "string",
        json_path = ".spec.ipam.ipv4Range",
        priority = 1
    ),
    printcolumn(
        name = "IPv6Range",
        type_ = "string",
        json_path = ".spec.ipam.ipv6Range",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// How addresses are managed.
    pub ipam: NetworkIpam,

    /// The IP families the network carries. Defaults to `[IPv6]`. Objects created before the
    /// default changed may hold `[IPv4]`.
    #[serde(
        default = "default_ip_families",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 2))]
    #[x_kube(validation = crate::networking::validation::no_duplicates("ipFamilies", "family"))]
    pub ip_families: Option<Vec<IpFamily>>,

    /// The MTU of the network's interfaces. Defaults to 1460.
    #[serde(default = "default_mtu", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1300, max = 8856))]
    pub mtu: Option<i32>,
}

fn default_ip_families() -> Option<Vec<IpFamily>> {
    Some(vec![IpFamily::Ipv6])
}

fn default_mtu() -> Option<i32> {
    Some(defaults::MTU)
}

impl NetworkSpec {
    /// A spec with the given IPAM settings; families and MTU are left to their defaults.
    pub fn new(ipam: NetworkIpam) -> Self {
        Self {
            ipam,
            ip_families: None,
            mtu: None,
        }
    }

    /// The families the network carries, with the API server's default applied.
    pub fn ip_families(&self) -> &[IpFamily] {
        const DEFAULT: &[IpFamily] = &[IpFamily::Ipv6];
        self.ip_families.as_deref().unwrap_or(DEFAULT)
    }

    /// The MTU, with the API server's default applied.
    pub fn mtu(&self) -> i32 {
        self.mtu.unwrap_or(defaults::MTU)
    }

    /// Whether the control plane allocates IPv6 ranges for this network: `Auto` mode with
    /// IPv6 among its families.
    pub fn carries_ipv6(&self) -> bool {
        self.ipam.mode == IpamMode::Auto && self.ip_families().contains(&IpFamily::Ipv6)
    }
}

/// How a Network's addresses are managed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIpam {
    /// `Auto`: the control plane allocates ranges and addresses. `Policy`: it does not.
    pub mode: IpamMode,
    /// The IPv4 range of the network. Documented default: `10.128.0.0/9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = crate::networking::validation::ipv4_range("ipv4Range"))]
    pub ipv4_range: Option<String>,
    /// The IPv6 range of the network. Documented default: a /48 from `fd20::/20`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = crate::networking::validation::ipv6_range("ipv6Range"))]
    pub ipv6_range: Option<String>,
}

impl NetworkIpam {
    /// IPAM in the given mode with no explicit ranges.
    pub fn new(mode: IpamMode) -> Self {
        Self {
            mode,
            ipv4_range: None,
            ipv6_range: None,
        }
    }
}

/// Whether the control plane allocates a Network's addresses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpamMode {
    // Plain comments on variants: doc comments would turn the schema's `enum` into a `oneOf`.
    // The control plane allocates ranges and addresses.
    Auto,
    // Addresses come from policy; nothing is allocated automatically.
    Policy,
}

/// What the control plane has done for a Network.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::networking::seeded_conditions::ready)]
pub struct NetworkStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The ranges allocated to the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<NetworkStatusIpam>,
    /// `IPAMAllocated` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The ranges allocated to a Network.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatusIpam {
    /// The network's IPv6 range (a /48).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix: Option<String>,
    /// The IPAM claim holding that range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix_ref: Option<NetworkPrefixRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's `config/samples/networking_v1alpha_network.yaml`, verbatim.
    const SAMPLE: &str = "apiVersion: networking.datumapis.com/v1alpha
kind: Network
metadata:
  name: default
spec:
  ipam:
    mode: Auto
";

    #[test]
    fn sample_round_trips() {
        let doc: serde_json::Value = serde_yaml::from_str(SAMPLE).expect("sample is YAML");
        let network: Network = serde_json::from_value(doc.clone()).expect("sample is a Network");
        assert_eq!(network.spec.ipam.mode, IpamMode::Auto);
        // Deserializing applies the same defaults as the API server would.
        assert_eq!(network.spec.ip_families, Some(vec![IpFamily::Ipv6]));
        assert_eq!(network.spec.mtu, Some(1460));
        let mut expected = doc;
        expected["spec"]["ipFamilies"] = serde_json::json!(["IPv6"]);
        expected["spec"]["mtu"] = serde_json::json!(1460);
        assert_eq!(
            serde_json::to_value(&network).expect("serializes"),
            expected
        );
    }

    #[test]
    fn only_auto_mode_with_ipv6_carries_ipv6() {
        let mut spec = NetworkSpec::new(NetworkIpam::new(IpamMode::Policy));
        assert!(!spec.carries_ipv6());
        spec.ipam.mode = IpamMode::Auto;
        spec.ip_families = Some(vec![IpFamily::Ipv4]);
        assert!(!spec.carries_ipv6());
        spec.ip_families = Some(vec![IpFamily::Ipv4, IpFamily::Ipv6]);
        assert!(spec.carries_ipv6());
    }
}
