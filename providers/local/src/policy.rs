//! An interface's `networkPolicy` as the statements of its chain in the Location
//! namespace's table ([`crate::network_policy`] puts the chain together with the other
//! layers and jumps to it for the interface's addresses).
//!
//! Policies match on the destination address IPAM gave the interface, so they hold both for
//! traffic bridged inside one network (seen by the forward hook through `br_netfilter`) and
//! for traffic routed in. Rules are ORed: each `return`s what it allows, and the chain ends
//! in a drop (an empty `ingress` list allows nothing); an interface without a policy takes
//! everything from its own network. Replies are let through earlier by conntrack.
//!
//! A block of the other address family than a packet's matches nothing.

use std::collections::HashMap;

use datum_api::compute::{InstanceNetworkInterfaceNetworkPolicy, NetworkPolicyPort};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Named container ports of an instance: name → (port, protocol).
pub type NamedPorts = HashMap<String, (i32, String)>;

/// The statements that `return` what `policy` allows (the caller adds the final drop).
pub fn chain(policy: &InstanceNetworkInterfaceNetworkPolicy, named: &NamedPorts) -> Vec<String> {
    let mut out = Vec::new();
    for rule in policy.ingress.iter().flatten() {
        let sources = match rule.from.as_deref() {
            None | Some([]) => vec![String::new()],
            Some(peers) => peers
                .iter()
                .filter_map(|p| p.ip_block.as_ref())
                .filter_map(|block| {
                    let cidr: IpNet = block.cidr.parse().ok()?;
                    let family = if cidr.addr().is_ipv4() { "ip" } else { "ip6" };
                    let except: Vec<String> = block
                        .except
                        .iter()
                        .flatten()
                        .filter_map(|e| e.parse::<IpNet>().ok())
                        .filter(|e| e.addr().is_ipv4() == cidr.addr().is_ipv4())
                        .map(|e| e.trunc().to_string())
                        .collect();
                    let mut m = format!("{family} saddr {} ", cidr.trunc());
                    if !except.is_empty() {
                        m.push_str(&format!("{family} saddr != {{ {} }} ", except.join(", ")));
                    }
                    Some(m)
                })
                .collect(),
        };
        let ports = match rule.ports.as_deref() {
            None | Some([]) => vec![String::new()],
            Some(ports) => ports.iter().filter_map(|p| port(p, named)).collect(),
        };
        for source in &sources {
            for port in &ports {
                out.push(format!("{source}{port}return"));
            }
        }
    }
    out
}

/// `tcp dport 80 `, `udp dport 1000-2000 `, `meta l4proto tcp `; `None` when the port
/// cannot match (an unknown name or protocol).
fn port(p: &NetworkPolicyPort, named: &NamedPorts) -> Option<String> {
    let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
    let (number, protocol) = match &p.port {
        None => {
            return known(&protocol).then(|| format!("meta l4proto {protocol} "));
        }
        Some(IntOrString::Int(n)) => (*n, protocol),
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => (n, protocol),
            Err(_) => {
                let (n, named_protocol) = named.get(name)?;
                (*n, named_protocol.to_ascii_lowercase())
            }
        },
    };
    if !known(&protocol) || !(1..=65535).contains(&number) {
        return None;
    }
    Some(match p.end_port {
        Some(end) if end > number && end <= 65535 => format!("{protocol} dport {number}-{end} "),
        _ => format!("{protocol} dport {number} "),
    })
}

fn known(protocol: &str) -> bool {
    matches!(protocol, "tcp" | "udp" | "sctp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::compute::{IpBlock, NetworkPolicyIngressRule, NetworkPolicyPeer};

    fn policy(rules: Vec<NetworkPolicyIngressRule>) -> InstanceNetworkInterfaceNetworkPolicy {
        InstanceNetworkInterfaceNetworkPolicy {
            ingress: Some(rules),
        }
    }

    #[test]
    fn a_port_rule_allows_that_port() {
        let rules = chain(
            &policy(vec![NetworkPolicyIngressRule {
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(8080)),
                    ..Default::default()
                }]),
                from: None,
            }]),
            &NamedPorts::new(),
        );
        assert_eq!(rules, ["tcp dport 8080 return"]);
    }

    #[test]
    fn sources_named_ports_and_ranges() {
        let named = NamedPorts::from([("dns".to_owned(), (53, "UDP".to_owned()))]);
        let rules = chain(
            &policy(vec![NetworkPolicyIngressRule {
                ports: Some(vec![
                    NetworkPolicyPort {
                        port: Some(IntOrString::String("dns".into())),
                        ..Default::default()
                    },
                    NetworkPolicyPort {
                        protocol: Some("UDP".into()),
                        port: Some(IntOrString::Int(1000)),
                        end_port: Some(2000),
                    },
                    NetworkPolicyPort {
                        port: Some(IntOrString::String("nope".into())),
                        ..Default::default()
                    },
                ]),
                from: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IpBlock {
                        cidr: "10.0.0.9/8".into(),
                        except: Some(vec!["10.1.0.0/16".into()]),
                    }),
                }]),
            }]),
            &named,
        );
        let from = "ip saddr 10.0.0.0/8 ip saddr != { 10.1.0.0/16 }";
        assert_eq!(
            rules,
            [
                format!("{from} udp dport 53 return"),
                format!("{from} udp dport 1000-2000 return"),
            ]
        );
    }

    #[test]
    fn blocks_match_their_own_family() {
        let rules = chain(
            &policy(vec![NetworkPolicyIngressRule {
                ports: None,
                from: Some(vec![
                    NetworkPolicyPeer {
                        ip_block: Some(IpBlock {
                            cidr: "10.0.0.0/8".into(),
                            except: None,
                        }),
                    },
                    NetworkPolicyPeer {
                        ip_block: Some(IpBlock {
                            cidr: "fd00::/64".into(),
                            except: None,
                        }),
                    },
                ]),
            }]),
            &NamedPorts::new(),
        );
        assert_eq!(
            rules,
            ["ip saddr 10.0.0.0/8 return", "ip6 saddr fd00::/64 return"]
        );
    }

    #[test]
    fn an_empty_ingress_list_allows_nothing() {
        assert!(chain(&policy(vec![]), &NamedPorts::new()).is_empty());
    }
}
