//! The manifest fuzzer shared by the API-server campaign (`crates/api/tests/fuzz_manifests.rs`,
//! dry run) and the reconcile campaign (`providers/sim/tests/fuzz_reconcile.rs`, created for
//! real and reconciled by the controllers and the sim provider): seeds of every Datum kind,
//! and mutations — fields deleted, retyped, emptied, out of range, unknown fields added,
//! list entries duplicated — that land under `spec`.
#![allow(dead_code)] // each campaign uses a different subset

use proptest::prelude::*;
use serde_json::{Value, json};

/// The seeds: every Datum object in the upstream samples (`samples`, each file's documents
/// as JSON), plus an Instance and a ProviderConfig of each kind, so every CRD is exercised.
pub fn seeds(namespace: &str, samples: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut seeds: Vec<Value> = samples
        .into_iter()
        .filter(|value| {
            value["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .contains("datum")
        })
        .collect();
    seeds.push(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Instance",
        "metadata": {"name": "fuzz-instance"},
        "spec": {
            "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                        "sandbox": {"containers": [{"name": "web", "image": "nginx",
                                                    "ports": [{"name": "http", "port": 80}]}]}},
            "networkInterfaces": [{"network": {"name": "default"}}]
        }
    }));
    seeds.push(json!({
        "apiVersion": "gcp.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
        "metadata": {"name": "fuzz-gcp"},
        "spec": {"projectId": "p", "credentials": {"secretRef": {"name": "gcp", "namespace": "datum-system", "key": "key.json"}}}
    }));
    seeds.push(json!({
        "apiVersion": "local.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
        "metadata": {"name": "fuzz-local"}, "spec": {}
    }));
    // Shared, cluster-scoped names get this test's namespace as a prefix.
    for seed in &mut seeds {
        if let Some(name) = seed["metadata"]["name"].as_str() {
            seed["metadata"]["name"] = format!("{namespace}-{name}").into();
        }
        if let Some(meta) = seed["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
    }
    seeds
}

/// Every path below `spec` (objects and arrays), so mutations land where users write.
fn paths(value: &Value, prefix: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(PathStep::Key(key.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(PathStep::Index(index));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug)]
pub enum Mutation {
    Delete,
    Replace(Value),
    /// Add an unknown sibling field.
    AddField(String, Value),
    /// Duplicate an array element (list-map keys must then collide).
    Duplicate,
}

pub fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(null)),
        Just(json!("")),
        Just(json!("x")),
        Just(json!("UPPER_case name")),
        Just(json!("10.0.0.0/33")),
        Just(json!("999.1.1.1")),
        Just(json!("a".repeat(300))),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(70000)),
        Just(json!(2_147_483_648_i64)),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{}])),
        Just(json!({"unexpected": 1})),
        "[a-z][a-z0-9-]{0,20}".prop_map(Value::from),
        (-5i64..70_000).prop_map(Value::from),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Delete),
        6 => odd_value().prop_map(Mutation::Replace),
        1 => ("[a-z]{3,8}", odd_value()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        1 => Just(Mutation::Duplicate),
    ]
}

/// Applies `mutation` at the path chosen by `pick` (an index into the spec's paths).
pub fn mutate(seed: &Value, pick: usize, mutation: &Mutation) -> Value {
    let mut obj = seed.clone();
    let mut all = Vec::new();
    if let Some(spec) = obj.get("spec") {
        paths(spec, &mut vec![PathStep::Key("spec".into())], &mut all);
    }
    if all.is_empty() {
        return obj;
    }
    let path = &all[pick % all.len()];
    let (last, parent_path) = path.split_last().expect("non-empty path");
    let mut parent = &mut obj;
    for step in parent_path {
        parent = match step {
            PathStep::Key(k) => &mut parent[k.as_str()],
            PathStep::Index(i) => &mut parent[*i],
        };
    }
    match (mutation, last, parent) {
        (Mutation::Delete, PathStep::Key(k), Value::Object(map)) => {
            map.remove(k);
        }
        (Mutation::Delete, PathStep::Index(i), Value::Array(items)) => {
            items.remove(*i);
        }
        (Mutation::Replace(v), PathStep::Key(k), Value::Object(map)) => {
            map.insert(k.clone(), v.clone());
        }
        (Mutation::Replace(v), PathStep::Index(i), Value::Array(items)) => items[*i] = v.clone(),
        (Mutation::AddField(name, v), _, Value::Object(map)) => {
            map.insert(name.clone(), v.clone());
        }
        (Mutation::Duplicate, PathStep::Index(i), Value::Array(items)) => {
            let copy = items[*i].clone();
            items.push(copy);
        }
        _ => {}
    }
    obj
}

/// Whether a rejection message names the field it is about.
pub fn names_a_field(message: &str) -> bool {
    ["spec.", "spec:", "spec ", ".spec", "metadata.", "spec["]
        .iter()
        .any(|token| message.contains(token))
}

/// A seed index and one to three mutations: one fuzz case.
pub fn case(seeds: usize) -> impl Strategy<Value = (usize, Vec<(usize, Mutation)>)> {
    (
        0..seeds,
        prop::collection::vec((any::<usize>(), mutation()), 1..4),
    )
}

/// Applies a case's mutations to its seed.
pub fn apply(seeds: &[Value], (seed, mutations): &(usize, Vec<(usize, Mutation)>)) -> Value {
    let mut obj = seeds[*seed].clone();
    for (pick, mutation) in mutations {
        obj = mutate(&obj, *pick, mutation);
    }
    obj
}

/// The number of cases: `DATUM_FUZZ_CASES`, or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("DATUM_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
