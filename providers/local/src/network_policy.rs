//! The policy layers of one instance as an nftables [`Fragment`] for its Location's table:
//! per interface, its own `networkPolicy` ([`crate::policy`]) and the NetworkPolicy objects
//! that select the instance (resolved by the SDK: [`SelectedNetworkPolicy`]).
//!
//! Each layer is a chain the forward chain jumps to for the interface's addresses — as
//! destination for ingress, as source for egress. A chain `return`s what one of its rules
//! allows and drops the rest, so a packet passes only if every layer in force lets it:
//! - **interface policy** (`ifp_…`): ingress, as the Workload author wrote it;
//! - **NetworkPolicy ingress** (`npi_…`): present when some selecting policy covering the
//!   interface's network restricts ingress; its rules are those policies' rules, ORed;
//! - **NetworkPolicy egress** (`npe_…`): likewise for egress.
//!
//! An interface with neither layer takes everything its network allows. Replies pass
//! ahead of every layer (`ct state established,related`). Traffic between an instance and
//! its own gateway on the Location's namespace never crosses the forward hook, so no layer
//! applies to it.
//!
//! Instance peers become named sets (`…_s<n>_4` and `…_s<n>_6`, both always declared) so
//! that a peer coming, going or changing address changes set members only, which the
//! firewall applies without reloading the table. Ports: numbers, ranges (`endPort`),
//! protocol only (no `port`), and names — an ingress port name is the instance's own port
//! of that name and protocol; an egress port name is each peer instance's, so it only
//! matches instance peers. A name nobody declares matches nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use datum_api::compute::InstanceNetworkInterfaceNetworkPolicy;
use datum_api::networking::{IpBlock, NetworkPolicyPort, Protocol};
use datum_provider::{PeerInstance, ResolvedPeer, ResolvedRule, SelectedNetworkPolicy};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::firewall::{AddressSet, Fragment};
use crate::names;
use crate::policy::NamedPorts;

/// One interface of the instance, as the policy layers need it.
#[derive(Clone, Debug)]
pub struct Interface<'a> {
    /// Its position in `spec.networkInterfaces`.
    pub index: usize,
    /// Its Network: `(namespace, name)`.
    pub network: (String, String),
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its own `networkPolicy`.
    pub policy: Option<&'a InstanceNetworkInterfaceNetworkPolicy>,
}

/// Every policy layer of the instance `external_name` (in `namespace`): empty when no
/// layer is in force.
pub fn fragment(
    external_name: &str,
    namespace: &str,
    interfaces: &[Interface<'_>],
    selected: &[SelectedNetworkPolicy],
    named: &NamedPorts,
) -> Fragment {
    let tag = names::short_hash(&[external_name], 12);
    let mut out = Fragment::default();
    for interface in interfaces {
        if interface.addresses.is_empty() {
            continue;
        }
        let jump = |direction: &str, chain: &str| -> Vec<String> {
            interface
                .addresses
                .iter()
                .map(|a| {
                    let family = if a.is_ipv4() { "ip" } else { "ip6" };
                    format!("{family} {direction} {a} jump {chain}")
                })
                .collect()
        };
        if let Some(policy) = interface.policy {
            let chain = format!("ifp_{tag}_{}", interface.index);
            let mut statements = crate::policy::chain(policy, named);
            statements.push("counter drop".to_owned());
            out.forward.extend(jump("daddr", &chain));
            out.chains.insert(chain, statements);
        }
        let covering: Vec<&SelectedNetworkPolicy> = selected
            .iter()
            .filter(|p| {
                p.network
                    .as_deref()
                    .is_none_or(|n| interface.network.0 == namespace && interface.network.1 == n)
            })
            .collect();
        for direction in [Direction::Ingress, Direction::Egress] {
            let rules: Vec<&ResolvedRule> = covering
                .iter()
                .filter_map(|p| direction.rules(p))
                .flatten()
                .collect();
            let in_force = covering.iter().any(|p| direction.rules(p).is_some());
            if !in_force {
                continue;
            }
            let chain = format!("{}_{tag}_{}", direction.prefix(), interface.index);
            let mut layer = Layer {
                chain: chain.clone(),
                direction,
                named,
                sets: BTreeMap::new(),
                statements: Vec::new(),
            };
            for rule in rules {
                layer.rule(rule);
            }
            layer.statements.push("counter drop".to_owned());
            out.forward.extend(jump(direction.local(), &chain));
            out.sets.extend(layer.sets);
            out.chains.insert(chain, layer.statements);
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn rules(self, policy: &SelectedNetworkPolicy) -> Option<&Vec<ResolvedRule>> {
        match self {
            Direction::Ingress => policy.ingress.as_ref(),
            Direction::Egress => policy.egress.as_ref(),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Direction::Ingress => "npi",
            Direction::Egress => "npe",
        }
    }

    /// Where the instance's own address is: the destination of ingress.
    fn local(self) -> &'static str {
        match self {
            Direction::Ingress => "daddr",
            Direction::Egress => "saddr",
        }
    }

    /// Where the peer's address is.
    fn remote(self) -> &'static str {
        match self {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        }
    }
}

/// One chain being built.
struct Layer<'a> {
    chain: String,
    direction: Direction,
    named: &'a NamedPorts,
    sets: BTreeMap<String, AddressSet>,
    statements: Vec<String>,
}

