//! The networking CRDs' validation, checked against a real API server: what
//! `kubectl create`/`kubectl apply` accepts, and what it rejects with a message naming the
//! field.
//!
//! Locations are cluster-scoped and every test shares one API server, so each Location here
//! is named after the test's namespace.

mod common;

use serde_json::Value;

/// A Location named `<namespace>-<suffix>` with the given `spec.provider` (YAML, indented
/// for its place under `provider:`).
fn location(env: &common::Env, suffix: &str, provider: &str) -> String {
    format!(
        "apiVersion: networking.datumapis.com/v1alpha
kind: Location
metadata:
  name: {ns}-{suffix}
spec:
  locationClassName: self-managed
  topology:
    topology.datum.net/city-code: IAD
    topology.datum.net/region: us-east-1
  provider:
{provider}",
        ns = env.namespace
    )
}

const GCP: &str = "    gcp:
      projectId: e2e
      region: us-east1
      zone: us-east1-a
";

/// A NetworkPolicy whose only ingress rule has the given port entry (YAML, indented for its
/// place under `ports:`).
fn policy_with_port(port: &str) -> String {
    format!(
        "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkPolicy
metadata:
  name: web
spec:
  ingress:
  - ports:
{port}"
    )
}

/// A NetworkPolicy whose only ingress rule has the given peer (YAML, indented for its place
/// under `from:`).
fn policy_with_peer(peer: &str) -> String {
    format!(
        "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkPolicy
metadata:
  name: web
spec:
  ingress:
  - from:
{peer}"
    )
}

const BINDING: &str = "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkBinding
metadata:
  name: lb-frontend-us-central-1
spec:
  network: {name: default}
  location: {name: us-central-1}
  consumer: {apiGroup: networking.datumapis.com, kind: LoadBalancer, name: frontend}
";

fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {object}"))
}

// ---------------------------------------------------------------------------------------
// Location

#[tokio::test]
async fn upstream_gcp_locations_apply() {
    let env = common::env().await;
    let sample = std::fs::read_to_string(common::upstream("samples/gcp-locations.yaml"))
        .expect("upstream sample");
    // Same manifests, names made unique to this test.
    let sample = sample.replace("name: gcp-", &format!("name: {}-gcp-", env.namespace));
    let created = env
        .create(&sample)
        .await
        .expect("upstream Locations are accepted");
    assert_eq!(created.len(), 3);
    assert_eq!(created[0]["spec"]["provider"]["gcp"]["zone"], "us-south1-a");
}

#[tokio::test]
async fn location_accepts_each_provider_kind() {
    let env = common::env().await;
    env.create(&location(&env, "gcp", GCP)).await.expect("gcp");
    env.create(&location(&env, "local", "    local: {}\n"))
        .await
        .expect("local");
    env.create(&location(&env, "sim", "    sim:\n      latencyMs: 20\n"))
        .await
        .expect("sim, with free-form settings");
    let created = env
        .create(&location(
            &env,
            "acme",
            "    acme:\n      datacenter: fra-7\n      racks: [1, 2]\n",
        ))
        .await
        .expect("a custom provider with free-form settings");
    // Custom settings are stored, not pruned.
    assert_eq!(
        created[0]["spec"]["provider"]["acme"]["racks"],
        serde_json::json!([1, 2])
    );
}

#[tokio::test]
async fn location_coordinates_are_optional_and_checked() {
    let env = common::env().await;
    let with = |suffix: &str, lat: &str, long: &str| {
        location(&env, suffix, GCP).replace(
            "  provider:\n",
            &format!("  coordinates: {{latitude: '{lat}', longitude: '{long}'}}\n  provider:\n"),
        )
    };
    env.create(&with("dfw", "32.8968", "-97.0380"))
        .await
        .expect("coordinates in range are accepted");
    env.assert_rejected(
        &with("north", "95.0", "0"),
        &[
            "spec.coordinates.latitude",
            "latitude must be between -90 and 90",
        ],
    )
    .await;
    env.assert_rejected(
        &with("nan", "not-a-number", "0"),
        &["spec.coordinates.latitude"],
    )
    .await;
}

#[tokio::test]
async fn location_without_provider_is_rejected() {
    let env = common::env().await;
    let manifest = location(&env, "none", "").replace("  provider:\n", "  provider: {}\n");
    env.assert_rejected(
        &manifest,
        &["spec.provider", "should have at least 1 properties"],
    )
    .await;
}

