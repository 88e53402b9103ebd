//! The compute CRDs' validation, checked against a real API server: what `kubectl create` /
//! `kubectl apply` accepts, and what it rejects — on create and on update — with a message
//! naming the field.
//!
//! Manifests are built from a valid Workload (or Instance) with one change each, written as
//! JSON (which is YAML) so a test states only what it changes.

mod common;

use datum_api::compute::{WorkloadDeployment, labels};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// A valid Workload: one container with a port and a ConfigMap volume, one placement.
fn sandbox_workload() -> Value {
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Workload",
        "metadata": { "name": "web" },
        "spec": {
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "runtime": {
                        "resources": { "instanceType": "datumcloud/d1-standard-2" },
                        "sandbox": {
                            "containers": [{
                                "name": "web",
                                "image": "docker.io/library/nginx:1.27",
                                "ports": [{ "name": "http", "port": 8080 }],
                                "volumeAttachments": [{ "name": "config", "mountPath": "/etc/web" }],
                            }],
                        },
                    },
                    "networkInterfaces": [{ "network": { "name": "default" } }],
                    "volumes": [{ "name": "config", "configMap": { "name": "web-config" } }],
                },
            },
            "placements": [{
                "name": "us",
                "cityCodes": ["DFW"],
                "scaleSettings": { "minReplicas": 1 },
            }],
        },
    })
}

/// A valid VM Workload: booted from an image-populated disk, with a ConfigMap mounted.
fn vm_workload() -> Value {
    let mut workload = sandbox_workload();
    set(
        &mut workload,
        "/spec/template/spec/runtime",
        json!({
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "virtualMachine": {
                "volumeAttachments": [{ "name": "boot" }, { "name": "config", "mountPath": "/etc/web" }],
                "ports": [{ "name": "ssh", "port": 22 }],
            },
        }),
    );
    set(
        &mut workload,
        "/spec/template/spec/volumes",
        json!([
            { "name": "boot", "disk": { "template": { "spec": {
                "populator": { "image": { "name": "datumcloud/ubuntu-2204-lts" } },
            } } } },
            { "name": "config", "configMap": { "name": "web-config" } },
        ]),
    );
    workload
}

/// A valid Instance, as the control plane creates them.
fn instance() -> Value {
    let workload = sandbox_workload();
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": "web-us-dfw-0" },
        "spec": workload["spec"]["template"]["spec"],
    })
}

/// `value` with `new` at JSON `pointer`, whose parent must exist.
fn set(value: &mut Value, pointer: &str, new: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    match value
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the manifest"))
    {
        Value::Object(object) => drop(object.insert(key.to_owned(), new)),
        Value::Array(array) => array[key.parse::<usize>().expect("an index")] = new,
        other => panic!("{parent} is {other}, not a container"),
    }
}

/// `value` without the field at JSON `pointer`.
fn remove(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    if let Some(Value::Object(object)) = value.pointer_mut(parent) {
        object.remove(key);
    }
}

/// `base` with each `(pointer, value)` set, as a manifest.
fn with(mut base: Value, changes: &[(&str, Value)]) -> String {
    for (pointer, new) in changes {
        set(&mut base, pointer, new.clone());
    }
    base.to_string()
}

const PLACEMENT: &str = "/spec/placements/0";
const SCALE: &str = "/spec/placements/0/scaleSettings";
const CONTAINER: &str = "/spec/template/spec/runtime/sandbox/containers/0";

fn autoscaling(min: i32, max: i32) -> Value {
    json!({
        "minReplicas": min,
        "maxReplicas": max,
        "metrics": [{ "resource": { "name": "cpu", "target": { "averageUtilization": 70 } } }],
    })
}

// ---------------------------------------------------------------------------------------
// Accepted

#[tokio::test]
async fn upstream_compute_samples_create_unchanged() {
    let env = common::env().await;
    for sample in [
        "compute_v1alpha_workload-sandbox.yaml",
        "compute_v1alpha_workload-vm.yaml",
        "kong-gateway.yaml",
        "compute_v1alpha_workloaddeployment.yaml",
    ] {
        let manifest = std::fs::read_to_string(common::upstream(&format!("samples/{sample}")))
            .expect("sample");
        env.create(&manifest)
            .await
            .unwrap_or_else(|e| panic!("{sample}: {e}"));
    }
}

