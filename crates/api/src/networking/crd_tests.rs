//! Checks on the generated CRDs that need no API server: scope, the rules and defaults that
//! carry upstream behaviour, and the printer columns. What the API server makes of them is
//! tested in `tests/validation_networking.rs`.

use serde_json::{Value, json};

use super::*;

fn crd(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(crd).expect("CRDs serialize")
}

fn schema(kind: &str) -> Value {
    crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The rules (CEL text) on a schema node.
fn rules(node: &Value) -> Vec<String> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["rule"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn column_names(kind: &str) -> Vec<String> {
    crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_kind_is_served_once_in_the_networking_group() {
    let crds = crds();
    assert_eq!(crds.len(), 8); // upstream's seven, and IPAddress
    for crd in &crds {
        assert_eq!(crd.spec.group, well_known::GROUP);
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, well_known::VERSION);
        let expected_scope = if crd.spec.names.kind == "Location" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, expected_scope, "{}", crd.spec.names.kind);
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has a status subresource",
            crd.spec.names.kind
        );
    }
}

#[test]
fn location_provider_names_exactly_one_provider_and_keeps_custom_settings() {
    let provider = &schema("Location")["properties"]["spec"]["properties"]["provider"];
    assert_eq!(provider["minProperties"], 1);
    assert_eq!(provider["maxProperties"], 1);
    assert_eq!(provider["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        provider["properties"]["gcp"]["required"],
        json!(["projectId", "region", "zone"])
    );
    assert!(rules(provider).contains(&"self == oldSelf".to_string()));
}

#[test]
fn network_binding_pair_is_immutable_as_upstream() {
    let spec = &schema("NetworkBinding")["properties"]["spec"]["properties"];
    for field in ["network", "location"] {
        let validations = &spec[field]["x-kubernetes-validations"];
        assert_eq!(
            validations,
            &json!([{"rule": "self == oldSelf", "message": format!("spec.{field} is immutable")}])
        );
    }
}

#[test]
fn status_defaults_seed_pending_conditions_as_upstream() {
    let seeded = |kind: &str| schema(kind)["properties"]["status"]["default"].clone();
    let ready = seeded_conditions::seeded_status(&["Ready"]);
    for kind in ["Network", "NetworkBinding", "NetworkContext"] {
        assert_eq!(seeded(kind), ready, "{kind}");
    }
    let three = seeded_conditions::seeded_status(&["Allocated", "Programmed", "Ready"]);
    for kind in ["Subnet", "SubnetClaim"] {
        assert_eq!(seeded(kind), three, "{kind}");
    }
    assert_eq!(
        ready["conditions"][0],
        json!({
            "lastTransitionTime": "1970-01-01T00:00:00Z",
            "message": "Waiting for controller",
            "reason": "Pending",
            "status": "Unknown",
            "type": "Ready",
        })
    );
    // Upstream declares no status default for these.
    assert_eq!(seeded("Location"), Value::Null);
    assert_eq!(seeded("NetworkPolicy"), Value::Null);
}

#[test]
fn network_defaults_match_upstream() {
    let spec = &schema("Network")["properties"]["spec"]["properties"];
    assert_eq!(spec["ipFamilies"]["default"], json!(["IPv6"]));
    assert_eq!(spec["mtu"]["default"], 1460);
    assert_eq!(spec["mtu"]["minimum"], 1300.0);
    assert_eq!(spec["mtu"]["maximum"], 8856.0);
}

#[test]
fn conditions_merge_by_type() {
    for kind in [
        "Location",
        "Network",
        "NetworkBinding",
        "NetworkContext",
        "NetworkPolicy",
        "Subnet",
        "SubnetClaim",
    ] {
        let conditions = &schema(kind)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{kind}"
        );
    }
}

#[test]
fn policy_lists_are_bounded_for_cel_cost() {
    let ingress = &schema("NetworkPolicy")["properties"]["spec"]["properties"]["ingress"];
    assert!(ingress["maxItems"].is_u64());
    let rule = &ingress["items"]["properties"];
    assert!(rule["ports"]["maxItems"].is_u64());
    assert!(rule["from"]["maxItems"].is_u64());
    let port = &rule["ports"]["items"]["properties"]["port"];
    assert_eq!(port["x-kubernetes-int-or-string"], true);
    assert_eq!(port["maxLength"], 15);
    let ip_block = &rule["from"]["items"]["properties"]["ipBlock"]["properties"];
    assert!(ip_block["except"]["maxItems"].is_u64());
    assert_eq!(ip_block["except"]["items"]["maxLength"], 64);
    assert_eq!(ip_block["cidr"]["maxLength"], 64);
}

#[test]
fn printer_columns_cover_upstream_and_more() {
    let has = |kind: &str, wanted: &[&str]| {
        let names = column_names(kind);
        for name in wanted {
            assert!(
                names.iter().any(|n| n == name),
                "{kind} lacks column {name}: {names:?}"
            );
        }
    };
    has(
        "Location",
        &[
            "Class", "City", "Region", "Provider", "Ready", "Reason", "Age",
        ],
    );
    has(
        "Network",
        &[
            "IPAM",
            "IPFamilies",
            "IPv6Prefix",
            "Ready",
            "Reason",
            "Age",
            "MTU",
        ],
    );
    has(
        "NetworkBinding",
        &["Network", "Location", "Ready", "Reason", "Age"],
    );
    has("NetworkContext", &["Ready", "Reason", "IPv6Subnet", "Age"]);
    has(
        "Subnet",
        &["Start Address", "Prefix Length", "Ready", "Reason", "Age"],
    );
    has("SubnetClaim", &["Ready", "Reason", "Age"]);
}
