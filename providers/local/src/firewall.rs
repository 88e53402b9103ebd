//! Network isolation with nftables inside a Location's namespace: table `inet datum` lets
//! traffic flow within each bridge (and replies), and drops everything forwarded between
//! bridges, so instances on different networks cannot reach each other. Instances may reach
//! only their own gateway on the namespace itself.
//!
//! Each instance with a policy adds a [`Fragment`]: chains that `return` what a policy
//! allows and drop the rest, jumps to them from the forward chain ahead of the networks'
//! own accept rules, and named address sets its rules match peers against. A packet must
//! come back from every chain it jumps to, so each policy layer — an interface's
//! `networkPolicy` ([`crate::policy`]), the NetworkPolicy objects' ingress and egress
//! ([`crate::network_policy`]) — restricts on its own.
//!
//! The whole table is replaced atomically when its rules change (`nft -f` runs one
//! transaction). When only the members of sets changed — a peer instance came, went or
//! was relabelled — just those sets are flushed and refilled, in one transaction too. All
//! of it runs with `nsenter --net`, so nothing is ever loaded into the host's namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::netns;

/// Errors from loading rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` could not be run.
    #[error("failed to run nft in {netns}: {source}")]
    Spawn {
        /// The namespace.
        netns: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused the rules.
    #[error("nft refused the rules for {netns}: {stderr}")]
    Rejected {
        /// The namespace.
        netns: String,
        /// What nft said.
        stderr: String,
    },
}

/// IPv6 neighbour discovery, which IPv4's ARP needs no rule for: without it no address on
/// a network could be resolved.
const NEIGHBOUR_DISCOVERY: &str = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept";

/// One bridge and its gateway addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeRule {
    /// The bridge.
    pub bridge: String,
    /// Its gateway addresses (one per subnet on the network).
    pub gateways: Vec<std::net::IpAddr>,
}

/// Named address sets, chains and forward-chain statements one instance adds to its
/// Location's table. Names are the instance's own (see [`crate::names::policy_chain`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Address sets by name.
    pub sets: BTreeMap<String, AddressSet>,
    /// Chains by name: their statements, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Statements for the forward chain (jumps into `chains`), in order.
    pub forward: Vec<String>,
}

impl Fragment {
    /// Whether the fragment adds nothing.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.chains.is_empty() && self.forward.is_empty()
    }

    /// Adds `other`'s sets, chains and statements after this one's.
    pub fn extend(&mut self, other: Fragment) {
        self.sets.extend(other.sets);
        self.chains.extend(other.chains);
        self.forward.extend(other.forward);
    }
}

/// A named set of addresses of one family.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressSet {
    /// IPv6 (`ipv6_addr`) rather than IPv4 (`ipv4_addr`).
    pub ipv6: bool,
    /// The members.
    pub elements: BTreeSet<std::net::IpAddr>,
}

impl AddressSet {
    fn type_(&self) -> &'static str {
        if self.ipv6 { "ipv6_addr" } else { "ipv4_addr" }
    }

    fn elements(&self) -> String {
        let members: Vec<String> = self.elements.iter().map(ToString::to_string).collect();
        members.join(", ")
    }
}

/// A rendered table: its text, and what a later change needs to know to touch only sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// The table with every set's members left out.
    pub skeleton: String,
    /// The sets and their members.
    pub sets: BTreeMap<String, AddressSet>,
}

impl Ruleset {
    /// The table for the given bridges and instance fragments.
    pub fn new(bridges: &[BridgeRule], fragments: &[Fragment]) -> Self {
        let mut sets = BTreeMap::new();
        let mut chains = BTreeMap::new();
        let mut jumps = Vec::new();
        for fragment in fragments {
            sets.extend(fragment.sets.clone());
            chains.extend(fragment.chains.clone());
            jumps.extend(fragment.forward.iter().cloned());
        }
        let mut declarations = String::new();
        for (name, set) in &sets {
            let _ = writeln!(declarations, "  set {name} {{ type {}; }}", set.type_());
        }
        for (name, statements) in &chains {
            let _ = writeln!(declarations, "  chain {name} {{");
            for statement in statements {
                let _ = writeln!(declarations, "    {statement}");
            }
            let _ = writeln!(declarations, "  }}");
        }
        Self {
            skeleton: skeleton(bridges, &declarations, &jumps),
            sets,
        }
    }

    /// The `nft -f` script that replaces the whole table.
    pub fn full(&self) -> String {
        let mut script = self.skeleton.clone();
        for (name, set) in &self.sets {
            if !set.elements.is_empty() {
                let _ = writeln!(
                    script,
                    "add element inet datum {name} {{ {} }}",
                    set.elements()
                );
            }
        }
        script
    }

    /// The script that turns `applied` into this ruleset by refilling sets, if only set
    /// members differ (`Some("")` when nothing does).
    pub fn set_changes(&self, applied: &Ruleset) -> Option<String> {
        let same_sets = self.sets.len() == applied.sets.len()
            && self
                .sets
                .iter()
                .zip(&applied.sets)
                .all(|((a, x), (b, y))| a == b && x.ipv6 == y.ipv6);
        if self.skeleton != applied.skeleton || !same_sets {
            return None;
        }
        let mut script = String::new();
        for ((name, set), (_, before)) in self.sets.iter().zip(&applied.sets) {
            if set.elements == before.elements {
                continue;
            }
            let _ = writeln!(script, "flush set inet datum {name}");
            if !set.elements.is_empty() {
                let _ = writeln!(
                    script,
                    "add element inet datum {name} {{ {} }}",
                    set.elements()
                );
            }
        }
        Some(script)
    }
}