#[tokio::test]
async fn location_with_two_known_providers_is_rejected() {
    let env = common::env().await;
    let two = format!("{GCP}    local: {{}}\n");
    env.assert_rejected(
        &location(&env, "two", &two),
        &["spec.provider", "Too many: 2", "must have at most 1"],
    )
    .await;
}

#[tokio::test]
async fn location_with_known_and_custom_provider_is_rejected() {
    let env = common::env().await;
    let two = format!("{GCP}    acme: {{}}\n");
    env.assert_rejected(
        &location(&env, "mixed", &two),
        &["spec.provider", "Too many: 2"],
    )
    .await;
}

#[tokio::test]
async fn location_gcp_needs_project_region_and_zone() {
    let env = common::env().await;
    let no_zone = "    gcp:\n      projectId: e2e\n      region: us-east1\n";
    env.assert_rejected(
        &location(&env, "nozone", no_zone),
        &["spec.provider.gcp.zone", "Required value"],
    )
    .await;
}

#[tokio::test]
async fn location_provider_is_immutable() {
    let env = common::env().await;
    env.apply(&location(&env, "moving", GCP))
        .await
        .expect("created");
    env.assert_update_rejected(
        &location(&env, "moving", "    local: {}\n"),
        &["spec.provider", "spec.provider is immutable"],
    )
    .await;
    let other_zone = GCP.replace("us-east1-a", "us-east1-b");
    env.assert_update_rejected(
        &location(&env, "moving", &other_zone),
        &["spec.provider is immutable"],
    )
    .await;
    // Everything else may change.
    let moved_city = location(&env, "moving", GCP).replace("city-code: IAD", "city-code: DCA");
    env.apply(&moved_city)
        .await
        .expect("topology may change while the provider stays");
}

#[tokio::test]
async fn location_custom_provider_cannot_be_swapped_for_a_known_one() {
    let env = common::env().await;
    env.apply(&location(
        &env,
        "custom",
        "    acme:\n      datacenter: fra-7\n",
    ))
    .await
    .expect("created");
    env.assert_update_rejected(
        &location(&env, "custom", GCP),
        &["spec.provider", "spec.provider is immutable"],
    )
    .await;
}