#[tokio::test]
async fn defaults_are_filled_in() {
    let env = common::env().await;
    let created = env
        .create(&vm_workload().to_string())
        .await
        .expect("created");
    let spec = &created[0]["spec"];
    assert_eq!(
        spec["placements"][0]["scaleSettings"]["instanceManagementPolicy"],
        "OrderedReady"
    );
    assert_eq!(
        spec["template"]["spec"]["volumes"][0]["disk"]["template"]["spec"]["type"],
        "pd-standard"
    );
}

#[tokio::test]
async fn kong_gateways_removed_gateway_field_is_kept_as_written() {
    let env = common::env().await;
    let manifest =
        std::fs::read_to_string(common::upstream("samples/kong-gateway.yaml")).expect("sample");
    let created = env.create(&manifest).await.expect("created");
    let gateway = &created[1]["spec"]["gateway"];
    assert_eq!(
        gateway["template"]["spec"]["gatewayClassName"],
        "datum-external-global-proxy"
    );
    assert_eq!(
        gateway["tcpRoutes"][0]["rules"][0]["backendRefs"][0]["name"],
        "http"
    );
}

#[tokio::test]
async fn placements_choose_locations_by_city_selector_or_name() {
    let env = common::env().await;
    let by_selector = json!({
        "name": "by-selector",
        "locationSelector": { "matchExpressions": [
            { "key": "topology.datum.net/city-code", "operator": "In", "values": ["DFW", "LHR"] },
        ] },
        "scaleSettings": { "minReplicas": 2, "instanceManagementPolicy": "Parallel" },
    });
    let by_name = json!({
        "name": "by-name",
        "locations": [{ "name": "gcp-us-south1-a" }],
        "scaleSettings": autoscaling(1, 5),
    });
    let by_city = sandbox_workload()["spec"]["placements"][0].clone();
    let manifest = with(
        sandbox_workload(),
        &[("/spec/placements", json!([by_city, by_selector, by_name]))],
    );
    let created = env.create(&manifest).await.expect("created");
    assert_eq!(
        created[0]["spec"]["placements"][1]["scaleSettings"]["instanceManagementPolicy"],
        "Parallel"
    );
}

#[tokio::test]
async fn autoscaling_on_memory_with_each_target_kind() {
    let env = common::env().await;
    let metrics = json!([
        { "resource": { "name": "memory", "target": { "averageValue": "512Mi" } } },
        { "resource": { "name": "cpu", "target": { "value": "2" } } },
        { "resource": { "name": "cpu", "target": { "averageUtilization": 60 } } },
    ]);
    let manifest = with(
        sandbox_workload(),
        &[(
            SCALE,
            json!({ "minReplicas": 3, "maxReplicas": 3, "metrics": metrics }),
        )],
    );
    env.create(&manifest)
        .await
        .expect("maxReplicas equal to minReplicas, three metrics");
}

#[tokio::test]
async fn newer_container_and_runtime_fields_are_accepted() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[
            ("/spec/template/spec/runtime/class", json!("unikraft")),
            ("/spec/template/spec/runtime/resources", json!({})),
            (&format!("{CONTAINER}/command"), json!(["/bin/web"])),
            (&format!("{CONTAINER}/args"), json!(["--port", "8080"])),
            (
                &format!("{CONTAINER}/env"),
                json!([
                    { "name": "MODE", "value": "production" },
                    { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "web", "key": "token" } } },
                ]),
            ),
            (
                &format!("{CONTAINER}/envFrom"),
                json!([
                    { "prefix": "CFG_", "configMapRef": { "name": "web-config" } },
                    { "secretRef": { "name": "web", "optional": true } },
                ]),
            ),
        ],
    );
    let created = env.create(&manifest).await.expect("created");
    assert_eq!(
        created[0]["spec"]["template"]["spec"]["runtime"]["class"],
        "unikraft"
    );
}

