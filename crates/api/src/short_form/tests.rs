use super::*;
use crate::provider_config::crd_lint::{self, node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

/// The product docs' example, read in place (never copied into the project).
const SEED_WORKLOAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/upstream/samples/seed-workload.yaml"
);

const VM_WORKLOAD: &str = r#"
apiVersion: workload.datum.net/v1alpha1
kind: Workload
metadata: { name: vm, namespace: demo }
spec:
  template:
    metadata:
      labels: { tier: app }
    spec:
      instanceType: datumcloud/d1-standard-2
      networks: [default, backend]
      virtualMachine:
        image: datumcloud/ubuntu-2204-lts
        sshKeys:
          - username: ubuntu
            publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAqyjfr0gTk1lxqA/eEac0djYWuw+ZLFphPHmfWwxbO5 me@laptop
        ports:
          - { name: ssh, port: 22 }
  placement:
    providers: [local]
  replicas: 0
"#;

fn seed() -> Workload {
    let text = std::fs::read_to_string(SEED_WORKLOAD).expect("seed-workload.yaml is readable");
    serde_yaml::from_str(&text).expect("seed-workload.yaml parses as a short-form Workload")
}

#[test]
fn seed_workload_parses_with_defaults() {
    let workload = seed();
    assert_eq!(workload.metadata.name.as_deref(), Some("my-app"));
    assert_eq!(workload.metadata.namespace.as_deref(), Some("my-project"));
    let spec = &workload.spec;
    let containers = spec
        .template
        .spec
        .containers
        .as_deref()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "app");
    assert_eq!(containers[0].image, "gcr.io/my-project/my-app:v1.0");
    assert_eq!(spec.template.spec.virtual_machine, None);
    assert_eq!(
        spec.template.spec.networks,
        ["default"],
        "networks default to the default network"
    );
    assert_eq!(spec.placement.providers, ["gcp"]);
    assert_eq!(
        spec.placement.regions.as_deref(),
        Some(&["us-central1".to_owned()][..])
    );
    assert_eq!(spec.replicas, 3);
    assert_eq!(workload.status, None);
}

#[test]
fn seed_workload_round_trips() {
    let workload = seed();
    let json = serde_json::to_value(&workload).expect("serializes");
    assert_eq!(json["apiVersion"], "workload.datum.net/v1alpha1");
    assert_eq!(json["kind"], "Workload");
    assert_eq!(
        json["spec"],
        json!({
            "template": {"spec": {
                "containers": [{"name": "app", "image": "gcr.io/my-project/my-app:v1.0"}],
                "networks": ["default"],
            }},
            "placement": {"providers": ["gcp"], "regions": ["us-central1"]},
            "replicas": 3,
        }),
        "only the defaulted networks are added; no nulls are written"
    );
    let back: Workload = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, workload);
}

#[test]
fn vm_workload_round_trips() {
    let workload: Workload = serde_yaml::from_str(VM_WORKLOAD).expect("parses");
    let vm = workload
        .spec
        .template
        .spec
        .virtual_machine
        .as_ref()
        .expect("virtualMachine");
    assert_eq!(vm.image, "datumcloud/ubuntu-2204-lts");
    assert_eq!(vm.ssh_keys[0].username, "ubuntu");
    let ports = vm.ports.as_deref().expect("ports");
    assert_eq!(ports[0].protocol, Protocol::Tcp, "protocol defaults to TCP");
    assert_eq!(workload.spec.replicas, 0);

    let yaml = serde_yaml::to_string(&workload).expect("serializes");
    let back: Workload = serde_yaml::from_str(&yaml).expect("deserializes");
    assert_eq!(back, workload);
}

#[test]
fn replicas_default_to_one() {
    let spec: WorkloadSpec = serde_json::from_value(json!({
        "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}},
        "placement": {"providers": ["sim"]},
    }))
    .expect("parses");
    assert_eq!(spec.replicas, 1);
    assert_eq!(
        spec.template.spec.networks,
        WorkloadTemplateSpec::default().networks
    );
    assert_eq!(
        WorkloadTemplateSpec::default().networks,
        ["default"],
        "Rust defaults match the schema's"
    );
}

