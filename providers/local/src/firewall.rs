//! Network isolation with nftables inside a Location's namespace: table `inet datum` lets
//! traffic flow within each bridge (and replies), and drops everything forwarded between
//! bridges, so instances on different networks cannot reach each other. Instances may reach
//! only their own gateway on the namespace itself.
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

/// One bridge and its gateway address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeRule {
    /// The bridge.
    pub bridge: String,
    /// Its gateway address.
    pub gateway: std::net::Ipv4Addr,
}

/// The ruleset for the given bridges.
pub fn ruleset(bridges: &[BridgeRule]) -> String {
    let mut forward = String::new();
    let mut input = String::new();
    for b in bridges {
        let _ = writeln!(
            forward,
            "    iifname \"{0}\" oifname \"{0}\" accept",
            b.bridge
        );
        let _ = writeln!(
            input,
            "    iifname \"{}\" ip daddr != {} drop",
            b.bridge, b.gateway
        );
    }
    format!(
        "table inet datum\ndelete table inet datum\ntable inet datum {{\n  chain forward {{\n    type filter hook forward priority filter; policy drop;\n    ct state established,related accept\n{forward}    counter comment \"between networks\"\n  }}\n  chain input {{\n    type filter hook input priority filter; policy accept;\n{input}  }}\n}}\n"
    )
}

/// Loads the ruleset for `bridges` into the namespace `netns_name`.
pub async fn apply(netns_name: &str, bridges: &[BridgeRule]) -> Result<(), Error> {
    let rules = ruleset(bridges);
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
        let rules = ruleset(&[BridgeRule {
            bridge: "br-a".into(),
            gateway: "10.213.0.1".parse().expect("an address"),
        }]);
        assert!(rules.contains("policy drop"));
        assert!(rules.contains("iifname \"br-a\" oifname \"br-a\" accept"));
        assert!(rules.contains("ip daddr != 10.213.0.1 drop"));
    }
}
