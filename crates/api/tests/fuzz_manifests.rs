//! Bad input gets a clear error: thousands of mutated manifests — fields deleted, retyped,
//! emptied, out of range — go to the real API server (dry run). Each is either accepted or
//! rejected with a validation error that names the field; none gets a server error.
//!
//! CI runs 1,000 cases; `DATUM_FUZZ_CASES=10000 cargo test -p datum-api --test
//! fuzz_manifests -- --nocapture` runs the full-size campaign and prints the tally.

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// The seeds: every Datum object in the upstream samples, plus an Instance and a
/// ProviderConfig of each kind, so every CRD is exercised.
fn seeds(namespace: &str) -> Vec<Value> {
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(common::upstream("samples")).expect("samples") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("sample");
        for obj in common::documents(&text) {
            let value = serde_json::to_value(&obj).expect("serializable");
            let api_version = value["apiVersion"].as_str().unwrap_or_default();
            if api_version.contains("datum") {
                seeds.push(value);
            }
        }
    }
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
enum PathStep {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete,
    Replace(Value),
    /// Add an unknown sibling field.
    AddField(String, Value),
    /// Duplicate an array element (list-map keys must then collide).
    Duplicate,
}

fn odd_value() -> impl Strategy<Value = Value> {
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

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Delete),
        6 => odd_value().prop_map(Mutation::Replace),
        1 => ("[a-z]{3,8}", odd_value()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        1 => Just(Mutation::Duplicate),
    ]
}

/// Applies `mutation` at the path chosen by `pick` (an index into the spec's paths).
fn mutate(seed: &Value, pick: usize, mutation: &Mutation) -> Value {
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
fn names_a_field(message: &str) -> bool {
    ["spec.", "spec:", "spec ", ".spec", "metadata.", "spec["]
        .iter()
        .any(|token| message.contains(token))
}

#[test]
fn mutated_manifests_are_accepted_or_rejected_with_a_field_named_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let env = runtime.block_on(common::env_named("fuzz"));
    let seeds = seeds(&env.namespace);
    assert!(seeds.len() >= 8, "every kind has a seed");

    let cases = std::env::var("DATUM_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::sync::Mutex::new((0u32, 0u32));
    let strategy = (
        0..seeds.len(),
        prop::collection::vec((any::<usize>(), mutation()), 1..4),
    );
    let result = runner.run(&strategy, |(seed, mutations)| {
        let mut obj = seeds[seed].clone();
        for (pick, mutation) in &mutations {
            obj = mutate(&obj, *pick, mutation);
        }
        match runtime.block_on(env.create_dry_run(&obj)) {
            Ok(_) => tally.lock().expect("not poisoned").0 += 1,
            Err(kube::Error::Api(status)) => {
                tally.lock().expect("not poisoned").1 += 1;
                prop_assert!(
                    status.code == 422 || status.code == 400,
                    "{} {} for {obj}",
                    status.code,
                    status.message
                );
                prop_assert!(
                    names_a_field(&status.message),
                    "no field named in {:?} for {obj}",
                    status.message
                );
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other} for {obj}"))),
        }
        Ok(())
    });
    let (accepted, rejected) = *tally.lock().expect("not poisoned");
    println!(
        "fuzz: {cases} manifests, {accepted} accepted, {rejected} rejected with a field-named error"
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(
        rejected > cases / 10,
        "the mutations produce invalid manifests ({rejected} rejected)"
    );
    assert!(
        accepted > 0,
        "some mutations stay valid ({accepted} accepted)"
    );
}
