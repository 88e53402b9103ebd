//! Network policy rule types shared by the [`NetworkPolicy`](super::NetworkPolicy) kind and by
//! compute's per-interface policy (`Instance.spec.networkInterfaces[].networkPolicy`).
//!
//! They follow Kubernetes NetworkPolicy. [`InterfaceNetworkPolicy`] and the types under it
//! are exactly upstream's interface-level schema (peers are `ipBlock` only), plus the
//! validation upstream left out: ports in 1..=65535, `endPort >= port`, well-formed CIDRs, a
//! protocol enum, and bounded lists so the CEL rules stay within the API server's cost budget
//! (a rule's cost is multiplied by the `maxItems` of every list around it: 16 rules × 16 peers
//! × 16 exceptions per interface leaves room for an Instance with several interfaces).
//!
//! ```
//! use datum_api::networking::{IpBlock, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort};
//! use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
//!
//! // Allow HTTPS from one /24.
//! let rule = NetworkPolicyIngressRule {
//!     ports: vec![NetworkPolicyPort::tcp(IntOrString::Int(443))],
//!     from: vec![NetworkPolicyPeer::ip_block(IpBlock::new("192.0.2.0/24"))],
//! };
//! # let _ = rule;
//! ```

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The network policy of one instance interface: which traffic may reach it. Compute's
/// Instance embeds this as `networkInterfaces[].networkPolicy`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceNetworkPolicy {
    /// Traffic allowed in. Rules are ORed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ingress: Vec<NetworkPolicyIngressRule>,
}

/// Traffic allowed in: from any of `from`, to any of `ports`. An empty list matches all.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyIngressRule {
    /// Ports the traffic may reach. Empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub ports: Vec<NetworkPolicyPort>,
    /// Sources the traffic may come from. Empty: every source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub from: Vec<NetworkPolicyPeer>,
}

/// A peer of an interface-level rule: an IP block.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.ipBlock)")
    .message("a peer must set ipBlock"))]
pub struct NetworkPolicyPeer {
    /// The addresses of the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

impl NetworkPolicyPeer {
    /// A peer made of an IP block.
    pub fn ip_block(block: IpBlock) -> Self {
        Self {
            ip_block: Some(block),
        }
    }
}

/// A port, or a range of ports, on one protocol.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.endPort) || (has(self.port) && type(self.port) == int)"
).message("endPort requires a numeric port").field_path(".endPort"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.endPort) || !has(self.port) || type(self.port) != int || self.endPort >= self.port"
).message("endPort must be greater than or equal to port").field_path(".endPort"))]
pub struct NetworkPolicyPort {
    /// `TCP`, `UDP` or `SCTP`. Unset means `TCP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// A port number (1–65535) or the name of a port on the instance. Unset: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 15))]
    #[x_kube(validation = kube::core::Rule::new(
        "type(self) == int ? (self >= 1 && self <= 65535) : \
         (size(self) <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))"
    ).message(
        "port must be a number from 1 to 65535 or a port name of at most 15 lowercase letters, digits and '-'"
    ))]
    pub port: Option<IntOrString>,
    /// The last port of a range starting at `port`, inclusive. Needs a numeric `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub end_port: Option<i32>,
}

impl NetworkPolicyPort {
    /// One TCP port.
    pub fn tcp(port: IntOrString) -> Self {
        Self {
            protocol: Some(Protocol::Tcp),
            port: Some(port),
            end_port: None,
        }
    }

    /// The protocol, with the default (`TCP`) applied.
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_default()
    }
}

/// A transport protocol.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    // Plain comments on variants: doc comments would turn the schema's `enum` into a `oneOf`.
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// A range of addresses, minus some exceptions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.except) || !isCIDR(self.cidr) || \
     self.except.all(e, !isCIDR(e) || cidr(self.cidr).containsCIDR(e))"
).message("every except entry must lie within cidr").field_path(".except"))]
pub struct IpBlock {
    /// The range, for example `192.168.1.0/24` or `2001:db8::/64`.
    #[schemars(length(max = 64))]
    #[x_kube(validation = crate::networking::validation::cidr("cidr"))]
    pub cidr: String,
    /// Ranges inside `cidr` to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 64)))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    #[x_kube(validation = kube::core::Rule::new("self.all(e, isCIDR(e))")
        .message("every except entry must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"))]
    pub except: Vec<String>,
}

impl IpBlock {
    /// The whole of `cidr`.
    pub fn new(cidr: impl Into<String>) -> Self {
        Self {
            cidr: cidr.into(),
            except: Vec::new(),
        }
    }
}
