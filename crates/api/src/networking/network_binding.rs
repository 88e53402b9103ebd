//! NetworkBinding: a consumer's request for a Network to be present in a Location.
//!
//! Whoever needs a network somewhere (a WorkloadDeployment, a load balancer) creates a
//! binding; the networks controller answers with the NetworkContext for that
//! (network, location) pair, named by [`names::network_context`](super::names::network_context),
//! and reports it in `status.networkContextRef`. One context is shared by every binding for
//! the same pair. The pair is immutable: a binding for another pair is another binding.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{LocationReference, NetworkContextRef, NetworkRef};

/// A consumer's request for a Network to be present in a Location.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "NetworkBinding",
    namespaced,
    status = "NetworkBindingStatus",
    derive = "PartialEq",
    doc = "A consumer's request for a Network to be present in a Location.",
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network.name"),
    printcolumn(name = "Location", type_ = "string", json_path = ".spec.location.name"),
    printcolumn(
        name = "Context",
        type_ = "string",
        description = "The NetworkContext serving the binding",
        json_path = ".status.networkContextRef.name"
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
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBindingSpec {
    /// The Network to bind. Immutable.
    #[x_kube(validation = crate::networking::validation::immutable("spec.network"))]
    pub network: NetworkRef,
    /// The Location to bind it in. Immutable.
    #[x_kube(validation = crate::networking::validation::immutable("spec.location"))]
    pub location: LocationReference,
    /// Who asked for the binding. Informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<NetworkBindingConsumer>,
}

impl NetworkBindingSpec {
    /// A binding of `network` in `location`.
    pub fn new(network: NetworkRef, location: LocationReference) -> Self {
        Self {
            network,
            location,
            consumer: None,
        }
    }
}

/// The object that asked for a binding.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBindingConsumer {
    /// API group of the consumer; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// Kind of the consumer.
    pub kind: String,
    /// Name of the consumer.
    pub name: String,
}

/// The state of a NetworkBinding.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::networking::seeded_conditions::ready)]
pub struct NetworkBindingStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The NetworkContext serving this binding, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_context_ref: Option<NetworkContextRef>,
    /// `Ready`: True once the NetworkContext is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl NetworkBinding {
    /// The name of the NetworkContext serving this binding:
    /// [`names::network_context`](super::names::network_context) of its network and location.
    pub fn network_context_name(&self) -> String {
        super::names::network_context(&self.spec.network.name, &self.spec.location.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_sample_round_trips() {
        // The working set from the networking spec (§10).
        let doc = serde_json::json!({
            "apiVersion": "networking.datumapis.com/v1alpha",
            "kind": "NetworkBinding",
            "metadata": {
                "name": "lb-frontend-us-central-1",
                "namespace": "ns-8c1d",
                "labels": {
                    "networking.datumapis.com/network": "default",
                    "networking.datumapis.com/location": "us-central-1"
                }
            },
            "spec": {
                "network": {"name": "default"},
                "location": {"name": "us-central-1"},
                "consumer": {"apiGroup": "networking.datumapis.com", "kind": "LoadBalancer", "name": "frontend"}
            }
        });
        let binding: NetworkBinding =
            serde_json::from_value(doc.clone()).expect("a NetworkBinding");
        assert_eq!(binding.network_context_name(), "default-us-central-1");
        assert_eq!(serde_json::to_value(&binding).expect("serializes"), doc);
    }
}
