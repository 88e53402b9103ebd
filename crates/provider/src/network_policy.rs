//! NetworkPolicy objects as a provider sees them: for each Instance, the policies in its
//! namespace that select it, with every `instanceSelector` peer resolved to the current
//! addresses (from Instance status) of the Instances it matches.
//!
//! A provider opts in with [`Provider::enforces_network_policies`](crate::Provider). The
//! runtime then watches NetworkPolicies and Instances into a [`PolicyIndex`], hands every
//! Instance reconcile the result of [`PolicyIndex::selecting`] (as
//! [`ExternalResource::network_policies`](crate::ExternalResource)) and re-reconciles an
//! Instance whenever that result changes ([`PolicyIndex::affected`]).
//!
//! Why a trigger on the Instance controller rather than a NetworkPolicy reconciler: what a
//! provider enforces is per instance (its addresses, its named ports, its interfaces), and
//! the Instance reconcile already owns that instance's external resource, its finalizer and
//! its backoff. A separate reconciler would have to program the same firewall from a
//! second place. The trigger compares each Instance's resolved policies before and after
//! every NetworkPolicy or Instance event in the namespace, so a label change, a new or
//! removed peer, a changed address or a changed policy reaches exactly the Instances it
//! affects — and an Instance status write that changes nothing policy-relevant (usage
//! figures) triggers nobody. The cost is a second watch of Instances, opened only by
//! providers that opt in.
//!
//! Semantics are Kubernetes NetworkPolicy's, with pods replaced by instances: policies are
//! additive; an instance selected by no policy with a direction in force is not restricted
//! in that direction. An invalid label selector (an `In` without values, say) selects
//! nothing, whether it picks the policy's instances or a peer.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use datum_api::compute::{Instance, InstanceSpec};
use datum_api::networking::{
    IpBlock, NetworkPolicy, NetworkPolicyPort, PolicyEgressRule, PolicyIngressRule, PolicyPeer,
    PolicyType,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;

/// A NetworkPolicy that selects an instance, its peers resolved.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectedNetworkPolicy {
    /// The policy's name (its namespace is the instance's).
    pub name: String,
    /// The Network (in the namespace) whose interfaces the policy covers; `None`: all.
    pub network: Option<String>,
    /// What the policy lets in, if it restricts ingress: rules are ORed, none allows
    /// nothing. `None`: the policy does not restrict ingress.
    pub ingress: Option<Vec<ResolvedRule>>,
    /// What the policy lets out, if it restricts egress. `None`: it does not.
    pub egress: Option<Vec<ResolvedRule>>,
}

/// One ingress or egress rule: traffic to any of `ports` from (ingress) or to (egress)
/// any of `peers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedRule {
    /// Ports; empty: every port. Named ports are left for the provider to resolve (against
    /// the instance's own ports for ingress, the peers' for egress).
    pub ports: Vec<NetworkPolicyPort>,
    /// Peers; `None`: every peer.
    pub peers: Option<Vec<ResolvedPeer>>,
}

/// The other end of a rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ResolvedPeer {
    /// A range of addresses, minus exceptions.
    IpBlock(IpBlock),
    /// Instances in the namespace, by label: the selector (for platforms that tag
    /// instances) and the instances it matches now.
    Instances {
        /// The selector as written.
        selector: LabelSelector,
        /// The matching instances, by name.
        instances: Vec<PeerInstance>,
    },
}

/// An instance a peer selector matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInstance {
    /// Its name.
    pub name: String,
    /// Its addresses (IPv4 and IPv6) on the interfaces the policy covers, from its status.
    pub addresses: Vec<IpAddr>,
    /// Its named ports: `(name, port, protocol)`, protocol upper-case (`TCP` by default).
    pub named_ports: Vec<(String, i32, String)>,
}

/// The NetworkPolicies and Instances the runtime watches, and the resolved policies it
/// last handed each Instance.
#[derive(Clone)]
pub struct PolicyIndex {
    policies: Store<NetworkPolicy>,
    instances: Store<Instance>,
    seen: Arc<Mutex<HashMap<ObjectRef<Instance>, u64>>>,
    peers: Arc<Mutex<HashMap<ObjectRef<Instance>, u64>>>,
}

impl PolicyIndex {
    /// An index over the two caches.
    pub fn new(policies: Store<NetworkPolicy>, instances: Store<Instance>) -> Self {
        Self {
            policies,
            instances,
            seen: Arc::default(),
            peers: Arc::default(),
        }
    }