#[tokio::test]
async fn location_city_code_may_not_be_blank() {
    let env = common::env().await;
    let manifest = location(&env, "blank", GCP).replace("city-code: IAD", "city-code: ''");
    env.assert_rejected(
        &manifest,
        &[
            "spec.topology",
            "topology.datum.net/city-code must not be empty",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Network

#[tokio::test]
async fn upstream_network_sample_gets_defaults_and_seeded_status() {
    let env = common::env().await;
    let sample =
        std::fs::read_to_string(common::upstream("samples/networking_v1alpha_network.yaml"))
            .expect("upstream sample");
    let created = env
        .create(&sample)
        .await
        .expect("upstream Network is accepted");
    let network = &created[0];
    assert_eq!(network["spec"]["ipFamilies"], serde_json::json!(["IPv6"]));
    assert_eq!(network["spec"]["mtu"], 1460);
    let ready = condition(network, "Ready");
    assert_eq!(ready["status"], "Unknown");
    assert_eq!(ready["reason"], "Pending");
    assert_eq!(ready["message"], "Waiting for controller");
    assert_eq!(ready["lastTransitionTime"], "1970-01-01T00:00:00Z");
}

fn network(ipam: &str) -> String {
    format!(
        "apiVersion: networking.datumapis.com/v1alpha
kind: Network
metadata:
  name: default
spec:
  ipam:
{ipam}"
    )
}

#[tokio::test]
async fn network_accepts_explicit_ranges_and_families() {
    let env = common::env().await;
    let manifest =
        network("    mode: Auto\n    ipv4Range: 10.128.0.0/9\n    ipv6Range: fd20:1000::/48\n")
            + "  ipFamilies: [IPv4, IPv6]\n  mtu: 8856\n";
    let created = env.create(&manifest).await.expect("a dual-stack network");
    assert_eq!(
        created[0]["spec"]["ipFamilies"],
        serde_json::json!(["IPv4", "IPv6"])
    );
}

#[tokio::test]
async fn network_rejects_malformed_ipv4_range() {
    let env = common::env().await;
    env.assert_rejected(
        &network("    mode: Auto\n    ipv4Range: 10.128.0.0/33\n"),
        &[
            "spec.ipam.ipv4Range",
            "ipv4Range must be an IPv4 network in CIDR form",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_range_of_the_wrong_family() {
    let env = common::env().await;
    env.assert_rejected(
        &network("    mode: Auto\n    ipv6Range: 10.0.0.0/8\n"),
        &["spec.ipam.ipv6Range", "ipv6Range must be an IPv6 network"],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_range_with_host_bits() {
    let env = common::env().await;
    env.assert_rejected(
        &network("    mode: Auto\n    ipv4Range: 10.128.0.1/9\n"),
        &["spec.ipam.ipv4Range", "no host bits set"],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_unknown_mode() {
    let env = common::env().await;
    env.assert_rejected(
        &network("    mode: Manual\n"),
        &["spec.ipam.mode", "Unsupported value: \"Manual\""],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_mtu_out_of_range() {
    let env = common::env().await;
    env.assert_rejected(
        &(network("    mode: Auto\n") + "  mtu: 9000\n"),
        &["spec.mtu", "less than or equal to 8856"],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_wrong_type() {
    let env = common::env().await;
    env.assert_rejected(
        &(network("    mode: Auto\n") + "  mtu: big\n"),
        &["spec.mtu", "must be of type integer"],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_unknown_field() {
    let env = common::env().await;
    env.assert_rejected(
        &network("    mode: Auto\n    bogus: 1\n"),
        &["unknown field", "spec.ipam.bogus"],
    )
    .await;
}

#[tokio::test]
async fn network_rejects_repeated_family() {
    let env = common::env().await;
    env.assert_rejected(
        &(network("    mode: Auto\n") + "  ipFamilies: [IPv6, IPv6]\n"),
        &["spec.ipFamilies", "must not list the same family twice"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// NetworkBinding

#[tokio::test]
async fn network_binding_from_the_spec_is_accepted_and_seeded() {
    let env = common::env().await;
    let created = env.create(BINDING).await.expect("accepted");
    assert_eq!(condition(&created[0], "Ready")["reason"], "Pending");
}

#[tokio::test]
async fn network_binding_network_is_immutable() {
    let env = common::env().await;
    env.apply(BINDING).await.expect("created");
    env.assert_update_rejected(
        &BINDING.replace("network: {name: default}", "network: {name: other}"),
        &["spec.network", "spec.network is immutable"],
    )
    .await;
}

#[tokio::test]
async fn network_binding_location_is_immutable() {
    let env = common::env().await;
    env.apply(BINDING).await.expect("created");
    env.assert_update_rejected(
        &BINDING.replace(
            "location: {name: us-central-1}",
            "location: {name: us-east-1}",
        ),
        &["spec.location", "spec.location is immutable"],
    )
    .await;
    // The consumer is informational and may change.
    env.apply(&BINDING.replace("name: frontend}", "name: backend}"))
        .await
        .expect("consumer may change");
}

#[tokio::test]
async fn network_binding_names_must_be_object_names() {
    let env = common::env().await;
    env.assert_rejected(
        &BINDING.replace("network: {name: default}", "network: {name: Bad_Name}"),
        &[
            "spec.network.name",
            "must be a lowercase RFC 1123 subdomain",
        ],
    )
    .await;
    env.assert_rejected(
        &BINDING.replace(
            "location: {name: us-central-1}",
            "location: {name: us-central-1, namespace: Not/A/Namespace}",
        ),
        &[
            "spec.location.namespace",
            "must be a lowercase RFC 1123 label",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_binding_accepts_namespaced_location_reference() {
    // Compute's upstream LocationReference carried a namespace; it is accepted and ignored.
    let env = common::env().await;
    env.create(&BINDING.replace(
        "location: {name: us-central-1}",
        "location: {name: us-central-1, namespace: default}",
    ))
    .await
    .expect("accepted");
}

// ---------------------------------------------------------------------------------------
// NetworkContext, Subnet, SubnetClaim

const CONTEXT: &str = "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkContext
metadata:
  name: default-us-central-1
spec:
  network: {name: default}
  location: {name: us-central-1}
  ipFamilies: [IPv6]
  mtu: 1460
  networkGeneration: 1
";

#[tokio::test]
async fn network_context_accepts_projected_values_and_rejects_empty_families() {
    let env = common::env().await;
    env.create(CONTEXT).await.expect("accepted");
    env.assert_rejected(
        &CONTEXT
            .replace("name: default-us-central-1", "name: empty")
            .replace("ipFamilies: [IPv6]", "ipFamilies: []"),
        &["spec.ipFamilies", "should have at least 1 items"],
    )
    .await;
}

#[tokio::test]
async fn network_context_pair_is_immutable() {
    let env = common::env().await;
    env.apply(CONTEXT).await.expect("created");
    env.assert_update_rejected(
        &CONTEXT.replace("network: {name: default}", "network: {name: other}"),
        &["spec.network is immutable"],
    )
    .await;
}

fn subnet(family: &str, start: &str, prefix: u8) -> String {
    format!(
        "apiVersion: networking.datumapis.com/v1alpha
kind: Subnet
metadata:
  name: default-us-central-1-ipv6
spec:
  subnetClass: private
  networkContext: {{name: default-us-central-1}}
  location: {{name: us-central-1}}
  ipFamily: {family}
  startAddress: '{start}'
  prefixLength: {prefix}
"
    )
}

#[tokio::test]
async fn subnet_accepts_allocated_and_unallocated_ranges() {
    let env = common::env().await;
    let created = env
        .create(&subnet("IPv6", "fd20:1000:1::", 64))
        .await
        .expect("an allocated subnet");
    for type_ in ["Allocated", "Programmed", "Ready"] {
        assert_eq!(condition(&created[0], type_)["reason"], "Pending");
    }
    env.create(&subnet("IPv4", "", 0).replace("-ipv6", "-claimed"))
        .await
        .expect("an unallocated subnet");
}

#[tokio::test]
async fn subnet_rejects_inconsistent_ranges() {
    let env = common::env().await;
    env.assert_rejected(
        &subnet("IPv4", "10.128.0.0", 64),
        &[
            "spec.prefixLength",
            "prefixLength must be at most 32 for an IPv4 subnet",
        ],
    )
    .await;
    env.assert_rejected(
        &subnet("IPv4", "fd20::", 64),
        &[
            "spec.startAddress",
            "startAddress must be an address of the family in ipFamily",
        ],
    )
    .await;
    env.assert_rejected(
        &subnet("IPv6", "not-an-ip", 64),
        &[
            "spec.startAddress",
            "startAddress must be empty (not yet allocated) or an IP address",
        ],
    )
    .await;
}

#[tokio::test]
async fn subnet_claim_requires_a_known_family() {
    let env = common::env().await;
    let claim = "apiVersion: networking.datumapis.com/v1alpha
kind: SubnetClaim
metadata:
  name: web-0
spec:
  subnetClass: private
  networkContext: {name: default-us-central-1}
  location: {name: us-central-1}
  ipFamily: IPv6
";
    let created = env.create(claim).await.expect("accepted");
    assert_eq!(condition(&created[0], "Programmed")["status"], "Unknown");
    env.assert_rejected(
        &claim
            .replace("web-0", "web-1")
            .replace("ipFamily: IPv6", "ipFamily: IPv5"),
        &["spec.ipFamily", "Unsupported value: \"IPv5\""],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// NetworkPolicy

#[tokio::test]
async fn network_policy_accepts_a_full_policy_and_the_upstream_placeholder() {
    let env = common::env().await;
    env.create(
        "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkPolicy
metadata:
  name: web
spec:
  network: {name: default}
  instanceSelector:
    matchLabels: {app: web}
  policyTypes: [Ingress, Egress]
  ingress:
  - ports:
    - {protocol: TCP, port: 443}
    - {protocol: UDP, port: 30000, endPort: 32767}
    - {port: http}
    from:
    - ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}
    - instanceSelector:
        matchExpressions:
        - {key: tier, operator: In, values: [frontend]}
  egress:
  - to:
    - ipBlock: {cidr: '2001:db8::/32'}
    ports:
    - {protocol: SCTP, port: 5000}
",
    )
    .await
    .expect("a full policy");
    env.create(
        "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkPolicy
metadata:
  name: placeholder
spec: {}
",
    )
    .await
    .expect("upstream's empty placeholder");
}

#[tokio::test]
async fn network_policy_rejects_malformed_cidr() {
    let env = common::env().await;
    env.assert_rejected(
        &policy_with_peer("    - ipBlock: {cidr: 192.0.2.0/40}\n"),
        &[
            "spec.ingress[0].from[0].ipBlock.cidr",
            "cidr must be a CIDR",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_policy_rejects_except_outside_cidr() {
    let env = common::env().await;
    env.assert_rejected(
        &policy_with_peer("    - ipBlock: {cidr: 192.0.2.0/24, except: [198.51.100.0/24]}\n"),
        &[
            "spec.ingress[0].from[0].ipBlock.except",
            "every except entry must lie within cidr",
        ],
    )
    .await;
    env.assert_rejected(
        &policy_with_peer("    - ipBlock: {cidr: 192.0.2.0/24, except: [nonsense]}\n"),
        &[
            "spec.ingress[0].from[0].ipBlock.except",
            "every except entry must be a CIDR",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_policy_rejects_port_out_of_range() {
    let env = common::env().await;
    env.assert_rejected(
        &policy_with_port("    - {protocol: TCP, port: 70000}\n"),
        &[
            "spec.ingress[0].ports[0].port",
            "port must be a number from 1 to 65535",
        ],
    )
    .await;
    env.assert_rejected(
        &policy_with_port("    - {protocol: TCP, port: 0}\n"),
        &["spec.ingress[0].ports[0].port", "from 1 to 65535"],
    )
    .await;
    env.assert_rejected(
        &policy_with_port("    - {protocol: TCP, port: Not_A_Name}\n"),
        &["spec.ingress[0].ports[0].port", "port name"],
    )
    .await;
}

#[tokio::test]
async fn network_policy_rejects_end_port_below_port() {
    let env = common::env().await;
    env.assert_rejected(
        &policy_with_port("    - {port: 8080, endPort: 8000}\n"),
        &[
            "spec.ingress[0].ports[0].endPort",
            "endPort must be greater than or equal to port",
        ],
    )
    .await;
    env.assert_rejected(
        &policy_with_port("    - {port: http, endPort: 8000}\n"),
        &[
            "spec.ingress[0].ports[0].endPort",
            "endPort requires a numeric port",
        ],
    )
    .await;
    env.assert_rejected(
        &policy_with_port("    - {port: 80, endPort: 70000}\n"),
        &[
            "spec.ingress[0].ports[0].endPort",
            "less than or equal to 65535",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_policy_rejects_unknown_protocol() {
    let env = common::env().await;
    env.assert_rejected(
        &policy_with_port("    - {protocol: ICMP, port: 1}\n"),
        &[
            "spec.ingress[0].ports[0].protocol",
            "Unsupported value: \"ICMP\"",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_policy_peer_names_exactly_one_source() {
    let env = common::env().await;
    env.assert_rejected(
        &policy_with_peer(
            "    - ipBlock: {cidr: 192.0.2.0/24}\n      instanceSelector: {matchLabels: {app: web}}\n",
        ),
        &["spec.ingress[0].from[0]", "exactly one of ipBlock or instanceSelector"],
    )
    .await;
    env.assert_rejected(
        &policy_with_peer("    - {}\n"),
        &[
            "spec.ingress[0].from[0]",
            "exactly one of ipBlock or instanceSelector",
        ],
    )
    .await;
}

#[tokio::test]
async fn network_policy_rules_must_match_policy_types() {
    let env = common::env().await;
    env.assert_rejected(
        "apiVersion: networking.datumapis.com/v1alpha
kind: NetworkPolicy
metadata:
  name: web
spec:
  policyTypes: [Ingress]
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0}
",
        &[
            "spec.egress",
            "egress rules have no effect unless policyTypes includes Egress",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Printer columns

#[tokio::test]
async fn kubectl_get_shows_useful_columns() {
    let env = common::env().await;
    let name = format!("{}-gcp", env.namespace);
    env.create(&location(&env, "gcp", GCP))
        .await
        .expect("a Location");
    env.create(&network("    mode: Auto\n"))
        .await
        .expect("a Network");

    let locations = env.kubectl(&["get", "locations", &name]);
    let table = String::from_utf8_lossy(&locations.stdout);
    assert!(
        locations.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&locations.stderr)
    );
    for column in ["CLASS", "CITY", "REGION", "PROVIDER", "READY", "AGE"] {
        assert!(table.contains(column), "no {column} column:\n{table}");
    }
    for cell in ["self-managed", "IAD", "us-east-1", "\"gcp\""] {
        assert!(table.contains(cell), "no {cell} cell:\n{table}");
    }
    println!("{table}");

    let networks = env.kubectl(&["get", "networks", "default"]);
    let table = String::from_utf8_lossy(&networks.stdout);
    assert!(
        networks.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&networks.stderr)
    );
    for column in ["IPAM", "IPFAMILIES", "IPV6PREFIX", "READY", "REASON", "AGE"] {
        assert!(table.contains(column), "no {column} column:\n{table}");
    }
    for cell in ["Auto", "IPv6", "Unknown", "Pending"] {
        assert!(table.contains(cell), "no {cell} cell:\n{table}");
    }
    println!("{table}");
}
