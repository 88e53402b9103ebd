use super::crd_lint::{self, node};
use super::*;
use kube::CustomResourceExt;
use serde_json::json;

const GCP_CONFIG: &str = r#"
apiVersion: gcp.provider.datum.net/v1alpha1
kind: ProviderConfig
metadata: { name: default }
spec:
  projectId: datum-cloud-poc-1
  credentials:
    secretRef: { namespace: datum-system, name: gcp-credentials, key: credentials.json }
  endpoint: http://127.0.0.1:8089
  machineTypeMap:
    datumcloud/d1-standard-2: e2-standard-2
  rateLimit: { requestsPerSecond: 5, burst: 10 }
"#;

const LOCAL_CONFIG: &str = r#"
apiVersion: local.provider.datum.net/v1alpha1
kind: ProviderConfig
metadata: { name: default }
spec:
  stateDir: /srv/datum
  imageMap:
    datumcloud/ubuntu-2204-lts: /srv/images/ubuntu-2204-lts.qcow2
  registries:
    - host: 127.0.0.1:5000
      insecure: true
    - host: ghcr.io
      mirrors: [https://mirror.example.com]
      authSecretRef: { namespace: datum-system, name: ghcr-pull, key: .dockerconfigjson }
  instanceTypes:
    datumcloud/d1-standard-2: { cpu: 2, memory: 4Gi }
"#;

#[test]
fn gcp_config_round_trips_and_defaults() {
    let config: gcp::ProviderConfig = serde_yaml::from_str(GCP_CONFIG).expect("parses");
    let spec = &config.spec;
    assert_eq!(spec.project_id.as_deref(), Some("datum-cloud-poc-1"));
    let secret = spec.credentials.secret_ref.as_ref().expect("secretRef");
    assert_eq!(
        (
            secret.namespace.as_str(),
            secret.name.as_str(),
            secret.key.as_str()
        ),
        ("datum-system", "gcp-credentials", "credentials.json")
    );
    assert_eq!(spec.credentials.workload_identity, None);
    assert_eq!(
        spec.machine_type_map
            .get("datumcloud/d1-standard-2")
            .map(String::as_str),
        Some("e2-standard-2")
    );
    assert_eq!(
        spec.image_map,
        gcp::default_image_map(),
        "an unset map takes upstream's defaults"
    );
    assert_eq!(
        spec.rate_limit,
        gcp::RateLimit {
            requests_per_second: 5,
            burst: 10
        }
    );

    let back: gcp::ProviderConfig =
        serde_json::from_value(serde_json::to_value(&config).expect("serializes"))
            .expect("deserializes");
    assert_eq!(back, config);
}

#[test]
fn gcp_defaults_are_upstreams() {
    assert_eq!(
        gcp::default_machine_type_map()
            .get("datumcloud/d1-standard-2")
            .map(String::as_str),
        Some("n2-standard-2")
    );
    let images = gcp::default_image_map();
    assert_eq!(
        images.get("datumcloud/ubuntu-2204-lts").map(String::as_str),
        Some("projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927")
    );
    assert_eq!(
        images
            .get("datumcloud/cos-stable-117-18613-0-79")
            .map(String::as_str),
        Some("projects/cos-cloud/global/images/cos-stable-117-18613-0-79")
    );
    assert_eq!(
        gcp::RateLimit::default(),
        gcp::RateLimit {
            requests_per_second: 20,
            burst: 40
        }
    );
}

#[test]
fn local_config_round_trips_and_defaults() {
    let config: local::ProviderConfig = serde_yaml::from_str(LOCAL_CONFIG).expect("parses");
    let spec = &config.spec;
    assert_eq!(spec.state_dir, "/srv/datum");
    assert_eq!(spec.registries.len(), 2);
    assert!(spec.registries[0].insecure);
    assert!(!spec.registries[1].insecure);
    assert_eq!(
        spec.registries[1]
            .auth_secret_ref
            .as_ref()
            .map(|s| s.key.as_str()),
        Some(".dockerconfigjson")
    );
    assert_eq!(spec.storage_classes, local::default_storage_classes());
    assert_eq!(spec.containerd, local::Containerd::default());
    assert_eq!(spec.containerd.socket, "/run/containerd/containerd.sock");
    assert_eq!(spec.network.namespace_prefix, "datum-");
    let d1 = &spec.instance_types["datumcloud/d1-standard-2"];
    assert_eq!(
        (d1.cpu.0.as_str(), d1.memory.0.as_str()),
        ("2", "4Gi"),
        "an integer cpu reads as a quantity"
    );

    let back: local::ProviderConfig =
        serde_json::from_value(serde_json::to_value(&config).expect("serializes"))
            .expect("deserializes");
    assert_eq!(back, config);
}

#[test]
fn empty_local_spec_is_a_working_config() {
    let spec: local::ProviderConfigSpec = serde_json::from_value(json!({})).expect("parses");
    assert_eq!(spec.state_dir, "/var/lib/datum/local");
    assert!(spec.image_map.is_empty());
    let classes = &spec.storage_classes;
    assert_eq!(
        classes[local::STORAGE_CLASS_SSD].format,
        local::DiskFormat::Raw
    );
    assert_eq!(
        classes[local::STORAGE_CLASS_STANDARD].format,
        local::DiskFormat::Qcow2
    );
    assert!(
        classes[local::STORAGE_CLASS_STANDARD]
            .disk_types
            .iter()
            .any(|t| t == "pd-standard")
    );
    assert_eq!(spec.instance_types, local::default_instance_types());
}

#[test]
fn crds_are_cluster_scoped_with_status() {
    let crds = crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "providerconfigs.gcp.provider.datum.net",
            "providerconfigs.local.provider.datum.net",
            "providerconfigs.sim.provider.datum.net"
        ]
    );
    for crd in &crds {
        assert_eq!(crd.spec.names.kind, "ProviderConfig");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        let subresources = crd.spec.versions[0]
            .subresources
            .as_ref()
            .expect("subresources");
        assert!(subresources.status.is_some());
        let columns: Vec<_> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            columns.contains(&"Ready") && columns.contains(&"Age"),
            "{columns:?}"
        );
        let schema = crd_lint::schema(crd);
        let conditions = node(&schema, "status.conditions");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

