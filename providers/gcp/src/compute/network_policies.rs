//! NetworkPolicy objects → firewall rules that target instances by network tag.
//!
//! Each policy that selects an instance becomes, per VPC it covers (the VPC of each of the
//! instance's interfaces on the policy's Network, or of all interfaces when the policy
//! names none), a [`Variant`]: a network tag `datum-np-<hash>` and the rules that target
//! it. The hash covers the zone, the policy's namespace, name and Network, and every rule
//! body, so instances whose resolved policy is the same share one tag and one set of
//! rules, and a change (a peer's new address, an edited policy) is a new tag whose rules
//! exist before any instance carries it. Rules are never edited in place; the rules of a
//! tag no instance in the zone carries any more are swept.
//!
//! Rules of a variant, named `<tag>-…`:
//! - per ingress (egress) rule `j`, `ALLOW` rules `<tag>-i<j>-<k>` (`-e<j>-<k>`) at
//!   priority 1000 from (to) the rule's peers: an `ipBlock` as its CIDR minus its
//!   exceptions, an instance peer as its addresses (`/32`), no peers as `0.0.0.0/0`;
//!   one `allowed` entry per port (protocol lowercased, `port` or `port-endPort`, no
//!   port: every port of the protocol; no ports: `all`). Named ports resolve against the
//!   instance's own ports for ingress and each peer instance's ports for egress, so peers
//!   whose names resolve differently get rules of their own; a name nothing declares
//!   matches nothing. More than [`RANGES_PER_RULE`] ranges are split over several rules.
//! - `DENY` of everything at priority 2000 in each direction the policy restricts
//!   (`<tag>-di`, `<tag>-de`): the isolation. Allows of every policy outrank every deny,
//!   which makes policies additive as Kubernetes defines them; the probers' rule of health
//!   checking (priority 1000) still reaches the instance.
//!
//! The last rule of a variant is its anchor: made last and swept last, so an instance
//! whose anchor exists has all its rules, and an observe that finds it missing repairs.
//!
//! GCP cannot AND two rule sets: where an interface `networkPolicy` (priority 65534) and a
//! NetworkPolicy restricting ingress both apply, the NetworkPolicy decides. IPv6 ranges
//! and addresses are left out: the VPCs this provider makes are IPv4.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use datum_api::compute::InstanceSpec;
use datum_api::networking::{IpBlock, NetworkPolicyPort, Protocol};
use datum_provider::{PlatformError, ResolvedPeer, ResolvedRule, SelectedNetworkPolicy};
use ipnet::Ipv4Net;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use crate::compute::{Compute, network_tags, spec_hash};

/// The prefix of every NetworkPolicy tag and rule name.
pub const TAG_PREFIX: &str = "datum-np-";
/// Priority of the rules that let traffic through.
pub const ALLOW_PRIORITY: u32 = 1000;
/// Priority of the isolating denies: below every allow, above interface rules (65534).
pub const DENY_PRIORITY: u32 = 2000;
/// Most ranges one rule carries (Compute Engine caps ranges per rule; this stays well under).
pub const RANGES_PER_RULE: usize = 256;
/// Most network tags one instance may carry (Compute Engine's limit).
pub const MAX_TAGS: usize = 64;

/// One policy on one VPC of the instance: its tag and the rules targeting it.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The network tag the instance carries, `datum-np-<hash>`.
    pub tag: String,
    /// The interface whose VPC the rules live in.
    pub interface: usize,
    /// Rule bodies without `network`, anchor last.
    pub rules: Vec<Value>,
}

impl Variant {
    /// The name of the rule made last and swept last.
    pub fn anchor(&self) -> &str {
        self.rules
            .last()
            .and_then(|r| r["name"].as_str())
            .unwrap_or_default()
    }