impl Layer<'_> {
    fn rule(&mut self, rule: &ResolvedRule) {
        let remote = self.direction.remote();
        // Named egress ports resolve per peer instance; everything else per rule.
        let (named, numbered): (Vec<&NetworkPolicyPort>, Vec<&NetworkPolicyPort>) = rule
            .ports
            .iter()
            .partition(|p| self.direction == Direction::Egress && port_name(p).is_some());
        let ports: Vec<String> = if rule.ports.is_empty() {
            vec![String::new()]
        } else {
            numbered
                .iter()
                .filter_map(|p| self.port(p))
                .collect::<Vec<_>>()
        };
        let peers: Vec<String> = match &rule.peers {
            // No port of the rule can match a number: no peer set is needed.
            _ if ports.is_empty() => Vec::new(),
            None => vec![String::new()],
            Some(peers) => peers
                .iter()
                .flat_map(|peer| match peer {
                    ResolvedPeer::IpBlock(block) => ip_block(remote, block).into_iter().collect(),
                    ResolvedPeer::Instances { instances, .. } => {
                        let addresses = instances.iter().flat_map(|i| &i.addresses);
                        self.peer_sets(addresses.copied())
                    }
                })
                .collect(),
        };
        for peer in &peers {
            for port in &ports {
                let statement = format!("{peer}{port} return");
                self.statements.push(statement.trim_start().to_owned());
            }
        }
        for port in named {
            self.named_egress(port, rule.peers.as_deref().unwrap_or_default());
        }
    }

    /// Two sets (IPv4, IPv6) holding `addresses`, and the matches on them.
    fn peer_sets(&mut self, addresses: impl Iterator<Item = IpAddr>) -> Vec<String> {
        let n = self.sets.len() / 2;
        let (mut v4, mut v6) = (BTreeSet::new(), BTreeSet::new());
        for a in addresses {
            if a.is_ipv4() {
                v4.insert(a);
            } else {
                v6.insert(a);
            }
        }
        let remote = self.direction.remote();
        let mut matches = Vec::new();
        for (family, suffix, ipv6, elements) in [("ip", "4", false, v4), ("ip6", "6", true, v6)] {
            let name = format!("{}_s{n}_{suffix}", self.chain);
            matches.push(format!("{family} {remote} @{name}"));
            self.sets.insert(name, AddressSet { ipv6, elements });
        }
        matches
    }

    /// A named port of an egress rule: the peer instances declaring it, grouped by the
    /// number it stands for.
    fn named_egress(&mut self, port: &NetworkPolicyPort, peers: &[ResolvedPeer]) {
        let (Some(name), Some(protocol)) = (port_name(port), protocol(port)) else {
            return;
        };
        let mut by_number: BTreeMap<i32, Vec<IpAddr>> = BTreeMap::new();
        for peer in peers {
            let ResolvedPeer::Instances { instances, .. } = peer else {
                continue;
            };
            for instance in instances {
                if let Some(number) = declared(instance, name, protocol) {
                    by_number
                        .entry(number)
                        .or_default()
                        .extend(&instance.addresses);
                }
            }
        }
        for (number, addresses) in by_number {
            for peer in self.peer_sets(addresses.into_iter()) {
                self.statements
                    .push(format!("{peer} {protocol} dport {number} return"));
            }
        }
    }

    /// ` tcp dport 80`, ` udp dport 1000-2000`, ` meta l4proto sctp`; `None` when the port
    /// cannot match (an unknown name).
    fn port(&self, p: &NetworkPolicyPort) -> Option<String> {
        let protocol = protocol(p)?;
        let number = match &p.port {
            None => return Some(format!(" meta l4proto {protocol}")),
            Some(IntOrString::Int(n)) => *n,
            Some(IntOrString::String(name)) => match name.parse::<i32>() {
                Ok(n) => n,
                Err(_) => {
                    let (n, declared) = self.named.get(name)?;
                    if !declared.eq_ignore_ascii_case(protocol) {
                        return None;
                    }
                    *n
                }
            },
        };
        if !(1..=65535).contains(&number) {
            return None;
        }
        Some(match p.end_port {
            Some(end) if end > number && end <= 65535 => {
                format!(" {protocol} dport {number}-{end}")
            }
            _ => format!(" {protocol} dport {number}"),
        })
    }
}