#[tokio::test]
async fn instances_read_back_with_upstreams_pending_conditions() {
    let env = common::env().await;
    let created = env.create(&instance().to_string()).await.expect("created");
    let conditions = created[0]["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let summary: Vec<_> = conditions
        .iter()
        .map(|c| {
            (
                c["type"].clone(),
                c["status"].clone(),
                c["reason"].clone(),
                c["lastTransitionTime"].clone(),
            )
        })
        .collect();
    let pending = |type_: &str| {
        (
            json!(type_),
            json!("Unknown"),
            json!("Pending"),
            json!("1970-01-01T00:00:00Z"),
        )
    };
    assert_eq!(
        summary,
        [pending("Programmed"), pending("Running"), pending("Ready")]
    );
}

#[tokio::test]
async fn deployments_and_instances_may_come_without_spec() {
    let env = common::env().await;
    for kind in ["Instance", "WorkloadDeployment"] {
        let manifest = format!(
            "apiVersion: compute.datumapis.com/v1alpha\nkind: {kind}\nmetadata:\n  name: bare\nspec:\n"
        );
        env.create(&manifest)
            .await
            .unwrap_or_else(|e| panic!("create a {kind} with a null spec: {e}"));
        // Server-side apply keeps the null rather than dropping it.
        env.apply(&manifest)
            .await
            .unwrap_or_else(|e| panic!("apply a {kind} with a null spec: {e}"));
    }
}

#[tokio::test]
async fn deployments_scale_through_the_scale_subresource() {
    let env = common::env().await;
    let workload = sandbox_workload();
    let deployment = json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "WorkloadDeployment",
        "metadata": { "name": "web-us-dfw" },
        "spec": {
            "workloadRef": { "name": "web", "uid": "1234" },
            "placementName": "us",
            "locationRef": { "name": "gcp-us-south1-a" },
            "replicas": 1,
            "template": workload["spec"]["template"],
            "scaleSettings": autoscaling(1, 4),
        },
    });
    env.create(&deployment.to_string()).await.expect("created");

    let api: Api<WorkloadDeployment> = Api::namespaced(env.client.clone(), &env.namespace);
    let status = json!({ "status": {
        "replicas": 1, "currentReplicas": 1, "desiredReplicas": 1, "readyReplicas": 1,
        "selector": format!("{}=1234", labels::WORKLOAD_DEPLOYMENT_UID),
    } });
    api.patch_status(
        "web-us-dfw",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .expect("status written");

    let scale = api.get_scale("web-us-dfw").await.expect("scale readable");
    assert_eq!(scale.status.as_ref().map(|s| s.replicas), Some(1));
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some("compute.datumapis.com/workload-deployment-uid=1234")
    );

    let to_three = json!({ "spec": { "replicas": 3 } });
    api.patch_scale(
        "web-us-dfw",
        &PatchParams::default(),
        &Patch::Merge(&to_three),
    )
    .await
    .expect("scaled");
    let scaled = api.get("web-us-dfw").await.expect("readable");
    assert_eq!(scaled.spec.replicas, Some(3));
}

// ---------------------------------------------------------------------------------------
// Rejected on create: runtime and volumes