/// The table without set members: isolation, then `jumps` into the instances' chains.
fn skeleton(bridges: &[BridgeRule], declarations: &str, jumps: &[String]) -> String {
    let mut forward = String::new();
    let mut input = String::new();
    for statement in jumps {
        let _ = writeln!(forward, "    {statement}");
    }
    for b in bridges {
        let _ = writeln!(
            forward,
            "    iifname \"{0}\" oifname \"{0}\" accept",
            b.bridge
        );
        // Per family: an instance may reach its own gateways on the namespace, nothing else.
        for (family, match_) in [("ipv4", "ip"), ("ipv6", "ip6")] {
            let gateways: Vec<String> = b
                .gateways
                .iter()
                .filter(|g| g.is_ipv4() == (family == "ipv4"))
                .map(ToString::to_string)
                .collect();
            let _ = match gateways.as_slice() {
                [] => writeln!(
                    input,
                    "    iifname \"{}\" meta nfproto {family} drop",
                    b.bridge
                ),
                _ => writeln!(
                    input,
                    "    iifname \"{}\" {match_} daddr != {{ {} }} drop",
                    b.bridge,
                    gateways.join(", ")
                ),
            };
        }
    }
    format!(
        "table inet datum\ndelete table inet datum\ntable inet datum {{\n{declarations}  chain forward {{\n    type filter hook forward priority filter; policy drop;\n    ct state established,related accept\n    {NEIGHBOUR_DISCOVERY}\n{forward}    counter comment \"between networks\"\n  }}\n  chain input {{\n    type filter hook input priority filter; policy accept;\n    {NEIGHBOUR_DISCOVERY}\n{input}  }}\n}}\n"
    )
}

/// Loads `ruleset` into the namespace `netns_name`: only the changed set members when
/// `applied` (what was loaded last) differs from it in nothing else, else the whole table.
pub async fn apply(
    netns_name: &str,
    ruleset: &Ruleset,
    applied: Option<&Ruleset>,
) -> Result<(), Error> {
    if let Some(script) = applied.and_then(|a| ruleset.set_changes(a)) {
        if script.is_empty() {
            return Ok(());
        }
        match nft(netns_name, &script).await {
            Ok(()) => return Ok(()),
            // Someone changed the table under us: load all of it.
            Err(error) => tracing::debug!(%error, "refilling sets failed; reloading the table"),
        }
    }
    nft(netns_name, &ruleset.full()).await
}

/// Runs `nft -f -` with `script` inside `netns_name`.
async fn nft(netns_name: &str, script: &str) -> Result<(), Error> {
    let spawn = |source| Error::Spawn {
        netns: netns_name.to_owned(),
        source,
    };
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net={}", netns::path(netns_name).display()))
        .args(["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(spawn)?;
    }
    let output = child.wait_with_output().await.map_err(spawn)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Rejected {
            netns: netns_name.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge() -> BridgeRule {
        BridgeRule {
            bridge: "br-a".into(),
            gateways: vec!["10.213.0.1".parse().expect("an address")],
        }
    }

    fn fragment(members: &[&str]) -> Fragment {
        Fragment {
            sets: BTreeMap::from([(
                "npi_x_0_s0_4".to_owned(),
                AddressSet {
                    ipv6: false,
                    elements: members
                        .iter()
                        .map(|m| m.parse().expect("an address"))
                        .collect(),
                },
            )]),
            chains: BTreeMap::from([(
                "npi_x_0".to_owned(),
                vec![
                    "ip saddr @npi_x_0_s0_4 return".to_owned(),
                    "counter drop".to_owned(),
                ],
            )]),
            forward: vec!["ip daddr 10.213.0.2 jump npi_x_0".to_owned()],
        }
    }

    #[test]
    fn traffic_stays_inside_each_bridge() {
        let rules = Ruleset::new(&[bridge()], &[fragment(&["10.213.0.3"])]).full();
        assert!(rules.contains("policy drop"));
        assert!(rules.contains("iifname \"br-a\" oifname \"br-a\" accept"));
        assert!(rules.contains("ip daddr != { 10.213.0.1 } drop"));
        assert!(rules.contains("iifname \"br-a\" meta nfproto ipv6 drop"));
        assert!(rules.contains("  set npi_x_0_s0_4 { type ipv4_addr; }"));
        assert!(rules.contains("add element inet datum npi_x_0_s0_4 { 10.213.0.3 }"));
        assert!(rules.contains("  chain npi_x_0 {\n    ip saddr @npi_x_0_s0_4 return\n"));
        let policy = rules.find("ip daddr 10.213.0.2 jump npi_x_0");
        let network = rules.find("oifname \"br-a\" accept");
        assert!(
            policy < network,
            "policies come before the network's own traffic"
        );
    }

    #[test]
    fn a_membership_change_refills_only_the_set() {
        let before = Ruleset::new(&[bridge()], &[fragment(&["10.213.0.3"])]);
        let after = Ruleset::new(&[bridge()], &[fragment(&["10.213.0.4", "10.213.0.5"])]);
        assert_eq!(
            after.set_changes(&before).as_deref(),
            Some(
                "flush set inet datum npi_x_0_s0_4\nadd element inet datum npi_x_0_s0_4 { 10.213.0.4, 10.213.0.5 }\n"
            )
        );
        let emptied = Ruleset::new(&[bridge()], &[fragment(&[])]);
        assert_eq!(
            emptied.set_changes(&before).as_deref(),
            Some("flush set inet datum npi_x_0_s0_4\n")
        );
        assert_eq!(before.set_changes(&before).as_deref(), Some(""));
        // Another rule, or no policy at all: the whole table.
        assert_eq!(Ruleset::new(&[bridge()], &[]).set_changes(&before), None);
    }
}
