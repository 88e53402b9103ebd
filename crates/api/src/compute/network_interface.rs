//! An instance's network interfaces and the ingress each allows.
//!
//! The policy types mirror network-services-operator's (`networking.datumapis.com`), which
//! upstream embeds here; they are declared in this module so the compute kinds do not
//! depend on how the networking module models its own kinds.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::references::NetworkRef;

/// A network interface of an instance.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceNetworkInterface {
    /// The Network the interface attaches to.
    pub network: NetworkRef,

    /// Ingress allowed on this interface. Becomes a lowest-priority platform network policy
    /// for the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<InstanceNetworkInterfaceNetworkPolicy>,
}

/// Network policy of one interface.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceNetworkInterfaceNetworkPolicy {
    /// Traffic allowed in; rules are ORed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
}

/// Traffic allowed in from some sources to some ports.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyIngressRule {
    /// Ports allowed; empty or missing means all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub ports: Option<Vec<NetworkPolicyPort>>,

    /// Sources allowed; empty or missing means every source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub from: Option<Vec<NetworkPolicyPeer>>,
}

/// A port, or a range of ports, traffic may reach.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    /// `TCP` (the default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,

    /// A port number or a named port of the instance; missing means every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,

    /// With a numeric `port`, allow the range `port..=endPort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

/// A source of traffic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    /// Addresses in a CIDR range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// A CIDR range, minus some sub-ranges.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// The range, e.g. `192.168.1.0/24` or `2001:db8::/64`.
    pub cidr: String,

    /// Sub-ranges of `cidr` not included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub except: Option<Vec<String>>,
}