#[tokio::test]
async fn rejects_two_runtimes() {
    let env = common::env().await;
    let vm = vm_workload()["spec"]["template"]["spec"]["runtime"]["virtualMachine"].clone();
    let manifest = with(
        sandbox_workload(),
        &[("/spec/template/spec/runtime/virtualMachine", vm)],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.virtualMachine: Forbidden",
            "an instance has exactly one runtime, sandbox or virtualMachine",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_no_runtime() {
    let env = common::env().await;
    let mut workload = sandbox_workload();
    remove(&mut workload, "/spec/template/spec/runtime/sandbox");
    env.assert_rejected(
        &workload.to_string(),
        &[
            "spec.template.spec.runtime: Required value",
            "an instance needs exactly one runtime: set sandbox or virtualMachine",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_volume_with_two_sources() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(
            "/spec/template/spec/volumes/0/secret",
            json!({ "secretName": "web" }),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.volumes[0]: Forbidden",
            "may not specify more than 1 volume source",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_volume_without_source() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[("/spec/template/spec/volumes/0", json!({ "name": "config" }))],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.volumes[0]: Required value",
            "must specify a volume source: one of disk, configMap or secret",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_container_attaching_an_unknown_volume() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(
            &format!("{CONTAINER}/volumeAttachments/0/name"),
            json!("data"),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.sandbox.containers",
            "every volumeAttachments[].name of a container must name one of the instance's volumes",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_vm_attaching_an_unknown_volume() {
    let env = common::env().await;
    let manifest = with(
        vm_workload(),
        &[(
            "/spec/template/spec/runtime/virtualMachine/volumeAttachments/1/name",
            json!("data"),
        )],
    );
    env.assert_rejected(&manifest, &[
        "spec.template.spec.runtime.virtualMachine.volumeAttachments",
        "every volumeAttachments[].name of a virtual machine must name one of the instance's volumes",
    ])
    .await;
}

#[tokio::test]
async fn rejects_a_vm_booting_from_a_config_map() {
    let env = common::env().await;
    let manifest = with(
        vm_workload(),
        &[(
            "/spec/template/spec/runtime/virtualMachine/volumeAttachments",
            json!([{ "name": "config" }, { "name": "boot" }]),
        )],
    );
    env.assert_rejected(&manifest, &[
        "spec.template.spec.runtime.virtualMachine.volumeAttachments",
        "the first volume attachment of a virtual machine is its boot disk and must name a disk volume",
    ])
    .await;
}

// ---------------------------------------------------------------------------------------
// Rejected on create: names and ports

#[tokio::test]
async fn rejects_a_placement_name_that_is_no_dns_label() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(&format!("{PLACEMENT}/name"), json!("US_South"))],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].name",
            "placement name must be a DNS label",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_container_name_that_is_no_dns_label() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(&format!("{CONTAINER}/name"), json!("-web"))],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.sandbox.containers[0].name",
            "container name must be a DNS label",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_volume_name_that_is_no_dns_label() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[
            ("/spec/template/spec/volumes/0/name", json!("Config")),
            (
                &format!("{CONTAINER}/volumeAttachments/0/name"),
                json!("Config"),
            ),
        ],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.volumes[0].name",
            "volume name must be a DNS label",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_network_name_that_is_no_dns_label() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(
            "/spec/template/spec/networkInterfaces/0/network/name",
            json!("default.net"),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.networkInterfaces[0].network.name",
            "network name must be a DNS label",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_name_longer_than_a_dns_label() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(&format!("{PLACEMENT}/name"), json!("a".repeat(64)))],
    );
    env.assert_rejected(&manifest, &["spec.placements[0].name", "Too long", "63"])
        .await;
}

#[tokio::test]
async fn rejects_ports_out_of_range() {
    let env = common::env().await;
    for (port, bound) in [
        (0, "greater than or equal to 1"),
        (65536, "less than or equal to 65535"),
    ] {
        let manifest = with(
            sandbox_workload(),
            &[(&format!("{CONTAINER}/ports/0/port"), json!(port))],
        );
        env.assert_rejected(
            &manifest,
            &[
                "spec.template.spec.runtime.sandbox.containers[0].ports[0].port",
                bound,
            ],
        )
        .await;
    }
    let manifest = with(
        vm_workload(),
        &[(
            "/spec/template/spec/runtime/virtualMachine/ports/0/port",
            json!(70000),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.virtualMachine.ports[0].port",
            "65535",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_port_names_that_are_no_iana_service_names() {
    let env = common::env().await;
    for name in ["HTTP", "web--admin", "-web", "web-", "8080", "web_admin"] {
        let manifest = with(
            sandbox_workload(),
            &[(&format!("{CONTAINER}/ports/0/name"), json!(name))],
        );
        env.assert_rejected(
            &manifest,
            &[
                "spec.template.spec.runtime.sandbox.containers[0].ports[0].name",
                "port name must be an IANA service name",
            ],
        )
        .await;
    }
    let manifest = with(
        sandbox_workload(),
        &[(
            &format!("{CONTAINER}/ports/0/name"),
            json!("a-very-long-name"),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.sandbox.containers[0].ports[0].name",
            "Too long",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_duplicate_container_names() {
    let env = common::env().await;
    let container =
        sandbox_workload()["spec"]["template"]["spec"]["runtime"]["sandbox"]["containers"][0]
            .clone();
    let manifest = with(
        sandbox_workload(),
        &[(
            "/spec/template/spec/runtime/sandbox/containers",
            json!([container.clone(), container]),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.sandbox.containers[1]",
            "Duplicate value",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Rejected on create: placements and scaling

#[tokio::test]
async fn rejects_a_placement_without_locations() {
    let env = common::env().await;
    let mut workload = sandbox_workload();
    remove(&mut workload, "/spec/placements/0/cityCodes");
    env.assert_rejected(&workload.to_string(), &[
        "spec.placements[0]",
        "a placement must choose its locations in exactly one way: set one of cityCodes, locationSelector or locations",
    ])
    .await;
}

#[tokio::test]
async fn rejects_combined_location_choices() {
    let env = common::env().await;
    let selector = json!({ "matchLabels": { "topology.datum.net/city-code": "DFW" } });
    for (field, value) in [
        ("locations", json!([{ "name": "gcp-us-south1-a" }])),
        ("locationSelector", selector),
    ] {
        let manifest = with(
            sandbox_workload(),
            &[(&format!("{PLACEMENT}/{field}"), value)],
        );
        env.assert_rejected(
            &manifest,
            &[
                "spec.placements[0]",
                "choose its locations in exactly one way",
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn rejects_empty_location_choices() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(&format!("{PLACEMENT}/cityCodes"), json!([]))],
    );
    env.assert_rejected(
        &manifest,
        &["spec.placements[0].cityCodes", "at least 1 items"],
    )
    .await;

    let mut workload = sandbox_workload();
    remove(&mut workload, "/spec/placements/0/cityCodes");
    let manifest = with(
        workload,
        &[(
            &format!("{PLACEMENT}/locationSelector"),
            json!({ "matchLabels": {} }),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].locationSelector",
            "locationSelector must not be empty: an empty selector would select every location",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_min_replicas_outside_0_to_1000() {
    let env = common::env().await;
    for (min, bound) in [
        (-1, "greater than or equal to 0"),
        (1001, "less than or equal to 1000"),
    ] {
        let manifest = with(
            sandbox_workload(),
            &[(&format!("{SCALE}/minReplicas"), json!(min))],
        );
        env.assert_rejected(
            &manifest,
            &["spec.placements[0].scaleSettings.minReplicas", bound],
        )
        .await;
    }
}

#[tokio::test]
async fn rejects_max_replicas_below_min_replicas() {
    let env = common::env().await;
    let manifest = with(sandbox_workload(), &[(SCALE, autoscaling(3, 2))]);
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.maxReplicas",
            "maxReplicas must be greater than or equal to minReplicas",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_max_replicas_without_metrics() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(SCALE, json!({ "minReplicas": 1, "maxReplicas": 3 }))],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.metrics: Required value",
            "metrics are required when maxReplicas is set",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_metrics_without_max_replicas() {
    let env = common::env().await;
    let mut scale = autoscaling(1, 3);
    remove(&mut scale, "/maxReplicas");
    let manifest = with(sandbox_workload(), &[(SCALE, scale)]);
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.metrics: Forbidden",
            "metrics may only be set together with maxReplicas",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_metrics_other_than_cpu_and_memory() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[
            (SCALE, autoscaling(1, 3)),
            (&format!("{SCALE}/metrics/0/resource/name"), json!("gpu")),
        ],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.metrics[0].resource.name",
            r#"Unsupported value: "gpu""#,
            r#""cpu", "memory""#,
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_metric_without_resource() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[
            (SCALE, autoscaling(1, 3)),
            (&format!("{SCALE}/metrics/0"), json!({})),
        ],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.metrics[0].resource: Required value",
            "only resource metrics (cpu or memory) are supported",
        ],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_metric_target_with_two_or_no_values() {
    let env = common::env().await;
    for target in [
        json!({ "averageUtilization": 70, "averageValue": "1" }),
        json!({}),
    ] {
        let manifest = with(
            sandbox_workload(),
            &[
                (SCALE, autoscaling(1, 3)),
                (&format!("{SCALE}/metrics/0/resource/target"), target),
            ],
        );
        env.assert_rejected(
            &manifest,
            &[
                "spec.placements[0].scaleSettings.metrics[0].resource.target",
                "exactly one of value, averageValue or averageUtilization must be set",
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn rejects_an_unknown_instance_management_policy() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(
            &format!("{SCALE}/instanceManagementPolicy"),
            json!("AllAtOnce"),
        )],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.instanceManagementPolicy",
            r#"Unsupported value: "AllAtOnce""#,
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Rejected on create: structure

#[tokio::test]
async fn rejects_an_unknown_field() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(&format!("{CONTAINER}/imag"), json!("nginx"))],
    );
    env.assert_rejected(
        &manifest,
        &[r#"unknown field "spec.template.spec.runtime.sandbox.containers[0].imag""#],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_wrong_type() {
    let env = common::env().await;
    let manifest = with(
        sandbox_workload(),
        &[(&format!("{SCALE}/minReplicas"), json!("two"))],
    );
    env.assert_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.minReplicas",
            "must be of type integer",
        ],
    )
    .await;
}

#[tokio::test]
async fn the_same_rules_hold_on_instances_and_deployments() {
    let env = common::env().await;
    let vm = vm_workload()["spec"]["template"]["spec"]["runtime"]["virtualMachine"].clone();
    let manifest = with(instance(), &[("/spec/runtime/virtualMachine", vm)]);
    env.assert_rejected(
        &manifest,
        &[
            "spec.runtime.virtualMachine: Forbidden",
            "exactly one runtime",
        ],
    )
    .await;

    let workload = sandbox_workload();
    let deployment = json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "WorkloadDeployment",
        "metadata": { "name": "web-us-dfw" },
        "spec": {
            "workloadRef": { "name": "web", "uid": "1234" },
            "placementName": "us",
            "replicas": -1,
            "template": workload["spec"]["template"],
            "scaleSettings": { "minReplicas": 1, "maxReplicas": 2 },
        },
    });
    env.assert_rejected(
        &deployment.to_string(),
        &[
            "spec.replicas",
            "greater than or equal to 0",
            "spec.scaleSettings.metrics: Required value",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Rejected on update: the rules hold for every change, not only on create

#[tokio::test]
async fn updates_are_validated_like_creates() {
    let env = common::env().await;
    env.create(&sandbox_workload().to_string())
        .await
        .expect("created");
    env.apply(&sandbox_workload().to_string())
        .await
        .expect("an unchanged apply passes");

    let manifest = with(sandbox_workload(), &[(SCALE, autoscaling(4, 2))]);
    env.assert_update_rejected(
        &manifest,
        &[
            "spec.placements[0].scaleSettings.maxReplicas",
            "maxReplicas must be greater than or equal to minReplicas",
        ],
    )
    .await;

    let manifest = with(
        sandbox_workload(),
        &[(&format!("{PLACEMENT}/name"), json!("US"))],
    );
    env.assert_update_rejected(
        &manifest,
        &[
            "spec.placements[0].name",
            "placement name must be a DNS label",
        ],
    )
    .await;

    let manifest = with(
        sandbox_workload(),
        &[(
            &format!("{CONTAINER}/volumeAttachments/0/name"),
            json!("data"),
        )],
    );
    env.assert_update_rejected(
        &manifest,
        &[
            "spec.template.spec.runtime.sandbox.containers",
            "must name one of the instance's volumes",
        ],
    )
    .await;

    // What passes on create passes on update too.
    let manifest = with(sandbox_workload(), &[(SCALE, autoscaling(2, 6))]);
    env.apply(&manifest).await.expect("a valid change applies");
}

#[tokio::test]
async fn instance_updates_are_validated() {
    let env = common::env().await;
    env.create(&instance().to_string()).await.expect("created");
    let manifest = with(
        instance(),
        &[("/spec/volumes/0/secret", json!({ "secretName": "web" }))],
    );
    env.assert_update_rejected(
        &manifest,
        &[
            "spec.volumes[0]: Forbidden",
            "may not specify more than 1 volume source",
        ],
    )
    .await;
}