    /// The rule bodies in the VPC `network` (a selfLink).
    pub fn bodies(&self, network: &str) -> Vec<Value> {
        self.rules
            .iter()
            .map(|rule| {
                let mut rule = rule.clone();
                rule["network"] = json!(network);
                rule
            })
            .collect()
    }
}

/// The description of every rule of a variant in `zone`: how a sweep finds them.
pub fn description(zone: &str, namespace: &str, policy: &str) -> String {
    format!("datum:np:{zone}:{namespace}/{policy}")
}

/// Whether rule description `text` is of a NetworkPolicy variant in `zone`.
pub fn in_zone(text: &str, zone: &str) -> bool {
    text.strip_prefix("datum:np:")
        .and_then(|rest| rest.strip_prefix(zone))
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Every variant of the instance `spec` in `namespace` and `zone`, from the policies that
/// select it. Policies restricting nothing make none.
pub fn variants(
    zone: &str,
    namespace: &str,
    spec: &InstanceSpec,
    selected: &[SelectedNetworkPolicy],
) -> Vec<Variant> {
    let own = datum_provider::network_policy::named_ports(spec);
    let location = spec.location.as_ref().map(|l| l.name.as_str());
    let mut out: Vec<Variant> = Vec::new();
    for policy in selected {
        if policy.ingress.is_none() && policy.egress.is_none() {
            continue;
        }
        let mut rules = Vec::new();
        if let Some(ingress) = &policy.ingress {
            rules.extend(direction_rules(Direction::Ingress, ingress, &own));
        }
        if let Some(egress) = &policy.egress {
            rules.extend(direction_rules(Direction::Egress, egress, &own));
        }
        for (index, interface) in spec.network_interfaces.iter().enumerate() {
            let network = &interface.network.name;
            if policy.network.as_ref().is_some_and(|n| n != network) {
                continue;
            }
            let hash = spec_hash(&json!([
                zone,
                namespace,
                policy.name,
                network,
                location,
                rules
            ]));
            let tag = format!("{TAG_PREFIX}{hash}");
            if out.iter().any(|v| v.tag == tag) {
                continue;
            }
            let rules = rules
                .iter()
                .map(|(suffix, body)| {
                    let mut body = body.clone();
                    body["name"] = json!(format!("{tag}-{suffix}"));
                    body["description"] = json!(description(zone, namespace, &policy.name));
                    body["targetTags"] = json!([tag]);
                    body
                })
                .collect();
            out.push(Variant {
                tag,
                interface: index,
                rules,
            });
        }
    }
    out
}

/// Refuses more tags than an instance may carry, naming what brought them.
pub fn check_tag_count(count: usize) -> Result<(), PlatformError> {
    if count > MAX_TAGS {
        return Err(PlatformError {
            reason: "TooManyNetworkPolicies".to_owned(),
            message: format!(
                "the instance would carry {} network tags (its own, health checking and one per NetworkPolicy and VPC); Compute Engine allows {MAX_TAGS}: select it with fewer NetworkPolicies",
                count
            ),
        });
    }
    Ok(())
}

impl Compute {
    /// Makes every rule of `variants` in the VPC of its interface (`nics`, the instance's
    /// `networkInterfaces`), each variant's anchor last.
    pub(crate) async fn ensure_policy_rules(
        &self,
        project: &str,
        variants: &[Variant],
        nics: &Value,
    ) -> Result<(), PlatformError> {
        let collection = format!("projects/{project}/global/firewalls");
        for variant in variants {
            let network = nics[variant.interface]["network"]
                .as_str()
                .unwrap_or_default();
            for body in variant.bodies(network) {
                self.insert(&collection, &body).await.map_err(|e| {
                    e.to_platform(&format!(
                        "insert of firewall {}",
                        body["name"].as_str().unwrap_or_default()
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Whether every variant's anchor rule exists (then all its rules do).
    pub(crate) async fn policy_rules_present(
        &self,
        project: &str,
        variants: &[Variant],
    ) -> Result<bool, PlatformError> {
        for variant in variants {
            let path = format!("projects/{project}/global/firewalls/{}", variant.anchor());
            if self
                .get(&path)
                .await
                .map_err(|e| e.to_platform("get of firewall"))?
                .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Deletes the NetworkPolicy rules in `zone` whose tag no instance there carries,
    /// leaving `leaving` (an instance about to go) out of the count; anchors go last.
    /// `rules`: the project's firewalls, when the caller has listed them.
    pub(crate) async fn sweep_policy_rules(
        &self,
        project: &str,
        zone: &str,
        leaving: Option<&str>,
        rules: Option<Vec<Value>>,
    ) -> Result<(), PlatformError> {
        let collection = format!("projects/{project}/global/firewalls");
        let rules = match rules {
            Some(rules) => rules,
            None => self
                .list(&collection)
                .await
                .map_err(|e| e.to_platform("list of firewalls"))?,
        };
        let mut ours: Vec<(String, String)> = rules
            .iter()
            .filter(|r| in_zone(r["description"].as_str().unwrap_or_default(), zone))
            .filter_map(|r| {
                let name = r["name"].as_str()?;
                let tag = r["targetTags"][0].as_str()?;
                Some((name.to_owned(), tag.to_owned()))
            })
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        let instances = self
            .list(&format!("projects/{project}/zones/{zone}/instances"))
            .await
            .map_err(|e| e.to_platform("list of instances"))?;
        let carried: BTreeSet<&str> = instances
            .iter()
            .filter(|i| leaving.is_none_or(|name| i["name"] != name))
            .flat_map(network_tags)
            .collect();
        ours.retain(|(_, tag)| !carried.contains(tag.as_str()));
        // Allows, then the ingress deny, then the egress deny: the anchor is last.
        ours.sort_by_key(|(name, _)| {
            (
                name.ends_with("-di") || name.ends_with("-de"),
                name.ends_with("-de"),
                name.clone(),
            )
        });
        for (name, _) in ours {
            Compute::delete(self, &format!("{collection}/{name}"))
                .await
                .map_err(|e| e.to_platform(&format!("delete of firewall {name}")))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Ingress,
    Egress,
}

/// The rules of one direction, as `(name suffix, body)`: allows, then the deny.
fn direction_rules(
    direction: Direction,
    rules: &[ResolvedRule],
    own: &[(String, i32, String)],
) -> Vec<(String, Value)> {
    let (letter, word, ranges_field) = match direction {
        Direction::Ingress => ("i", "INGRESS", "sourceRanges"),
        Direction::Egress => ("e", "EGRESS", "destinationRanges"),
    };
    let mut out = Vec::new();
    for (j, rule) in rules.iter().enumerate() {
        let mut k = 0;
        for (allowed, ranges) in allow_groups(direction, rule, own) {
            for chunk in ranges.chunks(RANGES_PER_RULE) {
                out.push((
                    format!("{letter}{j}-{k}"),
                    json!({
                        "direction": word,
                        "priority": ALLOW_PRIORITY,
                        "allowed": allowed,
                        ranges_field: chunk,
                    }),
                ));
                k += 1;
            }
        }
    }
    out.push((
        format!("d{letter}"),
        json!({
            "direction": word,
            "priority": DENY_PRIORITY,
            "denied": [{ "IPProtocol": "all" }],
            ranges_field: ["0.0.0.0/0"],
        }),
    ));
    out
}

/// What one rule allows, grouped by ports: `(allowed entries, ranges)`, each group one or
/// more firewall rules.
fn allow_groups(
    direction: Direction,
    rule: &ResolvedRule,
    own: &[(String, i32, String)],
) -> Vec<(Vec<Value>, Vec<String>)> {
    // Ports are the same for every peer, except that an egress port name is each peer
    // instance's own (and matches no block or "everyone").
    let fixed = match direction {
        Direction::Ingress => allowed(&rule.ports, own),
        Direction::Egress => allowed(&rule.ports, &[]),
    };
    let mut groups: BTreeMap<String, (Vec<Value>, BTreeSet<String>)> = BTreeMap::new();
    let mut add = |allowed: Option<Vec<Value>>, ranges: Vec<String>| {
        let Some(allowed) = allowed else { return };
        if ranges.is_empty() {
            return;
        }
        let key = Value::Array(allowed.clone()).to_string();
        groups
            .entry(key)
            .or_insert_with(|| (allowed, BTreeSet::new()))
            .1
            .extend(ranges);
    };
    if rule.peers.is_none() {
        add(fixed.clone(), vec!["0.0.0.0/0".to_owned()]);
    }
    for peer in rule.peers.iter().flatten() {
        match peer {
            ResolvedPeer::IpBlock(block) => add(fixed.clone(), block_ranges(block)),
            ResolvedPeer::Instances { instances, .. } => {
                for instance in instances {
                    let ports = match direction {
                        Direction::Ingress => fixed.clone(),
                        Direction::Egress => allowed(&rule.ports, &instance.named_ports),
                    };
                    let ranges = instance
                        .addresses
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V4(v4) => Some(format!("{v4}/32")),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                    add(ports, ranges);
                }
            }
        }
    }
    groups
        .into_values()
        .map(|(allowed, ranges)| (allowed, ranges.into_iter().collect()))
        .collect()
}

/// The `allowed` entries of `ports`, names resolved against `named`; `None` when the ports
/// are only names nothing declares (the rule matches nothing).
fn allowed(ports: &[NetworkPolicyPort], named: &[(String, i32, String)]) -> Option<Vec<Value>> {
    if ports.is_empty() {
        return Some(vec![json!({ "IPProtocol": "all" })]);
    }
    let mut out = Vec::new();
    for port in ports {
        let protocol = match port.protocol.unwrap_or_default() {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        };
        let range = match (&port.port, port.end_port) {
            (None, _) => None,
            (Some(IntOrString::Int(p)), None) => Some(p.to_string()),
            (Some(IntOrString::Int(p)), Some(end)) => Some(format!("{p}-{end}")),
            (Some(IntOrString::String(name)), _) => {
                let wanted = protocol.to_ascii_uppercase();
                let Some((_, number, _)) = named.iter().find(|(n, _, p)| n == name && *p == wanted)
                else {
                    continue;
                };
                Some(number.to_string())
            }
        };
        let entry = match range {
            Some(range) => json!({ "IPProtocol": protocol, "ports": [range] }),
            None => json!({ "IPProtocol": protocol }),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// An `ipBlock` as IPv4 CIDRs: its range minus its exceptions. IPv6 blocks give none.
fn block_ranges(block: &IpBlock) -> Vec<String> {
    let Ok(net) = block.cidr.parse::<Ipv4Net>() else {
        return Vec::new();
    };
    let except: Vec<Ipv4Net> = block
        .except
        .iter()
        .filter_map(|e| e.parse::<Ipv4Net>().ok())
        .map(|e| e.trunc())
        .collect();
    subtract(net.trunc(), &except)
        .into_iter()
        .map(|n| n.to_string())
        .collect()
}

/// `net` minus every range in `except`, as few CIDRs as halving gives.
fn subtract(net: Ipv4Net, except: &[Ipv4Net]) -> Vec<Ipv4Net> {
    if except.iter().any(|e| e.contains(&net)) {
        return Vec::new();
    }
    if !except.iter().any(|e| net.contains(e)) {
        return vec![net];
    }
    net.subnets(net.prefix_len() + 1)
        .into_iter()
        .flatten()
        .flat_map(|half| subtract(half, except))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_provider::PeerInstance;

    fn spec() -> InstanceSpec {
        serde_json::from_value(json!({
            "runtime": {
                "resources": {},
                "sandbox": { "containers": [{ "name": "web", "image": "nginx", "ports": [{ "name": "http", "port": 8080 }] }] },
            },
            "networkInterfaces": [{ "network": { "name": "default" } }, { "network": { "name": "other" } }],
            "location": { "name": "loc" },
        }))
        .expect("a spec")
    }

    fn port(value: Value) -> NetworkPolicyPort {
        serde_json::from_value(value).expect("a port")
    }

    fn peer(name: &str, ip: &str, ports: &[(&str, i32)]) -> PeerInstance {
        PeerInstance {
            name: name.to_owned(),
            addresses: vec![ip.parse().expect("an address")],
            named_ports: ports
                .iter()
                .map(|(n, p)| ((*n).to_owned(), *p, "TCP".to_owned()))
                .collect(),
        }
    }

    #[test]
    fn exceptions_are_cut_out_of_a_block() {
        let block = IpBlock {
            cidr: "10.0.0.0/24".to_owned(),
            except: vec!["10.0.0.0/26".to_owned(), "10.0.0.128/26".to_owned()],
        };
        assert_eq!(block_ranges(&block), ["10.0.0.64/26", "10.0.0.192/26"]);
        let whole = IpBlock {
            cidr: "10.0.0.0/24".to_owned(),
            except: vec!["10.0.0.0/16".to_owned()],
        };
        assert!(block_ranges(&whole).is_empty());
        let v6 = IpBlock {
            cidr: "2001:db8::/64".to_owned(),
            except: vec![],
        };
        assert!(block_ranges(&v6).is_empty());
    }

    #[test]
    fn ingress_becomes_allows_then_a_deny_on_the_policys_network_only() {
        let policy = SelectedNetworkPolicy {
            name: "web".to_owned(),
            network: Some("default".to_owned()),
            ingress: Some(vec![ResolvedRule {
                ports: vec![
                    port(json!({ "port": "http" })),
                    port(json!({ "protocol": "UDP", "port": 53, "endPort": 54 })),
                ],
                peers: Some(vec![
                    ResolvedPeer::Instances {
                        selector: Default::default(),
                        instances: vec![peer("a", "10.1.0.5", &[]), peer("b", "10.1.0.6", &[])],
                    },
                    ResolvedPeer::IpBlock(IpBlock {
                        cidr: "192.168.0.0/16".to_owned(),
                        except: vec![],
                    }),
                ]),
            }]),
            egress: None,
        };
        let variants = variants("us-central1-a", "ns", &spec(), &[policy]);
        assert_eq!(variants.len(), 1, "{variants:?}");
        let v = &variants[0];
        assert_eq!(v.interface, 0);
        assert!(v.tag.starts_with(TAG_PREFIX) && v.tag.len() <= 63);
        assert_eq!(v.rules.len(), 2);
        let allow = &v.rules[0];
        assert_eq!(allow["name"], format!("{}-i0-0", v.tag));
        assert_eq!(allow["direction"], "INGRESS");
        assert_eq!(allow["priority"], ALLOW_PRIORITY);
        assert_eq!(allow["targetTags"], json!([v.tag]));
        assert_eq!(
            allow["allowed"],
            json!([{ "IPProtocol": "tcp", "ports": ["8080"] }, { "IPProtocol": "udp", "ports": ["53-54"] }])
        );
        assert_eq!(
            allow["sourceRanges"],
            json!(["10.1.0.5/32", "10.1.0.6/32", "192.168.0.0/16"])
        );
        assert_eq!(v.anchor(), format!("{}-di", v.tag));
        assert_eq!(v.rules[1]["denied"], json!([{ "IPProtocol": "all" }]));
        assert_eq!(v.rules[1]["priority"], DENY_PRIORITY);
        assert!(in_zone(
            v.rules[1]["description"].as_str().unwrap_or_default(),
            "us-central1-a"
        ));
        assert!(!in_zone(
            v.rules[1]["description"].as_str().unwrap_or_default(),
            "us-central1"
        ));
        assert_eq!(v.bodies("link")[0]["network"], "link");
    }

    #[test]
    fn egress_names_resolve_per_peer_and_empty_rules_isolate() {
        let policy = SelectedNetworkPolicy {
            name: "out".to_owned(),
            network: None,
            ingress: Some(vec![]),
            egress: Some(vec![ResolvedRule {
                ports: vec![port(json!({ "port": "db" }))],
                peers: Some(vec![ResolvedPeer::Instances {
                    selector: Default::default(),
                    instances: vec![
                        peer("a", "10.1.0.5", &[("db", 5432)]),
                        peer("b", "10.1.0.6", &[("db", 3306)]),
                        peer("c", "10.1.0.7", &[]),
                    ],
                }]),
            }]),
        };
        let variants = variants("z", "ns", &spec(), &[policy]);
        // Both interfaces: no network named.
        assert_eq!(variants.len(), 2);
        assert_ne!(variants[0].tag, variants[1].tag);
        let names: Vec<&str> = variants[0]
            .rules
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        let tag = &variants[0].tag;
        assert_eq!(
            names,
            [
                format!("{tag}-di"),
                format!("{tag}-e0-0"),
                format!("{tag}-e0-1"),
                format!("{tag}-de")
            ]
        );
        let by_port: Vec<(&Value, &Value)> = variants[0].rules[1..3]
            .iter()
            .map(|r| (&r["allowed"][0]["ports"][0], &r["destinationRanges"]))
            .collect();
        assert!(
            by_port.contains(&(&json!("3306"), &json!(["10.1.0.6/32"]))),
            "{by_port:?}"
        );
        assert!(
            by_port.contains(&(&json!("5432"), &json!(["10.1.0.5/32"]))),
            "{by_port:?}"
        );
    }

    #[test]
    fn a_changed_peer_is_a_new_tag_and_a_policy_restricting_nothing_none() {
        let policy = |ip: &str| SelectedNetworkPolicy {
            name: "p".to_owned(),
            network: Some("default".to_owned()),
            ingress: Some(vec![ResolvedRule {
                ports: vec![],
                peers: Some(vec![ResolvedPeer::Instances {
                    selector: Default::default(),
                    instances: vec![peer("a", ip, &[])],
                }]),
            }]),
            egress: None,
        };
        let a = variants("z", "ns", &spec(), &[policy("10.0.0.1")]);
        let b = variants("z", "ns", &spec(), &[policy("10.0.0.2")]);
        assert_ne!(a[0].tag, b[0].tag);
        assert_eq!(a, variants("z", "ns", &spec(), &[policy("10.0.0.1")]));
        assert_eq!(a[0].rules[0]["allowed"], json!([{ "IPProtocol": "all" }]));
        let nothing = SelectedNetworkPolicy {
            name: "n".to_owned(),
            ..Default::default()
        };
        assert!(variants("z", "ns", &spec(), &[nothing]).is_empty());
        assert!(check_tag_count(65).is_err());
        assert!(check_tag_count(64).is_ok());
    }

    #[test]
    fn many_peers_are_split_over_rules() {
        let instances = (0..300)
            .map(|i| {
                peer(
                    &format!("p{i}"),
                    &format!("10.2.{}.{}", i / 200, i % 200 + 1),
                    &[],
                )
            })
            .collect();
        let policy = SelectedNetworkPolicy {
            name: "big".to_owned(),
            network: Some("default".to_owned()),
            ingress: Some(vec![ResolvedRule {
                ports: vec![],
                peers: Some(vec![ResolvedPeer::Instances {
                    selector: Default::default(),
                    instances,
                }]),
            }]),
            egress: None,
        };
        let v = &variants("z", "ns", &spec(), &[policy])[0];
        assert_eq!(v.rules.len(), 3);
        let counted: usize = v.rules[..2]
            .iter()
            .map(|r| r["sourceRanges"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(counted, 300);
    }
}