#[test]
fn crds_are_installable() {
    for crd in crds() {
        crd_lint::assert_installable(&crd);
    }
}

#[test]
fn gcp_rules_name_their_fields() {
    let schema = crd_lint::schema(&gcp::ProviderConfig::crd());
    assert_rules(
        &schema,
        &[
            (
                "spec.credentials",
                "exactly one of secretRef or workloadIdentity",
            ),
            (
                "spec.credentials.secretRef.name",
                "name must be a Secret name",
            ),
            (
                "spec.credentials.secretRef.namespace",
                "namespace must be a namespace name",
            ),
            ("spec.endpoint", "endpoint must be an https URL"),
            ("spec.projectId", "projectId must be a GCP project ID"),
            ("spec.machineTypeMap", "machineTypeMap"),
            ("spec.imageMap", "imageMap"),
            (
                "spec.rateLimit",
                "rateLimit.burst must be at least rateLimit.requestsPerSecond",
            ),
            (
                "spec.rateLimit.requestsPerSecond",
                "rateLimit.requestsPerSecond must be between 1 and 1000",
            ),
        ],
    );
    assert_eq!(
        node(&schema, "spec.machineTypeMap")["default"],
        json!({"datumcloud/d1-standard-2": "n2-standard-2"})
    );
    assert_eq!(
        node(&schema, "spec.rateLimit")["default"],
        json!({"requestsPerSecond": 20, "burst": 40})
    );
    assert_eq!(node(&schema, "spec")["required"], json!(["credentials"]));
}

#[test]
fn local_rules_name_their_fields() {
    let schema = crd_lint::schema(&local::ProviderConfig::crd());
    assert_rules(
        &schema,
        &[
            ("spec.stateDir", "stateDir must be an absolute path"),
            ("spec.imageMap", "absolute file paths"),
            (
                "spec.storageClasses",
                "storageClasses must define local-ssd and local-standard",
            ),
            (
                "spec.storageClasses.{}.directory",
                "storageClasses[].directory must be an absolute path",
            ),
            (
                "spec.registries.[]",
                "registries[].insecure is only allowed for loopback registries",
            ),
            ("spec.registries.[].host", "registries[].host"),
            ("spec.registries.[].mirrors", "registries[].mirrors"),
            (
                "spec.registries.[].authSecretRef.name",
                "name must be a Secret name",
            ),
            (
                "spec.containerd.socket",
                "containerd.socket must be an absolute path",
            ),
            ("spec.network.namespacePrefix", "network.namespacePrefix"),
        ],
    );
    assert_eq!(
        node(&schema, "spec.storageClasses.{}.format")["enum"],
        json!(["raw", "qcow2"])
    );
    assert_eq!(
        node(&schema, "spec.registries")["x-kubernetes-list-map-keys"],
        json!(["host"])
    );
    let cpu = node(&schema, "spec.instanceTypes.{}.cpu");
    assert_eq!(cpu["x-kubernetes-int-or-string"], true);
    assert!(
        cpu["pattern"].is_string(),
        "quantities are checked against the quantity grammar"
    );
}

/// Asserts a rule sits at each path with a message containing the given text.
fn assert_rules(schema: &serde_json::Value, expected: &[(&str, &str)]) {
    let rules = crd_lint::rules(schema);
    for (path, message) in expected {
        let found: Vec<_> = rules
            .iter()
            .filter(|r| r.path == *path)
            .filter_map(|r| r.message.as_deref())
            .collect();
        assert!(
            found.iter().any(|m| m.contains(message)),
            "no rule at {path} with a message containing {message:?}; found {found:?}"
        );
    }
}
