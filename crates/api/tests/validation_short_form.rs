//! The short-form Workload (`workload.datum.net`) and the gcp and local ProviderConfigs
//! against a real API server: the docs' example and sample configs are accepted with their
//! defaults filled in, and bad manifests are rejected by the CRDs' own validation with a
//! message that names the field.

mod common;

use serde_json::Value;

/// A short-form Workload whose `template.spec` is `template_spec` (YAML, indented six spaces)
/// with extra top-level spec lines `rest` (indented two spaces).
fn workload(template_spec: &str, rest: &str) -> String {
    format!(
        "apiVersion: workload.datum.net/v1alpha1
kind: Workload
metadata:
  name: app
spec:
  template:
    spec:
{template_spec}
{rest}"
    )
}

const ONE_CONTAINER: &str = "      containers:
        - name: app
          image: ghcr.io/acme/app:v1";

const PLACEMENT: &str = "  placement:
    providers: [gcp]";

fn gcp_config(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gcp.provider.datum.net/v1alpha1\nkind: ProviderConfig\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

fn local_config(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: local.provider.datum.net/v1alpha1\nkind: ProviderConfig\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

const SECRET_REF: &str = "  credentials:
    secretRef: { namespace: datum-system, name: gcp-credentials, key: credentials.json }";

fn created(mut objects: Vec<Value>) -> Value {
    assert_eq!(objects.len(), 1, "one object per manifest");
    objects.remove(0)
}

// --- accepted ---------------------------------------------------------------------------

#[tokio::test]
async fn seed_workload_from_the_docs_is_accepted_with_defaults() {
    let env = common::env().await;
    let seed = std::fs::read_to_string(common::upstream("samples/seed-workload.yaml"))
        .expect("seed-workload.yaml");
    let workload = created(
        env.create(&seed)
            .await
            .expect("the docs' example is accepted unchanged"),
    );
    assert_eq!(workload["spec"]["replicas"], 3);
    assert_eq!(
        workload["spec"]["placement"]["providers"],
        serde_json::json!(["gcp"])
    );
    assert_eq!(
        workload["spec"]["template"]["spec"]["networks"],
        serde_json::json!(["default"]),
        "networks default"
    );

    // What the server stored reads back as our type.
    let typed: datum_api::short_form::Workload =
        serde_json::from_value(workload).expect("reads back");
    assert_eq!(
        typed
            .spec
            .template
            .spec
            .containers
            .as_deref()
            .map(<[_]>::len),
        Some(1)
    );

    // And applies again, server-side, unchanged.
    env.apply(&seed)
        .await
        .expect("server-side apply of the docs' example");
}

#[tokio::test]
async fn vm_workload_is_accepted_and_scales() {
    let env = common::env().await;
    let manifest = workload(
        "      instanceType: datumcloud/d1-standard-2
      virtualMachine:
        image: datumcloud/ubuntu-2204-lts
        sshKeys:
          - username: ubuntu
            publicKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAqyjfr0gTk1lxqA/eEac0djYWuw+ZLFphPHmfWwxbO5 me@laptop
        ports:
          - { name: ssh, port: 22 }",
        "  placement:
    providers: [local, gcp]
    regions: [us-central1]",
    );
    let vm = created(
        env.create(&manifest)
            .await
            .expect("a VM workload is accepted"),
    );
    assert_eq!(vm["spec"]["replicas"], 1, "replicas default to 1");
    assert_eq!(
        vm["spec"]["template"]["spec"]["virtualMachine"]["ports"][0]["protocol"],
        "TCP"
    );

    let scaled = env.kubectl(&["scale", "workloads.workload.datum.net/app", "--replicas=0"]);
    assert!(
        scaled.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    let get = env.kubectl(&["get", "workloads.workload.datum.net/app"]);
    let table = String::from_utf8_lossy(&get.stdout);
    assert!(
        get.status.success(),
        "kubectl get: {}",
        String::from_utf8_lossy(&get.stderr)
    );
    for column in [
        "NAME",
        "REPLICAS",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
    ] {
        assert!(table.contains(column), "no {column} column in:\n{table}");
    }
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.split_whitespace().nth(1) == Some("0")),
        "scaled to 0:\n{table}"
    );
}

#[tokio::test]
async fn gcp_provider_configs_are_accepted_with_upstream_defaults() {
    let env = common::env().await;
    let with_key = format!(
        "{}\n  projectId: datum-cloud-poc-1\n  endpoint: http://127.0.0.1:8089\n",
        gcp_config(&format!("{}-key", env.namespace), SECRET_REF)
    );
    let config = created(
        env.create(&with_key)
            .await
            .expect("a key-file config is accepted"),
    );
    let spec = &config["spec"];
    assert_eq!(
        spec["machineTypeMap"]["datumcloud/d1-standard-2"],
        "n2-standard-2"
    );
    assert_eq!(
        spec["imageMap"]["datumcloud/ubuntu-2204-lts"],
        "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927"
    );
    assert_eq!(
        spec["rateLimit"],
        serde_json::json!({"requestsPerSecond": 20, "burst": 40})
    );
    serde_json::from_value::<datum_api::provider_config::gcp::ProviderConfig>(config)
        .expect("reads back");

    let keyless = gcp_config(
        &format!("{}-wi", env.namespace),
        "  credentials:
    workloadIdentity:
      serviceAccountEmail: provider@datum-cloud-poc-1.iam.gserviceaccount.com
      audience: //iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/datum/providers/k8s
  endpoint: https://compute.googleapis.com
  imageMap:
    datumcloud/ubuntu-2404-lts: projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
    );
    env.create(&keyless)
        .await
        .expect("a workload-identity config is accepted");
}

#[tokio::test]
async fn local_provider_configs_are_accepted_with_defaults() {
    let env = common::env().await;
    let empty = created(
        env.create(&local_config(&format!("{}-empty", env.namespace), "  {}"))
            .await
            .expect("an empty spec is a working config"),
    );
    let spec = &empty["spec"];
    assert_eq!(spec["stateDir"], "/var/lib/datum/local");
    assert_eq!(spec["storageClasses"]["local-ssd"]["format"], "raw");
    assert_eq!(spec["storageClasses"]["local-standard"]["format"], "qcow2");
    assert_eq!(
        spec["containerd"]["socket"],
        "/run/containerd/containerd.sock"
    );
    assert_eq!(spec["network"]["namespacePrefix"], "datum-");
    assert_eq!(
        spec["instanceTypes"]["datumcloud/d1-standard-2"]["memory"],
        "8Gi"
    );
    serde_json::from_value::<datum_api::provider_config::local::ProviderConfig>(empty)
        .expect("reads back");

    let full = local_config(
        &format!("{}-full", env.namespace),
        "  stateDir: /srv/datum
  imageMap:
    datumcloud/ubuntu-2204-lts: /srv/images/ubuntu-2204-lts.qcow2
  storageClasses:
    local-ssd: { directory: /mnt/nvme/datum, format: raw, diskTypes: [pd-ssd] }
    local-standard: { format: qcow2 }
  registries:
    - host: 127.0.0.1:5000
      insecure: true
    - host: docker.io
      mirrors: [https://mirror.example.com, http://127.0.0.1:5001]
      authSecretRef: { namespace: datum-system, name: dockerhub-pull, key: .dockerconfigjson }
  containerd: { socket: /tmp/datum/containerd.sock, namespace: datum-test }
  network: { namespacePrefix: dt- }
  instanceTypes:
    datumcloud/d1-standard-2: { cpu: 2, memory: 4Gi }
    datumcloud/d1-micro: { cpu: 500m, memory: 512Mi }",
    );
    env.create(&full)
        .await
        .expect("a full local config is accepted");
}

// --- rejected: short-form Workload --------------------------------------------------------

#[tokio::test]
async fn workload_with_both_containers_and_vm_is_rejected() {
    let env = common::env().await;
    let both = workload(
        &format!(
            "{ONE_CONTAINER}\n      virtualMachine:\n        image: datumcloud/ubuntu-2204-lts"
        ),
        PLACEMENT,
    );
    env.assert_rejected(
        &both,
        &[
            "spec.template.spec",
            "exactly one of template.spec.containers or template.spec.virtualMachine must be set",
        ],
    )
    .await;
}

#[tokio::test]
async fn workload_with_neither_containers_nor_vm_is_rejected() {
    let env = common::env().await;
    let neither = workload("      instanceType: datumcloud/d1-standard-2", PLACEMENT);
    env.assert_rejected(
        &neither,
        &[
            "spec.template.spec",
            "exactly one of template.spec.containers or template.spec.virtualMachine must be set",
        ],
    )
    .await;
}

#[tokio::test]
async fn workload_ports_out_of_range_are_rejected() {
    let env = common::env().await;
    let zero = workload(
        &format!("{ONE_CONTAINER}\n          ports:\n            - {{ name: http, port: 0 }}"),
        PLACEMENT,
    );
    env.assert_rejected(
        &zero,
        &[
            "spec.template.spec.containers[0].ports[0].port",
            "ports[].port must be between 1 and 65535",
        ],
    )
    .await;

    let too_high = workload(
        "      virtualMachine:\n        image: datumcloud/ubuntu-2204-lts\n        ports:\n          - { name: ssh, port: 70000 }",
        PLACEMENT,
    );
    env.assert_rejected(
        &too_high,
        &[
            "spec.template.spec.virtualMachine.ports[0].port",
            "ports[].port must be between 1 and 65535",
        ],
    )
    .await;

    let bad_name = workload(
        &format!("{ONE_CONTAINER}\n          ports:\n            - {{ name: '8080', port: 8080 }}"),
        PLACEMENT,
    );
    env.assert_rejected(
        &bad_name,
        &[
            "spec.template.spec.containers[0].ports[0].name",
            "IANA service name",
        ],
    )
    .await;
}

#[tokio::test]
async fn workload_container_names_must_be_dns_labels() {
    let env = common::env().await;
    let bad = workload(
        "      containers:\n        - name: App_1\n          image: nginx",
        PLACEMENT,
    );
    env.assert_rejected(
        &bad,
        &[
            "spec.template.spec.containers[0].name",
            "containers[].name must be a DNS label",
        ],
    )
    .await;

    let duplicate = workload(
        "      containers:\n        - { name: app, image: nginx }\n        - { name: app, image: redis }",
        PLACEMENT,
    );
    env.assert_rejected(
        &duplicate,
        &["spec.template.spec.containers[1]", "Duplicate value"],
    )
    .await;
}

#[tokio::test]
async fn workload_replicas_are_bounded() {
    let env = common::env().await;
    for replicas in ["-1", "1001"] {
        let manifest = workload(
            ONE_CONTAINER,
            &format!("{PLACEMENT}\n  replicas: {replicas}"),
        );
        env.assert_rejected(
            &manifest,
            &["spec.replicas", "replicas must be between 0 and 1000"],
        )
        .await;
    }
}

#[tokio::test]
async fn workload_providers_must_be_non_empty_dns_labels() {
    let env = common::env().await;
    let empty = workload(ONE_CONTAINER, "  placement:\n    providers: []");
    env.assert_rejected(
        &empty,
        &[
            "spec.placement.providers",
            "placement.providers must name at least one provider",
        ],
    )
    .await;

    let upper = workload(ONE_CONTAINER, "  placement:\n    providers: [GCP]");
    env.assert_rejected(
        &upper,
        &[
            "spec.placement.providers",
            "placement.providers entries must be DNS labels",
        ],
    )
    .await;

    let bad_region = workload(
        ONE_CONTAINER,
        "  placement:\n    providers: [gcp]\n    regions: [US_Central]",
    );
    env.assert_rejected(
        &bad_region,
        &[
            "spec.placement.regions",
            "placement.regions entries must be DNS labels",
        ],
    )
    .await;

    let missing = workload(ONE_CONTAINER, "  replicas: 1");
    env.assert_rejected(&missing, &["spec.placement", "Required value"])
        .await;
}

#[tokio::test]
async fn workload_unknown_fields_and_bad_ssh_keys_are_rejected() {
    let env = common::env().await;
    let unknown = workload(
        &format!("{ONE_CONTAINER}\n          resources: {{ cpu: 2 }}"),
        PLACEMENT,
    );
    env.assert_rejected(
        &unknown,
        &[
            "unknown field",
            "spec.template.spec.containers[0].resources",
        ],
    )
    .await;

    let bad_key = workload(
        "      virtualMachine:\n        image: datumcloud/ubuntu-2204-lts\n        sshKeys:\n          - { username: ubuntu, publicKey: not-a-key }",
        PLACEMENT,
    );
    env.assert_rejected(
        &bad_key,
        &[
            "spec.template.spec.virtualMachine.sshKeys[0].publicKey",
            "sshKeys[].publicKey must be a single OpenSSH public key line",
        ],
    )
    .await;
}

#[tokio::test]
async fn workload_rules_hold_on_update_too() {
    let env = common::env().await;
    let good = workload(ONE_CONTAINER, PLACEMENT);
    env.apply(&good).await.expect("a valid workload applies");
    let both = workload(
        &format!(
            "{ONE_CONTAINER}\n      virtualMachine:\n        image: datumcloud/ubuntu-2204-lts"
        ),
        PLACEMENT,
    );
    env.assert_update_rejected(
        &both,
        &["exactly one of template.spec.containers or template.spec.virtualMachine"],
    )
    .await;
}

// --- rejected: gcp ProviderConfig ---------------------------------------------------------

#[tokio::test]
async fn gcp_inline_credentials_are_unknown_fields() {
    let env = common::env().await;
    let inline = gcp_config(
        &format!("{}-inline", env.namespace),
        "  credentials:\n    json: '{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\"}'",
    );
    env.assert_rejected(&inline, &["unknown field", "spec.credentials.json"])
        .await;

    let inline_in_ref = gcp_config(
        &format!("{}-inline-ref", env.namespace),
        "  credentials:\n    secretRef: { namespace: ns, name: gcp, key: k, value: c2VjcmV0 }",
    );
    env.assert_rejected(
        &inline_in_ref,
        &["unknown field", "spec.credentials.secretRef.value"],
    )
    .await;
}

#[tokio::test]
async fn gcp_credentials_need_exactly_one_source() {
    let env = common::env().await;
    let both = gcp_config(
        &format!("{}-both", env.namespace),
        "  credentials:
    secretRef: { namespace: datum-system, name: gcp-credentials, key: credentials.json }
    workloadIdentity: {}",
    );
    env.assert_rejected(
        &both,
        &[
            "spec.credentials",
            "credentials must set exactly one of secretRef or workloadIdentity",
        ],
    )
    .await;

    let neither = gcp_config(&format!("{}-neither", env.namespace), "  credentials: {}");
    env.assert_rejected(
        &neither,
        &[
            "spec.credentials",
            "credentials must set exactly one of secretRef or workloadIdentity",
        ],
    )
    .await;
}

#[tokio::test]
async fn gcp_endpoint_must_be_https_or_loopback_http() {
    let env = common::env().await;
    for endpoint in [
        "ftp://compute.example.com",
        "compute.googleapis.com",
        "http://compute.example.com",
    ] {
        let manifest = format!(
            "{}\n  endpoint: {endpoint}\n",
            gcp_config(&format!("{}-endpoint", env.namespace), SECRET_REF)
        );
        env.assert_rejected(
            &manifest,
            &["spec.endpoint", "endpoint must be an https URL"],
        )
        .await;
    }
}

#[tokio::test]
async fn gcp_secret_refs_and_limits_are_checked() {
    let env = common::env().await;
    let bad_name = gcp_config(
        &format!("{}-secret", env.namespace),
        "  credentials:\n    secretRef: { namespace: datum-system, name: GCP_Credentials, key: credentials.json }",
    );
    env.assert_rejected(
        &bad_name,
        &[
            "spec.credentials.secretRef.name",
            "name must be a Secret name",
        ],
    )
    .await;

    let no_namespace = gcp_config(
        &format!("{}-secret-ns", env.namespace),
        "  credentials:\n    secretRef: { name: gcp-credentials, key: credentials.json }",
    );
    env.assert_rejected(
        &no_namespace,
        &["spec.credentials.secretRef.namespace", "Required value"],
    )
    .await;

    let burst = format!(
        "{}\n  rateLimit: {{ requestsPerSecond: 50, burst: 10 }}\n",
        gcp_config(&format!("{}-rate", env.namespace), SECRET_REF)
    );
    env.assert_rejected(
        &burst,
        &[
            "spec.rateLimit",
            "rateLimit.burst must be at least rateLimit.requestsPerSecond",
        ],
    )
    .await;

    let image = format!(
        "{}\n  imageMap:\n    datumcloud/ubuntu-2204-lts: ubuntu-2204\n",
        gcp_config(&format!("{}-image", env.namespace), SECRET_REF)
    );
    env.assert_rejected(&image, &["spec.imageMap", "imageMap must map image names"])
        .await;
}

// --- rejected: local ProviderConfig -------------------------------------------------------

#[tokio::test]
async fn local_storage_classes_are_checked() {
    let env = common::env().await;
    let vmdk = local_config(
        &format!("{}-vmdk", env.namespace),
        "  storageClasses:\n    local-ssd: { format: vmdk }\n    local-standard: { format: qcow2 }",
    );
    env.assert_rejected(
        &vmdk,
        &[
            "spec.storageClasses.local-ssd.format",
            "Unsupported value: \"vmdk\"",
        ],
    )
    .await;

    let missing = local_config(
        &format!("{}-missing", env.namespace),
        "  storageClasses:\n    local-ssd: { format: raw }",
    );
    env.assert_rejected(
        &missing,
        &[
            "spec.storageClasses",
            "storageClasses must define local-ssd and local-standard",
        ],
    )
    .await;

    let relative = local_config(
        &format!("{}-relative", env.namespace),
        "  storageClasses:\n    local-ssd: { format: raw, directory: disks/ssd }\n    local-standard: { format: qcow2 }",
    );
    env.assert_rejected(
        &relative,
        &[
            "spec.storageClasses[local-ssd].directory",
            "storageClasses[].directory must be an absolute path",
        ],
    )
    .await;
}

#[tokio::test]
async fn local_registries_allow_insecure_only_on_loopback() {
    let env = common::env().await;
    let insecure = local_config(
        &format!("{}-insecure", env.namespace),
        "  registries:\n    - host: registry.example.com\n      insecure: true",
    );
    env.assert_rejected(
        &insecure,
        &[
            "spec.registries[0]",
            "registries[].insecure is only allowed for loopback registries",
        ],
    )
    .await;

    let http_mirror = local_config(
        &format!("{}-mirror", env.namespace),
        "  registries:\n    - host: docker.io\n      mirrors: [http://mirror.example.com]",
    );
    env.assert_rejected(
        &http_mirror,
        &[
            "spec.registries[0].mirrors",
            "registries[].mirrors must be https URLs",
        ],
    )
    .await;

    let bad_auth = local_config(
        &format!("{}-auth", env.namespace),
        "  registries:\n    - host: ghcr.io\n      authSecretRef: { namespace: Datum, name: pull, key: .dockerconfigjson }",
    );
    env.assert_rejected(
        &bad_auth,
        &[
            "spec.registries[0].authSecretRef.namespace",
            "namespace must be a namespace name",
        ],
    )
    .await;
}

#[tokio::test]
async fn local_paths_and_quantities_are_checked() {
    let env = common::env().await;
    let state_dir = local_config(
        &format!("{}-state", env.namespace),
        "  stateDir: var/lib/datum",
    );
    env.assert_rejected(
        &state_dir,
        &["spec.stateDir", "stateDir must be an absolute path"],
    )
    .await;

    let image = local_config(
        &format!("{}-image", env.namespace),
        "  imageMap:\n    datumcloud/ubuntu-2204-lts: images/ubuntu.qcow2",
    );
    env.assert_rejected(
        &image,
        &[
            "spec.imageMap",
            "imageMap must map image names (at most 253 characters) to absolute file paths",
        ],
    )
    .await;

    let cpu = local_config(
        &format!("{}-cpu", env.namespace),
        "  instanceTypes:\n    datumcloud/d1-standard-2: { cpu: two, memory: 8Gi }",
    );
    env.assert_rejected(
        &cpu,
        &[
            "spec.instanceTypes.datumcloud/d1-standard-2.cpu",
            "should match",
        ],
    )
    .await;

    let socket = local_config(
        &format!("{}-socket", env.namespace),
        "  containerd: { socket: containerd.sock }",
    );
    env.assert_rejected(
        &socket,
        &[
            "spec.containerd.socket",
            "containerd.socket must be an absolute path",
        ],
    )
    .await;
}