fn protocol(p: &NetworkPolicyPort) -> Option<&'static str> {
    Some(match p.protocol() {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    })
}

/// The name of a named port (not a number written as a string).
fn port_name(p: &NetworkPolicyPort) -> Option<&str> {
    match &p.port {
        Some(IntOrString::String(name)) if name.parse::<i32>().is_err() => Some(name),
        _ => None,
    }
}

/// The number `instance` declares for port `name` on `protocol`.
fn declared(instance: &PeerInstance, name: &str, protocol: &str) -> Option<i32> {
    instance
        .named_ports
        .iter()
        .find(|(n, _, p)| n == name && p.eq_ignore_ascii_case(protocol))
        .map(|(_, number, _)| *number)
        .filter(|n| (1..=65535).contains(n))
}

/// `ip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 }`; `None` for a malformed CIDR.
fn ip_block(remote: &str, block: &IpBlock) -> Option<String> {
    let cidr: IpNet = block.cidr.parse().ok()?;
    let family = if cidr.addr().is_ipv4() { "ip" } else { "ip6" };
    let except: Vec<String> = block
        .except
        .iter()
        .filter_map(|e| e.parse::<IpNet>().ok())
        .filter(|e| e.addr().is_ipv4() == cidr.addr().is_ipv4())
        .map(|e| e.trunc().to_string())
        .collect();
    let mut m = format!("{family} {remote} {}", cidr.trunc());
    if !except.is_empty() {
        m.push_str(&format!(
            " {family} {remote} != {{ {} }}",
            except.join(", ")
        ));
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    const EXT: &str = "datum-web";

    fn tag() -> String {
        names::short_hash(&[EXT], 12)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn interface(addresses: &[&str]) -> Interface<'static> {
        Interface {
            index: 0,
            network: ("ns".into(), "net".into()),
            addresses: addresses.iter().map(|a| ip(a)).collect(),
            policy: None,
        }
    }

    fn peer(name: &str, addresses: &[&str]) -> PeerInstance {
        PeerInstance {
            name: name.into(),
            addresses: addresses.iter().map(|a| ip(a)).collect(),
            named_ports: vec![("http".into(), 8080, "TCP".into())],
        }
    }

    fn instances(peers: Vec<PeerInstance>) -> ResolvedPeer {
        ResolvedPeer::Instances {
            selector: LabelSelector::default(),
            instances: peers,
        }
    }

    fn tcp(port: i32) -> NetworkPolicyPort {
        NetworkPolicyPort::tcp(IntOrString::Int(port))
    }

    fn ingress(rules: Vec<ResolvedRule>) -> SelectedNetworkPolicy {
        SelectedNetworkPolicy {
            name: "p".into(),
            ingress: Some(rules),
            ..Default::default()
        }
    }

    #[test]
    fn ingress_from_selected_instances_on_one_port() {
        let policy = ingress(vec![ResolvedRule {
            ports: vec![tcp(8080)],
            peers: Some(vec![instances(vec![
                peer("client-0", &["10.0.0.3", "fd00::3"]),
                peer("client-1", &["10.0.0.4"]),
            ])]),
        }]);
        let f = fragment(
            EXT,
            "ns",
            &[interface(&["10.0.0.2", "fd00::2"])],
            &[policy],
            &NamedPorts::new(),
        );
        let t = tag();
        assert_eq!(
            f.forward,
            [
                format!("ip daddr 10.0.0.2 jump npi_{t}_0"),
                format!("ip6 daddr fd00::2 jump npi_{t}_0"),
            ]
        );
        assert_eq!(
            f.chains[&format!("npi_{t}_0")],
            [
                format!("ip saddr @npi_{t}_0_s0_4 tcp dport 8080 return"),
                format!("ip6 saddr @npi_{t}_0_s0_6 tcp dport 8080 return"),
                "counter drop".to_owned(),
            ]
        );
        let v4 = &f.sets[&format!("npi_{t}_0_s0_4")];
        assert!(!v4.ipv6);
        assert_eq!(
            v4.elements,
            BTreeSet::from([ip("10.0.0.3"), ip("10.0.0.4")])
        );
        assert_eq!(
            f.sets[&format!("npi_{t}_0_s0_6")].elements,
            BTreeSet::from([ip("fd00::3")])
        );
    }

    #[test]
    fn blocks_ranges_protocols_and_named_ports() {
        let named = NamedPorts::from([
            ("dns".to_owned(), (53, "UDP".to_owned())),
            ("http".to_owned(), (8080, "TCP".to_owned())),
        ]);
        let port = |protocol, port, end_port| NetworkPolicyPort {
            protocol: Some(protocol),
            port,
            end_port,
        };
        let policy = ingress(vec![ResolvedRule {
            ports: vec![
                port(Protocol::Udp, Some(IntOrString::String("dns".into())), None),
                // A name declared for another protocol matches nothing.
                port(
                    Protocol::Udp,
                    Some(IntOrString::String("http".into())),
                    None,
                ),
                port(Protocol::Tcp, Some(IntOrString::Int(1000)), Some(2000)),
                port(Protocol::Sctp, None, None),
            ],
            peers: Some(vec![ResolvedPeer::IpBlock(IpBlock {
                cidr: "10.0.0.9/8".into(),
                except: vec!["10.1.0.0/16".into(), "fd00::/8".into()],
            })]),
        }]);
        let f = fragment(EXT, "ns", &[interface(&["10.0.0.2"])], &[policy], &named);
        let from = "ip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 }";
        assert_eq!(
            f.chains[&format!("npi_{}_0", tag())],
            [
                format!("{from} udp dport 53 return"),
                format!("{from} tcp dport 1000-2000 return"),
                format!("{from} meta l4proto sctp return"),
                "counter drop".to_owned(),
            ]
        );
        assert!(f.sets.is_empty());
    }

    #[test]
    fn egress_named_ports_resolve_against_each_peer() {
        let mut other = peer("db-0", &["10.0.0.7"]);
        other.named_ports = vec![("http".into(), 9000, "TCP".into())];
        let policy = SelectedNetworkPolicy {
            name: "out".into(),
            egress: Some(vec![ResolvedRule {
                ports: vec![NetworkPolicyPort::tcp(IntOrString::String("http".into()))],
                peers: Some(vec![instances(vec![peer("web-1", &["10.0.0.5"]), other])]),
            }]),
            ..Default::default()
        };
        let f = fragment(
            EXT,
            "ns",
            &[interface(&["10.0.0.2"])],
            &[policy],
            &NamedPorts::new(),
        );
        let t = tag();
        assert_eq!(f.forward, [format!("ip saddr 10.0.0.2 jump npe_{t}_0")]);
        assert_eq!(
            f.chains[&format!("npe_{t}_0")],
            [
                format!("ip daddr @npe_{t}_0_s0_4 tcp dport 8080 return"),
                format!("ip6 daddr @npe_{t}_0_s0_6 tcp dport 8080 return"),
                format!("ip daddr @npe_{t}_0_s1_4 tcp dport 9000 return"),
                format!("ip6 daddr @npe_{t}_0_s1_6 tcp dport 9000 return"),
                "counter drop".to_owned(),
            ]
        );
        assert_eq!(
            f.sets[&format!("npe_{t}_0_s1_4")].elements,
            BTreeSet::from([ip("10.0.0.7")])
        );
    }

    #[test]
    fn no_rules_allow_nothing_and_other_networks_are_untouched() {
        let deny = SelectedNetworkPolicy {
            name: "deny".into(),
            network: Some("net".into()),
            ingress: Some(vec![]),
            egress: None,
        };
        let mut elsewhere = interface(&["10.9.0.2"]);
        elsewhere.index = 1;
        elsewhere.network.1 = "other".into();
        let f = fragment(
            EXT,
            "ns",
            &[interface(&["10.0.0.2"]), elsewhere],
            &[deny],
            &NamedPorts::new(),
        );
        let t = tag();
        assert_eq!(f.forward, [format!("ip daddr 10.0.0.2 jump npi_{t}_0")]);
        assert_eq!(f.chains[&format!("npi_{t}_0")], ["counter drop"]);
    }

    #[test]
    fn policies_are_ored_and_layers_stack() {
        let open = ingress(vec![ResolvedRule {
            ports: vec![],
            peers: None,
        }]);
        let narrow = ingress(vec![ResolvedRule {
            ports: vec![tcp(22)],
            peers: None,
        }]);
        let own = InstanceNetworkInterfaceNetworkPolicy {
            ingress: Some(vec![datum_api::compute::NetworkPolicyIngressRule {
                ports: Some(vec![datum_api::compute::NetworkPolicyPort {
                    port: Some(IntOrString::Int(8080)),
                    ..Default::default()
                }]),
                from: None,
            }]),
        };
        let mut with_own = interface(&["10.0.0.2"]);
        with_own.policy = Some(&own);
        let f = fragment(EXT, "ns", &[with_own], &[narrow, open], &NamedPorts::new());
        let t = tag();
        assert_eq!(
            f.forward,
            [
                format!("ip daddr 10.0.0.2 jump ifp_{t}_0"),
                format!("ip daddr 10.0.0.2 jump npi_{t}_0"),
            ]
        );
        assert_eq!(
            f.chains[&format!("ifp_{t}_0")],
            ["tcp dport 8080 return", "counter drop"]
        );
        assert_eq!(
            f.chains[&format!("npi_{t}_0")],
            ["tcp dport 22 return", "return", "counter drop"]
        );
    }

    #[test]
    fn nothing_in_force_adds_nothing() {
        let f = fragment(
            EXT,
            "ns",
            &[interface(&["10.0.0.2"])],
            &[SelectedNetworkPolicy::default()],
            &NamedPorts::new(),
        );
        assert!(f.is_empty());
    }
}
