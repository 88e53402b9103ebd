//! Checks of the generated CRDs against upstream's, and of the types against upstream's
//! samples. The API-server behaviour of the rules is tested end to end in
//! `tests/validation_compute.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;

/// `../shared/upstream` from the project root.
fn upstream(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/upstream")
        .join(file)
}

fn read_yaml_documents(path: PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn upstream_crd(plural: &str) -> Value {
    let mut documents = read_yaml_documents(upstream(&format!(
        "crds/compute.datumapis.com_{plural}.yaml"
    )));
    documents.remove(0)
}

fn our_crd(plural: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|crd| crd.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD for {plural}"));
    serde_json::to_value(crd).expect("a CRD serializes")
}

fn version(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]
}

/// Every field path of a schema (`.spec.placements[].name`, `{}` for map values) and its
/// schema.
fn fields(schema: &Value) -> BTreeMap<String, &Value> {
    fn walk<'a>(schema: &'a Value, path: String, out: &mut BTreeMap<String, &'a Value>) {
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                walk(property, format!("{path}.{name}"), out);
            }
        }
        if schema["items"].is_object() {
            walk(&schema["items"], format!("{path}[]"), out);
        }
        if schema["additionalProperties"].is_object() {
            walk(&schema["additionalProperties"], format!("{path}{{}}"), out);
        }
        out.insert(path, schema);
    }
    let mut out = BTreeMap::new();
    walk(schema, String::new(), &mut out);
    out
}

/// The schema at a field path of a CRD.
fn field<'a>(crd: &'a Value, path: &str) -> &'a Value {
    fields(&version(crd)["schema"]["openAPIV3Schema"])
        .get(path)
        .copied()
        .unwrap_or_else(|| panic!("no field {path}"))
}

