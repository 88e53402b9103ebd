//! Interface network policy → ingress firewall rules `datum-<uid>-net-<i>-<j>` in the
//! interface's VPC, targeting the instance by its network tag `datum-<uid>`: one `allowed`
//! entry per port (protocol lowercased, default `tcp`; `port` or `port-endPort`), source
//! ranges from `ipBlock.cidr`. Named ports cannot be expressed and are refused loudly.

use datum_api::compute::InstanceNetworkInterface;
use datum_provider::PlatformError;
use serde_json::{Value, json};

/// The firewall bodies for interface `index` attached to `network` (a selfLink).
pub fn rules(
    external_name: &str,
    index: usize,
    interface: &InstanceNetworkInterface,
    network: &str,
) -> Result<Vec<Value>, PlatformError> {
    let Some(policy) = &interface.network_policy else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (j, rule) in policy.ingress.iter().flatten().enumerate() {
        let mut allowed = Vec::new();
        for port in rule.ports.iter().flatten() {
            let protocol = port
                .protocol
                .as_deref()
                .unwrap_or("TCP")
                .to_ascii_lowercase();
            let ports = match (&port.port, port.end_port) {
                (None, _) => None,
                (Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p)), None) => {
                    Some(p.to_string())
                }
                (
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p)),
                    Some(end),
                ) => Some(format!("{p}-{end}")),
                (
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)),
                    _,
                ) => {
                    return Err(PlatformError {
                        reason: "InvalidSpec".to_owned(),
                        message: format!(
                            "networkInterfaces[{index}].networkPolicy: named port {name:?} cannot become a firewall rule; use a number"
                        ),
                    });
                }
            };
            allowed.push(match ports {
                Some(p) => json!({ "IPProtocol": protocol, "ports": [p] }),
                None => json!({ "IPProtocol": protocol }),
            });
        }
        if allowed.is_empty() {
            allowed.push(json!({ "IPProtocol": "all" }));
        }
        let sources: Vec<String> = rule
            .from
            .iter()
            .flatten()
            .filter_map(|peer| peer.ip_block.as_ref().map(|b| b.cidr.clone()))
            .collect();
        let sources = if sources.is_empty() {
            vec!["0.0.0.0/0".to_owned()]
        } else {
            sources
        };
        out.push(json!({
            "name": format!("{external_name}-net-{index}-{j}"),
            "description": format!("ingress rule {j} of interface {index} of {external_name}"),
            "network": network,
            "direction": "INGRESS",
            "priority": 65534,
            "targetTags": [external_name],
            "allowed": allowed,
            "sourceRanges": sources,
        }));
    }
    Ok(out)
}
