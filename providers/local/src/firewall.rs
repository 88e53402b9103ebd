//! Network isolation with nftables inside a Location's namespace: table `inet datum` lets
//! traffic flow within each bridge (and replies), and drops everything forwarded between
//! bridges, so instances on different networks cannot reach each other. Instances may reach
//! only their own gateway on the namespace itself. Interface network policies
//! ([`crate::policy`]) come first in the forward chain.
//!
//! The whole table is replaced atomically on each change (`nft -f` runs one transaction),
//! executed with `nsenter --net` so nothing is ever loaded into the host's namespace.

use std::fmt::Write as _;
use std::process::Stdio;

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

/// The ruleset for the given bridges, with `policies` (statements from
/// [`crate::policy::statements`]) ahead of the traffic each network allows itself.
pub fn ruleset(bridges: &[BridgeRule], policies: &[String]) -> String {
    let mut forward = String::new();
    let mut input = String::new();
    for statement in policies {
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
        "table inet datum\ndelete table inet datum\ntable inet datum {{\n  chain forward {{\n    type filter hook forward priority filter; policy drop;\n    ct state established,related accept\n    {NEIGHBOUR_DISCOVERY}\n{forward}    counter comment \"between networks\"\n  }}\n  chain input {{\n    type filter hook input priority filter; policy accept;\n    {NEIGHBOUR_DISCOVERY}\n{input}  }}\n}}\n"
    )
}

/// Loads the ruleset for `bridges` into the namespace `netns_name`.
pub async fn apply(
    netns_name: &str,
    bridges: &[BridgeRule],
    policies: &[String],
) -> Result<(), Error> {
    let rules = ruleset(bridges, policies);
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
        stdin.write_all(rules.as_bytes()).await.map_err(spawn)?;
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

    #[test]
    fn traffic_stays_inside_each_bridge() {
        let rules = ruleset(
            &[BridgeRule {
                bridge: "br-a".into(),
                gateways: vec!["10.213.0.1".parse().expect("an address")],
            }],
            &["ip daddr 10.213.0.2 counter drop".to_owned()],
        );
        assert!(rules.contains("policy drop"));
        assert!(rules.contains("iifname \"br-a\" oifname \"br-a\" accept"));
        assert!(rules.contains("ip daddr != { 10.213.0.1 } drop"));
        assert!(rules.contains("iifname \"br-a\" meta nfproto ipv6 drop"));
        let policy = rules.find("ip daddr 10.213.0.2 counter drop");
        let network = rules.find("oifname \"br-a\" accept");
        assert!(
            policy < network,
            "policies come before the network's own traffic"
        );
    }
}