    /// Records what policies can see of `instance` — labels, interfaces and their
    /// addresses, named ports, whether it is being deleted — and says whether that changed
    /// since last time. An event that changes none of it (a condition or usage figures in
    /// status) cannot change any instance's policies, so the namespace need not be
    /// recomputed.
    pub fn peer_changed(&self, instance: &Instance) -> bool {
        let assignments = instance
            .status
            .as_ref()
            .and_then(|s| s.network_interfaces.as_ref())
            .map(|list| list.iter().map(|i| &i.assignments).collect::<Vec<_>>());
        let print = fingerprint(&(
            instance.labels(),
            instance.metadata.deletion_timestamp.is_some(),
            &instance.spec.network_interfaces,
            assignments,
            named_ports(&instance.spec),
        ));
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.insert(ObjectRef::from_obj(instance), print) != Some(print)
    }

    /// Forgets a deleted Instance.
    pub fn forget(&self, instance: &Instance) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.remove(&ObjectRef::from_obj(instance));
    }

    /// The policies selecting `instance`, resolved, in name order.
    pub fn selecting(&self, instance: &Instance) -> Vec<SelectedNetworkPolicy> {
        let namespace = instance.namespace().unwrap_or_default();
        let peers: Vec<Arc<Instance>> = self
            .instances
            .state()
            .into_iter()
            .filter(|i| i.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .collect();
        let mut policies: Vec<Arc<NetworkPolicy>> = self
            .policies
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        policies.sort_by_key(|p| p.name_any());
        policies
            .iter()
            .filter(|p| selects(p.spec.instance_selector.as_ref(), instance.labels()))
            .map(|p| resolve(p, &namespace, &peers))
            .collect()
    }

    /// The Instances of `namespace` (all namespaces: `None`) whose resolved policies
    /// differ from the ones last seen; records the new ones. An Instance seen for the
    /// first time counts as having had no policies.
    pub fn affected(&self, namespace: Option<&str>) -> Vec<ObjectRef<Instance>> {
        let empty = fingerprint(&Vec::<SelectedNetworkPolicy>::new());
        let current: Vec<(ObjectRef<Instance>, u64)> = self
            .instances
            .state()
            .iter()
            .filter(|i| namespace.is_none() || i.namespace().as_deref() == namespace)
            .map(|i| {
                (
                    ObjectRef::from_obj(i.as_ref()),
                    fingerprint(&self.selecting(i)),
                )
            })
            .collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the Instances that are gone; their own reconcile cleans up.
        let present: std::collections::HashSet<&ObjectRef<Instance>> =
            current.iter().map(|(r, _)| r).collect();
        seen.retain(|r, _| {
            !(namespace.is_none() || r.namespace.as_deref() == namespace) || present.contains(r)
        });
        let mut changed = Vec::new();
        for (reference, print) in current {
            let before = seen.insert(reference.clone(), print).unwrap_or(empty);
            if before != print {
                changed.push(reference);
            }
        }
        changed
    }
}

/// Whether `selector` (unset: everything) matches `labels`.
fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    match Selector::try_from(selector.clone()) {
        Ok(selector) => selector.matches(labels),
        Err(error) => {
            tracing::debug!(%error, "an invalid label selector selects nothing");
            false
        }
    }
}

fn resolve(
    policy: &NetworkPolicy,
    namespace: &str,
    peers: &[Arc<Instance>],
) -> SelectedNetworkPolicy {
    let network = policy.spec.network.as_ref().map(|n| n.name.clone());
    let types = policy.spec.effective_policy_types();
    let peer = |p: &PolicyPeer| -> Option<ResolvedPeer> {
        if let Some(block) = &p.ip_block {
            return Some(ResolvedPeer::IpBlock(block.clone()));
        }
        let selector = p.instance_selector.clone()?;
        let mut instances: Vec<PeerInstance> = peers
            .iter()
            .filter(|i| selects(Some(&selector), i.labels()))
            .map(|i| peer_instance(i, namespace, network.as_deref()))
            .collect();
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        Some(ResolvedPeer::Instances {
            selector,
            instances,
        })
    };
    let rule = |ports: &[NetworkPolicyPort], peers: &[PolicyPeer]| ResolvedRule {
        ports: ports.to_vec(),
        // An empty list is every peer; a list whose every peer is malformed is none.
        peers: (!peers.is_empty()).then(|| peers.iter().filter_map(peer).collect()),
    };
    SelectedNetworkPolicy {
        name: policy.name_any(),
        network: network.clone(),
        ingress: types.contains(&PolicyType::Ingress).then(|| {
            policy
                .spec
                .ingress
                .iter()
                .map(|r: &PolicyIngressRule| rule(&r.ports, &r.from))
                .collect()
        }),
        egress: types.contains(&PolicyType::Egress).then(|| {
            policy
                .spec
                .egress
                .iter()
                .map(|r: &PolicyEgressRule| rule(&r.ports, &r.to))
                .collect()
        }),
    }
}

