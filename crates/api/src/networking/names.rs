//! Deterministic names of objects the networking controllers create.
//!
//! Several objects are found by name alone — a NetworkContext by its network and location, a
//! Subnet by its context, an IPAM claim by its owner's UID — so these functions must produce
//! exactly the names Datum's network-services-operator does. A deterministic name also makes
//! the API server's atomic create the lock when two workers race to create the same object.
//!
//! ```
//! use datum_api::networking::names;
//!
//! assert_eq!(names::network_context("net", "sjc-1"), "net-sjc-1");
//! assert_eq!(names::context_ipv6_subnet("net-sjc-1"), "net-sjc-1-ipv6");
//! ```

/// The NetworkContext of a network in a location: `<network>-<location>`.
pub fn network_context(network: &str, location: &str) -> String {
    format!("{network}-{location}")
}

/// The IPv6 Subnet a NetworkContext publishes: `<context>-ipv6`.
pub fn context_ipv6_subnet(network_context: &str) -> String {
    format!("{network_context}-ipv6")
}

/// The IPv4 Subnet a NetworkContext publishes: `<context>-ipv4` (a Datum extension,
/// named like upstream's IPv6 one).
pub fn context_ipv4_subnet(network_context: &str) -> String {
    format!("{network_context}-ipv4")
}

/// The IPAM claim holding a Network's address range: `network-<uid>`.
pub fn network_prefix_claim(network_uid: &str) -> String {
    format!("network-{network_uid}")
}

/// The IPAM claim holding a NetworkContext's subnet range: `networkcontext-<uid>`.
pub fn network_context_subnet_claim(network_context_uid: &str) -> String {
    format!("networkcontext-{network_context_uid}")
}

/// The propagation policy that carries a Location's objects to its cells: `location-<name>`.
pub fn location_propagation_policy(location: &str) -> String {
    format!("location-{location}")
}

/// Encodes a project name as the value of the
/// [`UPSTREAM_CLUSTER_NAME`](super::well_known::labels::UPSTREAM_CLUSTER_NAME) label:
/// `cluster-` + the project, with every `/` written as `_` (label values may not hold `/`).
///
/// ```
/// use datum_api::networking::names::encode_upstream_cluster_name;
/// assert_eq!(encode_upstream_cluster_name("org/proj"), "cluster-org_proj");
/// ```
pub fn encode_upstream_cluster_name(project: &str) -> String {
    format!("cluster-{}", project.replace('/', "_"))
}

/// Decodes the value of the
/// [`UPSTREAM_CLUSTER_NAME`](super::well_known::labels::UPSTREAM_CLUSTER_NAME) label back
/// into a project name. Also accepts the legacy form `cluster-_proj`.
///
/// ```
/// use datum_api::networking::names::decode_upstream_cluster_name;
/// assert_eq!(decode_upstream_cluster_name("cluster-project-alpha"), "project-alpha");
/// assert_eq!(decode_upstream_cluster_name("cluster-_proj"), "proj");
/// ```
pub fn decode_upstream_cluster_name(value: &str) -> String {
    let slashed = value.replace('_', "/");
    let project = slashed.strip_prefix("cluster-").unwrap_or(&slashed);
    project.strip_prefix('/').unwrap_or(project).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_upstream() {
        assert_eq!(
            network_context("default", "us-central-1"),
            "default-us-central-1"
        );
        assert_eq!(
            context_ipv6_subnet("default-us-central-1"),
            "default-us-central-1-ipv6"
        );
        assert_eq!(network_prefix_claim("abc"), "network-abc");
        assert_eq!(network_context_subnet_claim("abc"), "networkcontext-abc");
        assert_eq!(location_propagation_policy("iad"), "location-iad");
    }

    #[test]
    fn upstream_cluster_name_round_trips() {
        for project in ["proj", "org/proj", "a-b"] {
            assert_eq!(
                decode_upstream_cluster_name(&encode_upstream_cluster_name(project)),
                project
            );
        }
    }
}