fn rules(schema: &Value) -> Vec<&str> {
    schema["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|rule| rule["rule"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

const PLURALS: [&str; 3] = ["workloads", "workloaddeployments", "instances"];

/// `tests/upstream_compat.rs` checks every upstream field's type, default and list type for
/// all groups; this adds what it does not look at: map types, enums, and lists upstream
/// leaves atomic staying atomic.
#[test]
fn upstream_map_types_enums_and_atomic_lists_are_kept() {
    for plural in PLURALS {
        let theirs = upstream_crd(plural);
        let ours = our_crd(plural);
        let our_fields = fields(&version(&ours)["schema"]["openAPIV3Schema"]);
        for (path, their) in fields(&version(&theirs)["schema"]["openAPIV3Schema"]) {
            let Some(our) = our_fields.get(&path) else {
                continue;
            };
            for key in ["x-kubernetes-map-type", "enum"] {
                if !their[key].is_null() {
                    assert_eq!(our[key], their[key], "{plural}: {key} of {path}");
                }
            }
            if their["type"] == "array" && their["x-kubernetes-list-type"].is_null() {
                assert!(
                    our["x-kubernetes-list-type"].is_null(),
                    "{plural}: {path} must stay atomic"
                );
            }
        }
    }
}

#[test]
fn printer_columns_are_upstreams() {
    for plural in PLURALS {
        assert_eq!(
            version(&our_crd(plural))["additionalPrinterColumns"],
            version(&upstream_crd(plural))["additionalPrinterColumns"],
            "{plural}"
        );
    }
}

#[test]
fn names_scope_and_annotations_are_upstreams() {
    for plural in PLURALS {
        let (ours, theirs) = (our_crd(plural), upstream_crd(plural));
        assert_eq!(ours["metadata"]["name"], theirs["metadata"]["name"]);
        // `listKind` is left to the API server, which defaults it to `<kind>List`.
        for name in ["kind", "plural", "singular", "shortNames", "categories"] {
            assert_eq!(
                ours["spec"]["names"][name], theirs["spec"]["names"][name],
                "{plural}: {name}"
            );
        }
        assert_eq!(ours["spec"]["scope"], "Namespaced");
        assert_eq!(
            ours["metadata"]["annotations"]["discovery.miloapis.com/parent-contexts"],
            "Project"
        );
        assert_eq!(version(&ours)["name"], "v1alpha");
    }
}

#[test]
fn workload_deployments_scale_through_spec_replicas() {
    assert_eq!(
        version(&our_crd("workloaddeployments"))["subresources"],
        json!({
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        })
    );
}

#[test]
fn spec_is_optional_and_nullable_on_deployments_and_instances_only() {
    let root = |plural| version(&our_crd(plural))["schema"]["openAPIV3Schema"].clone();
    assert_eq!(root("workloads")["required"], json!(["spec"]));
    for plural in ["workloaddeployments", "instances"] {
        assert!(root(plural)["required"].is_null(), "{plural}");
        assert_eq!(
            root(plural)["properties"]["spec"]["nullable"],
            true,
            "{plural}"
        );
    }
}

#[test]
fn instance_status_defaults_to_upstreams_pending_conditions() {
    let ours = field(&our_crd("instances"), ".status")["default"].clone();
    assert_eq!(
        ours,
        field(&upstream_crd("instances"), ".status")["default"]
    );
    assert_eq!(
        ours,
        serde_json::to_value(InstanceStatus::pending()).expect("serializes")
    );
}

#[test]
fn cel_rules_sit_where_they_apply() {
    let workload = our_crd("workloads");
    let template = ".spec.template.spec";
    let expectations = [
        (
            format!("{template}.runtime"),
            "has(self.sandbox) || has(self.virtualMachine)",
        ),
        (
            format!("{template}.volumes[]"),
            "has(self.disk) || has(self.configMap) || has(self.secret)",
        ),
        (
            template.to_owned(),
            "self.volumes.exists(v, v.name == a.name)",
        ),
        (template.to_owned(), "has(v.disk)"),
        (
            format!("{template}.runtime.sandbox.containers[].name"),
            "self.matches(",
        ),
        (format!("{template}.volumes[].name"), "self.matches("),
        (
            format!("{template}.networkInterfaces[].network.name"),
            "self.matches(",
        ),
        (
            format!("{template}.runtime.sandbox.containers[].ports[].name"),
            "self.matches(",
        ),
        (
            format!("{template}.runtime.virtualMachine.ports[].name"),
            "self.matches(",
        ),
        (".spec.placements[].name".to_owned(), "self.matches("),
        (".spec.placements[]".to_owned(), "self.locationSelector"),
        (
            ".spec.placements[].scaleSettings".to_owned(),
            "self.maxReplicas >= self.minReplicas",
        ),
        (
            ".spec.placements[].scaleSettings".to_owned(),
            "has(self.metrics)",
        ),
        (
            ".spec.placements[].scaleSettings.metrics[]".to_owned(),
            "has(self.resource)",
        ),
        (
            ".spec.placements[].scaleSettings.metrics[].resource.target".to_owned(),
            "has(self.averageValue)",
        ),
    ];
    for (path, rule) in expectations {
        assert!(
            rules(field(&workload, &path))
                .iter()
                .any(|r| r.contains(rule)),
            "no rule containing {rule:?} at {path}"
        );
    }
    assert_eq!(
        field(&workload, ".spec.placements[].scaleSettings.minReplicas")["minimum"],
        json!(0.0)
    );
    assert_eq!(
        field(&workload, ".spec.placements[].scaleSettings.minReplicas")["maximum"],
        json!(1000.0)
    );
    assert_eq!(
        field(
            &workload,
            ".spec.placements[].scaleSettings.metrics[].resource.name"
        )["enum"],
        json!(["cpu", "memory"])
    );
    assert_eq!(
        field(
            &workload,
            ".spec.placements[].scaleSettings.instanceManagementPolicy"
        )["enum"],
        json!(["OrderedReady", "Parallel"])
    );
    // The same template rules hold on deployments and instances.
    assert!(!rules(field(&our_crd("workloaddeployments"), template)).is_empty());
    assert!(!rules(field(&our_crd("instances"), ".spec")).is_empty());
}

#[test]
fn every_string_and_list_a_rule_walks_is_bounded() {
    let workload = our_crd("workloads");
    let template = ".spec.template.spec";
    for path in [
        ".spec.placements".to_owned(),
        ".spec.placements[].cityCodes".to_owned(),
        ".spec.placements[].locations".to_owned(),
        format!("{template}.volumes"),
        format!("{template}.runtime.sandbox.containers"),
        format!("{template}.runtime.sandbox.containers[].volumeAttachments"),
        format!("{template}.runtime.sandbox.containers[].ports"),
        format!("{template}.runtime.virtualMachine.volumeAttachments"),
        format!("{template}.runtime.virtualMachine.ports"),
    ] {
        assert!(
            field(&workload, &path)["maxItems"].is_u64(),
            "{path} has no maxItems"
        );
    }
    for path in [
        ".spec.placements[].name".to_owned(),
        format!("{template}.volumes[].name"),
        format!("{template}.runtime.sandbox.containers[].name"),
        format!("{template}.runtime.sandbox.containers[].volumeAttachments[].name"),
        format!("{template}.runtime.virtualMachine.volumeAttachments[].name"),
        format!("{template}.runtime.sandbox.containers[].ports[].name"),
        format!("{template}.networkInterfaces[].network.name"),
    ] {
        assert!(
            field(&workload, &path)["maxLength"].is_u64(),
            "{path} has no maxLength"
        );
    }
}

#[test]
fn spec_gateway_is_a_loose_object() {
    let workload = our_crd("workloads");
    let gateway = field(&workload, ".spec.gateway");
    assert_eq!(gateway["type"], "object");
    assert_eq!(gateway["x-kubernetes-preserve-unknown-fields"], true);
}

/// Whether every field of `written` is in `read` with the same value; `read` may hold more
/// (defaults). A null in `written` counts as absent, as the API server prunes it.
fn contains(read: &Value, written: &Value) -> Result<(), String> {
    match (read, written) {
        (_, Value::Null) => Ok(()),
        (Value::Object(read), Value::Object(written)) => {
            written.iter().try_for_each(|(key, value)| {
                contains(read.get(key).unwrap_or(&Value::Null), value)
                    .map_err(|e| format!(".{key}{e}"))
            })
        }
        (Value::Array(read), Value::Array(written)) if read.len() == written.len() => read
            .iter()
            .zip(written)
            .enumerate()
            .try_for_each(|(i, (read, written))| {
                contains(read, written).map_err(|e| format!("[{i}]{e}"))
            }),
        _ if read == written => Ok(()),
        _ => Err(format!(": wrote {written}, read back {read}")),
    }
}

/// Parses `document` as `K`, serializes it again and checks nothing was lost or changed.
fn round_trip<K: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    document: &Value,
) -> K {
    let parsed: K =
        serde_json::from_value(document.clone()).unwrap_or_else(|e| panic!("{e}: {document}"));
    let written = serde_json::to_value(&parsed).expect("serializes");
    if let Err(difference) = contains(&written, document) {
        panic!("{difference}");
    }
    let reparsed: K = serde_json::from_value(written).expect("parses what it wrote");
    assert_eq!(reparsed, parsed);
    parsed
}

#[test]
fn upstream_samples_round_trip() {
    let samples = [
        "compute_v1alpha_workload-sandbox.yaml",
        "compute_v1alpha_workload-vm.yaml",
        "compute_v1alpha_workloaddeployment.yaml",
        "kong-gateway.yaml",
    ];
    let mut kinds = Vec::new();
    for sample in samples {
        for document in read_yaml_documents(upstream(&format!("samples/{sample}"))) {
            match document["kind"].as_str() {
                Some("Workload") => drop(round_trip::<Workload>(&document)),
                Some("WorkloadDeployment") => drop(round_trip::<WorkloadDeployment>(&document)),
                Some("Instance") => drop(round_trip::<Instance>(&document)),
                _ => continue,
            }
            kinds.push(document["kind"].clone());
        }
    }
    assert_eq!(
        kinds,
        ["Workload", "Workload", "WorkloadDeployment", "Workload"]
    );
}

#[test]
fn a_missing_or_null_spec_reads_as_the_default() {
    let null_spec: WorkloadDeployment = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "WorkloadDeployment",
        "metadata": { "name": "scaffold" },
        "spec": null,
    }))
    .expect("a null spec parses");
    assert_eq!(null_spec.spec, WorkloadDeploymentSpec::default());

    let no_spec: Instance = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": "bare" },
    }))
    .expect("a missing spec parses");
    assert_eq!(no_spec.spec, InstanceSpec::default());
}

#[test]
fn defaults_match_the_crd_defaults() {
    let workload = our_crd("workloads");
    assert_eq!(
        field(
            &workload,
            ".spec.placements[].scaleSettings.instanceManagementPolicy"
        )["default"],
        json!(InstanceManagementPolicy::default())
    );
    assert_eq!(
        field(
            &workload,
            ".spec.template.spec.volumes[].disk.template.spec.type"
        )["default"],
        json!(DiskSpec::default().type_)
    );
}
