//! NetworkPolicy: which traffic may reach, and leave, instances on a Network.
//!
//! Upstream's NetworkPolicy is a placeholder with an empty schema. Ours is modelled on
//! Kubernetes NetworkPolicy with pods replaced by instances: `instanceSelector` picks the
//! instances in the namespace it applies to (absent or empty: all of them), `policyTypes`
//! says whether it restricts ingress, egress or both, and `ingress`/`egress` list what is
//! allowed. A peer is an IP block or a selection of instances in the same namespace.
//! `network` narrows the policy to interfaces on one Network. Every field is optional, so
//! upstream's placeholder manifests (`spec: {}`) still apply.
//!
//! The port and IP block types are shared with the per-interface policy in
//! [`policy_rules`](super::policy_rules).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IpBlock, LocalNetworkRef, NetworkPolicyPort};

/// Which traffic may reach, and leave, instances on a Network.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "NetworkPolicy",
    namespaced,
    status = "NetworkPolicyStatus",
    derive = "PartialEq",
    doc = "Which traffic may reach, and leave, instances on a Network.",
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network.name"),
    printcolumn(
        name = "PolicyTypes",
        type_ = "string",
        json_path = ".spec.policyTypes"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.policyTypes) || !has(self.ingress) || size(self.ingress) == 0 || 'Ingress' in self.policyTypes"
).message("ingress rules have no effect unless policyTypes includes Ingress").field_path(".ingress"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.policyTypes) || !has(self.egress) || size(self.egress) == 0 || 'Egress' in self.policyTypes"
).message("egress rules have no effect unless policyTypes includes Egress").field_path(".egress"))]
pub struct NetworkPolicySpec {
    /// The Network whose interfaces the policy applies to. Unset: interfaces on every Network
    /// in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<LocalNetworkRef>,
    /// The instances the policy applies to, by label. Unset or empty: every instance in the
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<LabelSelector>,
    /// Whether the policy restricts `Ingress`, `Egress` or both. Unset: `Ingress`, plus
    /// `Egress` if there are egress rules (as in Kubernetes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    #[x_kube(validation = crate::networking::validation::no_duplicates("policyTypes", "policy type"))]
    pub policy_types: Vec<PolicyType>,
    /// Traffic allowed in. Rules are ORed; no rules with `Ingress` in force allows nothing in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub ingress: Vec<PolicyIngressRule>,
    /// Traffic allowed out. Rules are ORed; no rules with `Egress` in force allows nothing out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub egress: Vec<PolicyEgressRule>,
}

impl NetworkPolicySpec {
    /// The directions the policy restricts, with Kubernetes' defaulting applied when
    /// `policyTypes` is unset.
    pub fn effective_policy_types(&self) -> Vec<PolicyType> {
        if !self.policy_types.is_empty() {
            return self.policy_types.clone();
        }
        let mut types = vec![PolicyType::Ingress];
        if !self.egress.is_empty() {
            types.push(PolicyType::Egress);
        }
        types
    }
}

/// A direction of traffic a policy restricts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyType {
    // Plain comments on variants: doc comments would turn the schema's `enum` into a `oneOf`.
    Ingress,
    Egress,
}

/// Traffic allowed in: from any of `from`, to any of `ports`. An empty list matches all.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyIngressRule {
    /// Ports the traffic may reach. Empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub ports: Vec<NetworkPolicyPort>,
    /// Sources the traffic may come from. Empty: every source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub from: Vec<PolicyPeer>,
}

/// Traffic allowed out: to any of `to`, on any of `ports`. An empty list matches all.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyEgressRule {
    /// Ports the traffic may go to. Empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub ports: Vec<NetworkPolicyPort>,
    /// Destinations the traffic may go to. Empty: every destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub to: Vec<PolicyPeer>,
}

/// The other end of allowed traffic: an IP block, or instances in the policy's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.ipBlock) != has(self.instanceSelector)")
    .message("a peer must set exactly one of ipBlock or instanceSelector"))]
pub struct PolicyPeer {
    /// A range of addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
    /// Instances in the policy's namespace, by label. Empty: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<LabelSelector>,
}

/// The state of a NetworkPolicy, as the providers enforcing it report it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the policy is enforced everywhere it applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_placeholder_still_parses() {
        let spec: NetworkPolicySpec =
            serde_json::from_value(serde_json::json!({})).expect("an empty spec is a valid policy");
        assert_eq!(spec, NetworkPolicySpec::default());
        assert_eq!(spec.effective_policy_types(), [PolicyType::Ingress]);
    }

    #[test]
    fn egress_rules_imply_egress_when_types_are_unset() {
        let spec = NetworkPolicySpec {
            egress: vec![PolicyEgressRule::default()],
            ..NetworkPolicySpec::default()
        };
        assert_eq!(
            spec.effective_policy_types(),
            [PolicyType::Ingress, PolicyType::Egress]
        );
    }
}
