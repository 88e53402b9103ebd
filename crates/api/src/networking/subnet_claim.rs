//! SubnetClaim: a request for a Subnet of some class and family in a NetworkContext.
//!
//! The subnet-claim controller creates a [`Subnet`](super::Subnet) of the claim's name, owned
//! by the NetworkContext, and reports it in `status.subnetRef` once it is ready. A claim's
//! `startAddress` and `prefixLength` are accepted for compatibility and ignored, as upstream:
//! the range always comes from IPAM.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{IpFamily, LocalNetworkContextRef, LocalSubnetReference, LocationReference};

/// A request for a Subnet of some class and family in a NetworkContext.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "SubnetClaim",
    namespaced,
    status = "SubnetClaimStatus",
    derive = "PartialEq",
    doc = "A request for a Subnet of some class and family in a NetworkContext.",
    printcolumn(name = "Family", type_ = "string", json_path = ".spec.ipFamily"),
    printcolumn(
        name = "Subnet",
        type_ = "string",
        json_path = ".status.subnetRef.name"
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
pub struct SubnetClaimSpec {
    /// The class of subnet wanted, for example `private`.
    pub subnet_class: String,
    /// The NetworkContext to allocate the subnet in.
    pub network_context: LocalNetworkContextRef,
    /// The Location of that context.
    pub location: LocationReference,
    /// The address family wanted.
    pub ip_family: IpFamily,
    /// Accepted and ignored, as upstream: the range always comes from IPAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = kube::core::Rule::new("isIP(self)")
        .message("startAddress must be an IP address such as 10.0.0.0 or fd20:1::"))]
    pub start_address: Option<String>,
    /// Accepted and ignored, as upstream: the range always comes from IPAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 128))]
    pub prefix_length: Option<i32>,
}

impl SubnetClaimSpec {
    /// A claim for a subnet of `class` and `family` in a context.
    pub fn new(
        subnet_class: impl Into<String>,
        network_context: LocalNetworkContextRef,
        location: LocationReference,
        ip_family: IpFamily,
    ) -> Self {
        Self {
            subnet_class: subnet_class.into(),
            network_context,
            location,
            ip_family,
            start_address: None,
            prefix_length: None,
        }
    }
}

/// The state of a SubnetClaim.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::networking::seeded_conditions::allocated_programmed_ready)]
pub struct SubnetClaimStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Subnet made for this claim, once it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_ref: Option<LocalSubnetReference>,
    /// Never written, as upstream; read the Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_address: Option<String>,
    /// Never written, as upstream; read the Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<i32>,
    /// `Allocated`, `Programmed` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