#[test]
fn status_round_trips() {
    let status = WorkloadStatus {
        observed_generation: Some(2),
        workload_ref: Some(WorkloadReference {
            name: "my-app".into(),
        }),
        replicas: 3,
        desired_replicas: 3,
        updated_replicas: 3,
        ready_replicas: 2,
        conditions: vec![Condition {
            // The wire format keeps whole seconds.
            last_transition_time: Time(
                Timestamp::from_second(1_800_000_000).expect("valid timestamp"),
            ),
            ..crate::conditions::new(
                "Available",
                crate::conditions::ConditionStatus::True,
                "AvailablePlacementFound",
                "2/3 instances are ready",
                2,
            )
        }],
    };
    let json = serde_json::to_value(&status).expect("serializes");
    assert_eq!(json["workloadRef"]["name"], "my-app");
    assert_eq!(json["readyReplicas"], 2);
    assert_eq!(json["conditions"][0]["observedGeneration"], 2);
    assert_eq!(
        serde_json::from_value::<WorkloadStatus>(json).expect("deserializes"),
        status
    );
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd = Workload::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("workloads.workload.datum.net")
    );
    assert_eq!(crd.spec.group, "workload.datum.net");
    assert_eq!(crd.spec.names.kind, "Workload");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.versions.len(), 1);
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let subresources = version.subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some());
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(crds().len(), 1);
}

#[test]
fn crd_printer_columns() {
    let crd = Workload::crd();
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Replicas", ".spec.replicas"),
            ("Ready", ".status.readyReplicas"),
            ("Up-to-date", ".status.updatedReplicas"),
            (
                "Available",
                r#".status.conditions[?(@.type=="Available")].status"#
            ),
            (
                "Reason",
                r#".status.conditions[?(@.type=="Available")].reason"#
            ),
            ("Providers", ".spec.placement.providers"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn crd_is_installable() {
    crd_lint::assert_installable(&Workload::crd());
}

#[test]
fn crd_rules_name_their_fields() {
    let schema = crd_lint::schema(&Workload::crd());
    let rules = crd_lint::rules(&schema);
    let message_at = |path: &str| -> Vec<&str> {
        rules
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| r.message.as_deref())
            .collect()
    };
    let expect = [
        (
            "spec.template.spec",
            "template.spec.containers or template.spec.virtualMachine",
        ),
        (
            "spec.template.spec.containers.[].name",
            "containers[].name must be a DNS label",
        ),
        (
            "spec.template.spec.containers.[].ports.[].port",
            "ports[].port must be between 1 and 65535",
        ),
        (
            "spec.template.spec.virtualMachine.ports.[].port",
            "ports[].port must be between 1 and 65535",
        ),
        ("spec.template.spec.networks", "template.spec.networks"),
        ("spec.replicas", "replicas must be between 0 and 1000"),
        (
            "spec.placement.providers",
            "placement.providers must name at least one provider",
        ),
        (
            "spec.placement.providers",
            "placement.providers entries must be DNS labels",
        ),
        (
            "spec.placement.regions",
            "placement.regions entries must be DNS labels",
        ),
    ];
    assert!(
        rules.iter().any(|r| r.path == "spec.template.spec"
            && r.rule == "has(self.containers) != has(self.virtualMachine)"),
        "exactly one of containers or virtualMachine is a CEL rule on template.spec"
    );
    for (path, message) in expect {
        assert!(
            message_at(path).iter().any(|m| m.contains(message)),
            "no rule at {path} with a message containing {message:?}; found {:?}",
            message_at(path)
        );
    }
}

#[test]
fn crd_defaults_and_list_semantics() {
    let schema = crd_lint::schema(&Workload::crd());
    assert_eq!(node(&schema, "spec.replicas")["default"], 1);
    assert_eq!(
        node(&schema, "spec.template.spec.networks")["default"],
        json!(["default"])
    );
    assert_eq!(
        node(
            &schema,
            "spec.template.spec.containers.[].ports.[].protocol"
        )["default"],
        "TCP"
    );
    assert_eq!(
        node(&schema, "spec.placement")["required"],
        json!(["providers"])
    );
    for (path, keys) in [
        ("spec.template.spec.containers", json!(["name"])),
        ("spec.template.spec.containers.[].env", json!(["name"])),
        ("spec.template.spec.containers.[].ports", json!(["name"])),
        ("status.conditions", json!(["type"])),
    ] {
        let list = node(&schema, path);
        assert_eq!(list["x-kubernetes-list-type"], "map", "{path}");
        assert_eq!(list["x-kubernetes-list-map-keys"], keys, "{path}");
    }
    assert_eq!(
        node(&schema, "spec.placement.providers")["x-kubernetes-list-type"],
        "set"
    );
    assert_eq!(
        node(&schema, "spec.template.spec.virtualMachine.sshKeys")["x-kubernetes-list-type"],
        "atomic"
    );
}