/// A peer's addresses on the interfaces on `network` (any network: `None`), and its named
/// ports.
fn peer_instance(instance: &Instance, namespace: &str, network: Option<&str>) -> PeerInstance {
    let assignments = instance
        .status
        .as_ref()
        .and_then(|s| s.network_interfaces.as_ref());
    let mut addresses = Vec::new();
    for (index, interface) in instance.spec.network_interfaces.iter().enumerate() {
        let on_network = network.is_none_or(|n| {
            interface.network.name == n
                && interface.network.namespace.as_deref().unwrap_or(namespace) == namespace
        });
        if !on_network {
            continue;
        }
        let Some(a) = assignments
            .and_then(|list| list.get(index))
            .and_then(|i| i.assignments.as_ref())
        else {
            continue;
        };
        for ip in [&a.network_ip, &a.network_ipv6].into_iter().flatten() {
            // An address may be written as a CIDR by some platforms; take the address.
            let ip = ip.split('/').next().unwrap_or_default();
            if let Ok(ip) = ip.parse::<IpAddr>() {
                addresses.push(ip);
            }
        }
    }
    addresses.sort();
    addresses.dedup();
    PeerInstance {
        name: instance.name_any(),
        addresses,
        named_ports: named_ports(&instance.spec),
    }
}

/// The named ports of an instance's containers or VM: `(name, port, PROTOCOL)`.
pub fn named_ports(spec: &InstanceSpec) -> Vec<(String, i32, String)> {
    let runtime = &spec.runtime;
    let containers = runtime.sandbox.iter().flat_map(|s| &s.containers);
    let ports = containers.flat_map(|c| c.ports.iter().flatten()).chain(
        runtime
            .virtual_machine
            .iter()
            .flat_map(|vm| vm.ports.iter().flatten()),
    );
    ports
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_uppercase();
            (p.name.clone(), p.port, protocol)
        })
        .collect()
}

