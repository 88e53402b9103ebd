//! References from one object to another, as the networking kinds write them.
//!
//! Names a user writes are checked as Kubernetes names (RFC 1123 subdomains; namespaces are
//! RFC 1123 labels), so a typo is rejected by `kubectl apply` instead of turning into a
//! "not found" condition later. References only controllers write (in `status`) are not
//! checked: they are always copied from real objects.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to a [`Location`](super::Location).
///
/// Locations are cluster-scoped, so `name` alone identifies one. `namespace` is accepted
/// because compute's upstream `LocationReference` required it while Locations were
/// namespaced, and manifests written then still carry it; it is ignored and not required.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct LocationReference {
    /// Name of the Location.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = crate::networking::validation::subdomain("name"))]
    pub name: String,
    /// Ignored: Locations are cluster-scoped. Accepted for compatibility with manifests
    /// written for namespaced Locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = crate::networking::validation::dns_label("namespace"))]
    pub namespace: Option<String>,
}

impl LocationReference {
    /// A reference to the Location called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: None,
        }
    }
}

/// A reference to a [`Network`](super::Network), possibly in another namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRef {
    /// Namespace of the Network. Defaults to the namespace of the object holding the
    /// reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = crate::networking::validation::dns_label("namespace"))]
    pub namespace: Option<String>,
    /// Name of the Network.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = crate::networking::validation::subdomain("name"))]
    pub name: String,
}

impl NetworkRef {
    /// A reference to the Network called `name` in the referrer's namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            namespace: None,
            name: name.into(),
        }
    }

    /// The namespace the Network lives in, given the namespace of the referring object.
    pub fn namespace_or<'a>(&'a self, referrer_namespace: &'a str) -> &'a str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => referrer_namespace,
        }
    }
}

/// A reference to a [`Network`](super::Network) in the referrer's own namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct LocalNetworkRef {
    /// Name of the Network.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = crate::networking::validation::subdomain("name"))]
    pub name: String,
}

impl LocalNetworkRef {
    /// A reference to the Network called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// A reference to a [`NetworkContext`](super::NetworkContext) in a given namespace. Written by
/// controllers into status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct NetworkContextRef {
    /// Namespace of the NetworkContext.
    pub namespace: String,
    /// Name of the NetworkContext.
    pub name: String,
}

/// A reference to a [`NetworkContext`](super::NetworkContext) in the referrer's own namespace.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct LocalNetworkContextRef {
    /// Name of the NetworkContext.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = crate::networking::validation::subdomain("name"))]
    pub name: String,
}

impl LocalNetworkContextRef {
    /// A reference to the NetworkContext called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// A reference to a [`Subnet`](super::Subnet) in the referrer's own namespace. Written by
/// controllers into status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct LocalSubnetReference {
    /// Name of the Subnet.
    pub name: String,
}

/// Names the IPAM objects behind an allocated range, so the range can be released even if
/// the project can no longer be resolved. Written by controllers into status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPrefixRef {
    /// The project that holds the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The namespace of the claim inside the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name of the IPAM claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    /// The name of the pool the range came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_name: Option<String>,
}
