//! Our CRDs accept everything upstream's accept: for every kind in
//! `../shared/upstream/crds/`, every field path in the upstream schema exists in ours with
//! the same type, the same default and the same list semantics. Ours may add fields and
//! stricter validation.

use std::collections::BTreeMap;

use serde_json::Value;

mod common;

/// Upstream CRD files with their schemas, keyed by `group/kind`.
fn upstream_crds() -> BTreeMap<String, Value> {
    let dir = common::upstream("crds");
    let mut crds = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable directory").path();
        let text = std::fs::read_to_string(&path).expect("readable CRD");
        let crd: Value = serde_yaml::from_str(&text).expect("CRD YAML");
        crds.insert(key(&crd), crd);
    }
    assert!(
        crds.len() >= 10,
        "expected the upstream CRDs under {}",
        dir.display()
    );
    crds
}

fn key(crd: &Value) -> String {
    format!(
        "{}/{}",
        crd["spec"]["group"].as_str().unwrap_or_default(),
        crd["spec"]["names"]["kind"].as_str().unwrap_or_default()
    )
}

fn schema_of(crd: &Value, version: &str) -> Option<Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
}

/// The JSON type a schema node accepts, folding int-or-string into one name.
fn type_of(node: &Value) -> String {
    if node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int-or-string".into();
    }
    match node.get("type").and_then(Value::as_str) {
        Some(t) => t.to_owned(),
        // An untyped node with preserve-unknown-fields accepts anything.
        None if preserves_unknown(node) => "any".into(),
        None => "untyped".into(),
    }
}

fn preserves_unknown(node: &Value) -> bool {
    node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

/// Walks `upstream` and records every difference from `ours` at or below `path`.
fn compare(path: &str, upstream: &Value, ours: &Value, problems: &mut Vec<String>) {
    let (up_type, our_type) = (type_of(upstream), type_of(ours));
    let compatible = up_type == our_type
        || our_type == "any"
        // `number` accepts every integer upstream accepts.
        || (up_type == "integer" && our_type == "number");
    if !compatible {
        problems.push(format!("{path}: upstream type {up_type}, ours {our_type}"));
        return;
    }
    if our_type == "any" {
        return;
    }
    if let Some(default) = upstream.get("default")
        && ours.get("default") != Some(default)
    {
        problems.push(format!(
            "{path}: upstream default {default}, ours {:?}",
            ours.get("default")
        ));
    }
    for ext in ["x-kubernetes-list-type", "x-kubernetes-list-map-keys"] {
        if let Some(semantics) = upstream.get(ext)
            && ours.get(ext) != Some(semantics)
        {
            problems.push(format!(
                "{path}: upstream {ext} {semantics}, ours {:?}",
                ours.get(ext)
            ));
        }
    }
    if let Some(properties) = upstream.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = format!("{path}.{name}");
            match ours.get("properties").and_then(|p| p.get(name)) {
                Some(our_child) => compare(&child_path, child, our_child, problems),
                None if preserves_unknown(ours) => {}
                None => problems.push(format!("{child_path}: missing from our schema")),
            }
        }
    }
    if let Some(items) = upstream.get("items") {
        match ours.get("items") {
            Some(our_items) => compare(&format!("{path}[]"), items, our_items, problems),
            None => problems.push(format!("{path}[]: our array has no item schema")),
        }
    }
    if let Some(values) = upstream
        .get("additionalProperties")
        .filter(|v| v.is_object())
    {
        match ours.get("additionalProperties").filter(|v| v.is_object()) {
            Some(our_values) => compare(&format!("{path}{{}}"), values, our_values, problems),
            None if preserves_unknown(ours) => {}
            None => problems.push(format!("{path}{{}}: upstream is a map, ours is not")),
        }
    }
}

#[test]
fn every_upstream_field_exists_with_the_same_type_default_and_list_semantics() {
    let ours: BTreeMap<String, Value> = datum_api::crds::all()
        .iter()
        .map(|crd| {
            let value = serde_json::to_value(crd).expect("serializable CRD");
            (key(&value), value)
        })
        .collect();

    let mut problems = Vec::new();
    for (kind, upstream) in upstream_crds() {
        let Some(our_crd) = ours.get(&kind) else {
            problems.push(format!("{kind}: we have no CRD for this kind"));
            continue;
        };
        for version in upstream["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = version["name"].as_str().unwrap_or_default();
            let Some(our_schema) = schema_of(our_crd, name) else {
                problems.push(format!("{kind}: we do not serve version {name}"));
                continue;
            };
            // apiVersion, kind and metadata are the API server's own; kube's derive omits them.
            let mut upstream_schema = version["schema"]["openAPIV3Schema"].clone();
            if let Some(properties) = upstream_schema
                .get_mut("properties")
                .and_then(Value::as_object_mut)
            {
                for implicit in ["apiVersion", "kind", "metadata"] {
                    properties.remove(implicit);
                }
            }
            compare(
                &format!("{kind} {name}"),
                &upstream_schema,
                &our_schema,
                &mut problems,
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} incompatibilities with upstream:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn printer_columns_include_upstreams() {
    let ours: BTreeMap<String, Value> = datum_api::crds::all()
        .iter()
        .map(|crd| {
            let value = serde_json::to_value(crd).expect("serializable CRD");
            (key(&value), value)
        })
        .collect();
    let mut problems = Vec::new();
    for (kind, upstream) in upstream_crds() {
        let Some(our_crd) = ours.get(&kind) else {
            continue;
        };
        for version in upstream["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let our_version = our_crd["spec"]["versions"]
                .as_array()
                .and_then(|vs| vs.iter().find(|v| v["name"] == version["name"]))
                .cloned()
                .unwrap_or_default();
            for column in version["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let found = our_version["additionalPrinterColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["name"] == column["name"] && c["jsonPath"] == column["jsonPath"]);
                if !found {
                    problems.push(format!(
                        "{kind}: printer column {} ({}) missing",
                        column["name"], column["jsonPath"]
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The walker itself must notice differences, or the test above proves nothing.
#[test]
fn the_walker_reports_missing_fields_and_type_changes() {
    let upstream = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "integer"}}},
                  "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["c"]},
            "d": {"type": "string", "default": "x"}
        }
    });
    let ours = serde_json::json!({
        "type": "object",
        "properties": {
            "b": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "string"}}}},
            "d": {"type": "string"}
        }
    });
    let mut problems = Vec::new();
    compare("t", &upstream, &ours, &mut problems);
    let text = problems.join("\n");
    assert!(text.contains("t.a: missing"), "{text}");
    assert!(
        text.contains("t.b[].c: upstream type integer, ours string"),
        "{text}"
    );
    assert!(
        text.contains("t.b: upstream x-kubernetes-list-type"),
        "{text}"
    );
    assert!(text.contains("t.d: upstream default"), "{text}");
    let mut none = Vec::new();
    compare("t", &upstream, &upstream, &mut none);
    assert!(none.is_empty(), "{none:?}");
}