fn fingerprint<T: Serialize>(value: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn instance(name: &str, role: &str, ip: &str) -> Instance {
        serde_json::from_value(json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Instance",
            "metadata": { "name": name, "namespace": "ns", "labels": { "role": role } },
            "spec": {
                "runtime": { "resources": {}, "sandbox": { "containers": [{
                    "name": "c", "image": "i", "ports": [{ "name": "http", "port": 8080 }]
                }] } },
                "networkInterfaces": [{ "network": { "name": "net" } }],
                "location": { "name": "l" }
            },
            "status": { "networkInterfaces": [{ "assignments": { "networkIP": ip } }] }
        }))
        .expect("a valid Instance")
    }

    fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "NetworkPolicy",
            "metadata": { "name": name, "namespace": "ns" }, "spec": spec
        }))
        .expect("a valid NetworkPolicy")
    }

    struct Fixture {
        index: PolicyIndex,
        policies: kube::runtime::reflector::store::Writer<NetworkPolicy>,
        instances: kube::runtime::reflector::store::Writer<Instance>,
    }

    fn fixture() -> Fixture {
        let (policy_store, policies) = store();
        let (instance_store, instances) = store();
        Fixture {
            index: PolicyIndex::new(policy_store, instance_store),
            policies,
            instances,
        }
    }

    fn web_from_client() -> NetworkPolicy {
        policy(
            "web",
            json!({
                "instanceSelector": { "matchLabels": { "role": "web" } },
                "ingress": [{
                    "ports": [{ "port": 8080 }],
                    "from": [{ "instanceSelector": { "matchLabels": { "role": "client" } } }]
                }]
            }),
        )
    }

    #[test]
    fn a_policy_selects_by_label_and_resolves_peers_to_addresses() {
        let mut f = fixture();
        let web = instance("web-0", "web", "10.0.0.2");
        for i in [&web, &instance("client-0", "client", "10.0.0.3")] {
            f.instances.apply_watcher_event(&Event::Apply(i.clone()));
        }
        f.policies
            .apply_watcher_event(&Event::Apply(web_from_client()));
        let selected = f.index.selecting(&web);
        assert_eq!(selected.len(), 1);
        let rules = selected[0].ingress.as_ref().expect("ingress in force");
        assert!(selected[0].egress.is_none(), "egress is not restricted");
        let Some(ResolvedPeer::Instances { instances, .. }) =
            rules[0].peers.as_ref().and_then(|p| p.first())
        else {
            panic!("an instance peer: {rules:?}");
        };
        assert_eq!(instances.len(), 1);
        assert_eq!(instances[0].name, "client-0");
        assert_eq!(
            instances[0].addresses,
            ["10.0.0.3".parse::<IpAddr>().expect("an address")]
        );
        assert_eq!(
            instances[0].named_ports,
            [("http".to_owned(), 8080, "TCP".to_owned())]
        );
        let client = instance("client-0", "client", "10.0.0.3");
        assert!(
            f.index.selecting(&client).is_empty(),
            "client is unselected"
        );
    }

    #[test]
    fn only_the_instances_whose_policies_change_are_affected() {
        let mut f = fixture();
        let web = instance("web-0", "web", "10.0.0.2");
        f.instances.apply_watcher_event(&Event::Apply(web.clone()));
        f.instances
            .apply_watcher_event(&Event::Apply(instance("other-0", "other", "10.0.0.4")));
        assert!(
            f.index.affected(None).is_empty(),
            "no policy, nothing to do"
        );
        f.policies
            .apply_watcher_event(&Event::Apply(web_from_client()));
        assert_eq!(f.index.affected(Some("ns")), [ObjectRef::from_obj(&web)]);
        assert!(f.index.affected(Some("ns")).is_empty(), "recorded");
        // A new peer changes web's peer set; other is not selected, so it is not affected.
        f.instances
            .apply_watcher_event(&Event::Apply(instance("client-0", "client", "10.0.0.3")));
        assert_eq!(f.index.affected(Some("ns")), [ObjectRef::from_obj(&web)]);
        // Relabelling other as a client adds it to the peers.
        f.instances
            .apply_watcher_event(&Event::Apply(instance("other-0", "client", "10.0.0.4")));
        assert_eq!(f.index.affected(Some("ns")), [ObjectRef::from_obj(&web)]);
        // Deleting the policy frees web.
        f.policies
            .apply_watcher_event(&Event::Delete(web_from_client()));
        assert_eq!(f.index.affected(Some("ns")), [ObjectRef::from_obj(&web)]);
        assert!(f.index.selecting(&web).is_empty());
    }

    #[test]
    fn status_writes_that_policies_cannot_see_change_nothing() {
        let f = fixture();
        let mut web = instance("web-0", "web", "10.0.0.2");
        assert!(f.index.peer_changed(&web), "first sight");
        assert!(!f.index.peer_changed(&web), "the same again");
        web.status.get_or_insert_default().provider_id = Some("local://x".into());
        assert!(!f.index.peer_changed(&web), "status beyond addresses");
        web.labels_mut().insert("tier".into(), "front".into());
        assert!(f.index.peer_changed(&web), "a label");
        let moved = instance("web-0", "web", "10.0.0.9");
        assert!(f.index.peer_changed(&moved), "an address");
        f.index.forget(&moved);
        assert!(f.index.peer_changed(&moved), "seen anew after a delete");
    }

    #[test]
    fn policy_types_default_as_in_kubernetes_and_bad_selectors_select_nothing() {
        let mut f = fixture();
        let web = instance("web-0", "web", "10.0.0.2");
        f.instances.apply_watcher_event(&Event::Apply(web.clone()));
        f.policies.apply_watcher_event(&Event::Apply(policy(
            "deny-out",
            json!({ "egress": [{ "to": [{ "ipBlock": { "cidr": "10.0.0.0/8" } }] }] }),
        )));
        f.policies.apply_watcher_event(&Event::Apply(policy(
            "broken",
            json!({ "instanceSelector": { "matchExpressions": [{ "key": "role", "operator": "In" }] } }),
        )));
        let selected = f.index.selecting(&web);
        assert_eq!(selected.len(), 1, "the broken selector selects nothing");
        assert_eq!(selected[0].ingress, Some(vec![]), "Ingress is implied");
        assert_eq!(
            selected[0].egress.as_ref().map(Vec::len),
            Some(1),
            "egress rules imply Egress"
        );
    }
}
