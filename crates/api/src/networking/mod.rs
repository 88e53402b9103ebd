//! `networking.datumapis.com/v1alpha`: where things run and the networks they join.
//!
//! Wire-compatible with Datum's network-services-operator: upstream manifests apply unchanged,
//! and every field upstream has exists here with the same JSON type. Validation upstream
//! left to controllers (or did not do) is CEL in the CRDs, so `kubectl apply` rejects a bad
//! manifest with a message naming the field.
//!
//! | kind | scope | module | what it is |
//! |---|---|---|---|
//! | [`Location`] | cluster | [`location`] | a place instances can run, and its one provider |
//! | [`Network`] | namespace | [`network`] | a project's private network, with IPAM |
//! | [`NetworkBinding`] | namespace | [`network_binding`] | "I need this network in that location" |
//! | [`NetworkContext`] | namespace | [`network_context`] | a network's presence in one location |
//! | [`Subnet`] | namespace | [`subnet`] | an address range of a context |
//! | [`SubnetClaim`] | namespace | [`subnet_claim`] | a request for a subnet |
//! | [`IpAddress`] (`IPAddress`) | namespace | [`ip_address`] | one allocated address or block (Datum extension) |
//! | [`NetworkPolicy`] | namespace | [`network_policy`] | allowed traffic to and from instances |
//!
//! Shared pieces: [`references`] (how objects point at each other), [`ip_family`],
//! [`policy_rules`] (ports and IP blocks, also used by compute's per-interface policy),
//! [`well_known`] (labels, annotations, finalizers, condition types and reasons),
//! [`names`] (deterministic object names) and [`seeded_conditions`] (the `Pending` status
//! defaults).

pub mod ip_address;
pub mod ip_family;
pub mod location;
pub mod names;
pub mod network;
pub mod network_binding;
pub mod network_context;
pub mod network_policy;
pub mod policy_rules;
pub mod references;
pub mod seeded_conditions;
pub mod subnet;
pub mod subnet_claim;
mod validation;
pub mod well_known;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use ip_address::{IpAddress, IpAddressInstanceRef, IpAddressSpec, IpAddressStatus};
pub use ip_family::IpFamily;
pub use location::{
    Coordinates, GcpLocationProvider, Location, LocationProvider, LocationSpec, LocationStatus,
    ProviderSettings,
};
pub use network::{IpamMode, Network, NetworkIpam, NetworkSpec, NetworkStatus, NetworkStatusIpam};
pub use network_binding::{
    NetworkBinding, NetworkBindingConsumer, NetworkBindingSpec, NetworkBindingStatus,
};
pub use network_context::{
    NetworkContext, NetworkContextSpec, NetworkContextStatus, NetworkContextStatusIpam,
};
pub use network_policy::{
    NetworkPolicy, NetworkPolicySpec, NetworkPolicyStatus, PolicyEgressRule, PolicyIngressRule,
    PolicyPeer, PolicyType,
};
pub use policy_rules::{
    InterfaceNetworkPolicy, IpBlock, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, Protocol,
};
pub use references::{
    LocalNetworkContextRef, LocalNetworkRef, LocalSubnetReference, LocationReference,
    NetworkContextRef, NetworkPrefixRef, NetworkRef,
};
pub use subnet::{Subnet, SubnetSpec, SubnetStatus};
pub use subnet_claim::{SubnetClaim, SubnetClaimSpec, SubnetClaimStatus};

/// The CRDs of this module's kinds.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Location::crd(),
        Network::crd(),
        NetworkBinding::crd(),
        NetworkContext::crd(),
        NetworkPolicy::crd(),
        Subnet::crd(),
        SubnetClaim::crd(),
        IpAddress::crd(),
    ]
}

#[cfg(test)]
mod crd_tests;
