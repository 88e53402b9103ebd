//! Workloads on the GCP provider with a real control plane: a sandbox's secret volume
//! travels through Secret Manager (and the VM's own boot script, run against the fake's
//! metadata server, gets the files) without a value in metadata; and the seed example from
//! the product docs, through the control plane's controllers, becomes 3 Compute Engine
//! instances in us-central1 whose addresses and IDs land in the Instances' status — and
//! deleting everything leaves the fake as it started.
//!
//! Its own test binary: the seed selects every `gcp` Location in `us-central1`, and
//! Locations are cluster-wide.

mod common;

use std::time::Duration;

use base64::Engine as _;
use datum_api::compute::{Instance, InstanceSpec};
use datum_gcp_fake::compute::DEFAULT_SERVICE_ACCOUNT;
use datum_provider::conformance::{Behaviour, Harness};
use datum_provider::{ExternalClient, ExternalResource, Provider};
use datum_provider_gcp::cloud_init::FETCH_VOLUMES;
use datum_runtime::shutdown::CancellationToken;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use common::PROJECT;

/// Bound on each wait, against a hung test; waits end as soon as the state is reached.
const PATIENCE: Duration = Duration::from_secs(60);

async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn create<K>(api: &Api<K>, value: Value) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created")
}

const SECRET_VALUE: &str = "s3cr3t-value-never-in-metadata";

fn metadata_item(instance: &Value, key: &str) -> Option<String> {
    instance["metadata"]["items"]
        .as_array()?
        .iter()
        .find(|i| i["key"] == key)?["value"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_sandbox_secret_volume_reaches_the_vm_through_secret_manager_only() {
    let h = common::harness().await;
    let ns = h.fresh_namespace("volumes").await;
    create(
        &Api::<Secret>::namespaced(h.client.clone(), &ns),
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "app-secret" },
                "stringData": { "password": SECRET_VALUE } }),
    )
    .await;
    create(
        &Api::<ConfigMap>::namespaced(h.client.clone(), &ns),
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "app-config" },
                "data": { "some": "value" } }),
    )
    .await;
    let provider = datum_provider_gcp::GcpProvider {
        kube: Some(h.client.clone()),
        ..common::provider()
    };
    let config = common::config("direct", &h.fake.healthy);
    let mut credentials = datum_provider::Credentials::default();
    let reference = config.spec.credentials.secret_ref.clone().expect("a ref");
    credentials.insert(&reference, common::key_file(&h.fake.healthy));
    let compute = provider
        .connect(&config, &credentials)
        .await
        .expect("connects");

    let spec: InstanceSpec = serde_json::from_value(json!({
        "runtime": {
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "sandbox": { "containers": [{
                "name": "app", "image": "docker.io/netdata/netdata:latest",
                "volumeAttachments": [
                    { "name": "secret", "mountPath": "/secret" },
                    { "name": "configmap", "mountPath": "/configmap" },
                ],
            }]},
        },
        "networkInterfaces": [{ "network": { "name": "default" } }],
        "volumes": [
            { "name": "secret", "secret": { "secretName": "app-secret" } },
            { "name": "configmap", "configMap": { "name": "app-config" } },
        ],
        "location": { "name": "loc" },
    }))
    .expect("a spec");
    let settings = common::location_settings();
    let annotations = std::collections::BTreeMap::new();
    let r = ExternalResource::<Instance> {
        namespace: &ns,
        name: "app-0",
        uid: "sb1",
        external_name: "datum-sb1".to_owned(),
        id: None,
        spec: &spec,
        location_settings: &settings,
        assigned: vec![],
        annotations: &annotations,
        labels: &annotations,
        network_policies: Vec::new(),
    };
    let id = compute.create(&r).await.expect("created");
    let instance = h
        .fake
        .fake
        .with_compute(|c| c.resource(&id))
        .expect("exists");
    let template = instance["labels"]["datum-template"]
        .as_str()
        .expect("a template")
        .to_owned();

    // Secret Manager holds the values; the VM's service account may read exactly those.
    let secret_name = format!("projects/{PROJECT}/secrets/{template}-secret");
    let payload = h
        .fake
        .fake
        .with_secrets(|s| s.latest(&secret_name))
        .expect("the secret volume is in Secret Manager");
    let payload: Value = serde_json::from_slice(&payload).expect("JSON");
    let password = base64::engine::general_purpose::STANDARD
        .decode(payload["files"]["password"].as_str().expect("a file"))
        .expect("base64");
    assert_eq!(password, SECRET_VALUE.as_bytes());
    let policy = h
        .fake
        .fake
        .with_secrets(|s| s.policy(&secret_name))
        .expect("a policy");
    assert_eq!(
        policy["bindings"][0],
        json!({ "role": "roles/secretmanager.secretAccessor",
                "members": [format!("serviceAccount:{DEFAULT_SERVICE_ACCOUNT}")] })
    );
    assert_eq!(
        instance["serviceAccounts"][0]["email"],
        DEFAULT_SERVICE_ACCOUNT
    );

    // Metadata names the secrets, never a value (nor its base64).
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET_VALUE);
    let stored_template = h
        .fake
        .fake
        .with_compute(|c| {
            c.resource(&format!(
                "projects/{PROJECT}/global/instanceTemplates/{template}"
            ))
        })
        .expect("the template");
    for text in [instance.to_string(), stored_template.to_string()] {
        assert!(!text.contains(SECRET_VALUE) && !text.contains(&encoded));
    }
    let references: Value =
        serde_json::from_str(&metadata_item(&instance, "datum-volumes").expect("datum-volumes"))
            .expect("JSON");
    assert_eq!(references[0]["secret"], secret_name.as_str());
    assert_eq!(references[0]["dirs"][0], "/var/lib/datum/volumes/secret");
    let user_data = metadata_item(&instance, "user-data").expect("user-data");
    let config: Value =
        serde_json::from_str(user_data.trim_start_matches("#cloud-config\n")).expect("JSON");
    let pod = base64::engine::general_purpose::STANDARD
        .decode(config["write_files"][0]["content"].as_str().expect("pod"))
        .expect("base64");
    let pod: Value = serde_json::from_slice(&pod).expect("a pod");
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][0],
        json!({ "name": "secret", "mountPath": "/secret", "readOnly": true })
    );
    let commands = config["runcmd"].to_string();
    assert!(
        commands.find("fetch-volumes").unwrap_or(usize::MAX)
            < commands.find("systemctl start kubelet").unwrap_or(0),
        "files exist before the pod starts: {commands}"
    );

    // The VM's boot script, run against the fake's metadata server as this instance, gets
    // the files with the VM's own token.
    h.fake.fake.serve_metadata_of(&id);
    let root = std::env::temp_dir().join(format!("datum-gcp-volumes-{ns}"));
    let output = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(FETCH_VOLUMES)
        .env(
            "DATUM_METADATA",
            format!("{}/computeMetadata/v1/", h.fake.healthy.endpoint),
        )
        .env(
            "DATUM_SECRET_MANAGER",
            format!("{}/v1/", h.fake.healthy.endpoint),
        )
        .env("DATUM_ROOT", &root)
        .output()
        .await
        .expect("python3 runs");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        !log.contains(SECRET_VALUE),
        "the script never prints a value"
    );
    let file = root.join("var/lib/datum/volumes/secret/password");
    assert_eq!(
        std::fs::read(&file).expect("the secret file"),
        SECRET_VALUE.as_bytes()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777,
        0o400
    );
    assert_eq!(
        std::fs::read(root.join("var/lib/datum/volumes/configmap/some")).expect("configMap file"),
        b"value"
    );
    let _ = std::fs::remove_dir_all(&root);

    // Deleting the instance takes its template and secrets along.
    ExternalClient::<Instance>::delete(&compute, &id, &r)
        .await
        .expect("deleted");
    assert!(h.fake.fake.with_secrets(|s| s.names()).is_empty());
    assert_eq!(h.fake.names(), vec!["default".to_owned()]);
}

fn condition_true(instance: &Instance, kind: &str) -> bool {
    instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| datum_api::conditions::is_true(c, kind))
}

#[tokio::test]
async fn the_seed_example_runs_on_gcp_in_us_central1_and_deleting_it_empties_the_fake() {
    let h = common::harness().await;
    let client = h.client.clone();
    let ns = h.fresh_namespace("seed").await;

    // Platform side: a GCP Location in us-central1 and a ProviderConfig for the fake.
    let location = format!("{ns}-gcp");
    create(
        &Api::<datum_api::networking::Location>::all(client.clone()),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": { "name": location },
            "spec": {
                "locationClassName": "datum-managed",
                "topology": { "topology.datum.net/city-code": "DFW" },
                "provider": { "gcp": { "projectId": PROJECT, "region": "us-central1", "zone": "us-central1-a" } },
            },
        }),
    )
    .await;
    let config_name = format!("{ns}-cfg");
    let mut config = h.config(&config_name, Behaviour::Healthy).await;
    config.meta_mut().managed_fields = None;
    Api::<datum_api::provider_config::gcp::ProviderConfig>::all(client.clone())
        .patch(
            &config_name,
            &PatchParams::apply("gcp-tests").force(),
            &Patch::Apply(&config),
        )
        .await
        .expect("the ProviderConfig");
    // GCP subnetworks are IPv4 here: the Network asks IPAM for IPv4.
    create(
        &Api::<datum_api::networking::Network>::namespaced(client.clone(), &ns),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
            "metadata": { "name": "default" },
            "spec": { "ipam": { "mode": "Auto" }, "ipFamilies": ["IPv4"] },
        }),
    )
    .await;

    // The control plane and the provider, scoped to this namespace.
    let stop = CancellationToken::new();
    let settings = datum_control::Settings {
        namespace: Some(ns.clone()),
        resync: Duration::from_secs(5),
        retry: Duration::from_millis(250),
        ..datum_control::Settings::default()
    };
    let control = tokio::spawn(datum_control::run(
        client.clone(),
        settings,
        stop.clone().cancelled_owned(),
    ));
    let mut options = datum_provider::Options::new(config_name.clone());
    options.namespace = Some(ns.clone());
    options.resync = Duration::from_secs(2);
    options.progress_requeue = Duration::from_millis(250);
    options.config_poll = Duration::from_millis(500);
    options.backoff_max = Duration::from_secs(2);
    let provider = datum_provider_gcp::GcpProvider {
        kube: Some(client.clone()),
        ..common::provider()
    };
    let runtime = tokio::spawn(datum_provider::run(
        provider,
        client.clone(),
        options,
        stop.clone(),
    ));

    // The seed, read in place, in this namespace.
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/upstream/samples/seed-workload.yaml"
    ))
    .expect("seed-workload.yaml is readable");
    let mut seed: datum_api::short_form::Workload =
        serde_yaml::from_str(&yaml).expect("a short-form Workload");
    seed.metadata.namespace = Some(ns.clone());
    let seeds = Api::<datum_api::short_form::Workload>::namespaced(client.clone(), &ns);
    seeds
        .create(&PostParams::default(), &seed)
        .await
        .expect("the seed applies");

    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    let ready = eventually("3 Ready Instances", || async {
        let list = instances.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 3 && list.iter().all(|i| condition_true(i, "Ready"))).then_some(list)
    })
    .await;

    for instance in &ready {
        let status = instance.status.clone().expect("status");
        let uid = instance.uid().expect("a uid");
        let path = format!("projects/{PROJECT}/zones/us-central1-a/instances/datum-{uid}");
        assert_eq!(
            status.provider_id.as_deref(),
            Some(format!("gce://{PROJECT}/us-central1-a/datum-{uid}").as_str())
        );
        let gce = h
            .fake
            .fake
            .with_compute(|c| c.resource(&path))
            .unwrap_or_else(|| panic!("{path} exists in the fake"));
        assert_eq!(
            gce["machineType"],
            "zones/us-central1-a/machineTypes/n2-standard-2"
        );
        assert_eq!(
            gce["disks"][0]["initializeParams"]["sourceImage"],
            "projects/cos-cloud/global/images/cos-stable-117-18613-0-79"
        );
        let ip = status
            .network_interfaces
            .as_ref()
            .and_then(|n| n.first())
            .and_then(|n| n.assignments.as_ref())
            .and_then(|a| a.network_ip.clone())
            .expect("an address in status");
        assert_eq!(gce["networkInterfaces"][0]["networkIP"], ip.as_str());
        assert!(
            ip.parse::<std::net::Ipv4Addr>().is_ok(),
            "{ip} is IPAM's IPv4 address"
        );
        assert_eq!(gce["labels"]["datum-name"], instance.name_any().as_str());
        let user_data = metadata_item(&gce, "user-data").expect("user-data");
        let config: Value = serde_json::from_str(user_data.trim_start_matches("#cloud-config\n"))
            .expect("cloud-config JSON");
        let pod = base64::engine::general_purpose::STANDARD
            .decode(config["write_files"][0]["content"].as_str().expect("pod"))
            .expect("base64");
        assert!(
            String::from_utf8_lossy(&pod).contains("gcr.io/my-project/my-app:v1.0"),
            "the container runs on the COS host"
        );
    }
    // The VPC and the subnetwork with IPAM's CIDR.
    let subnetworks = h.fake.fake.with_compute(|c| {
        c.names()
            .into_iter()
            .filter_map(|n| {
                c.resource(&format!(
                    "projects/{PROJECT}/regions/us-central1/subnetworks/{n}"
                ))
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(subnetworks.len(), 1, "one subnetwork");
    let subnets = Api::<datum_api::networking::Subnet>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("Subnets")
        .items;
    let cidr = format!(
        "{}/{}",
        subnets[0].spec.start_address, subnets[0].spec.prefix_length
    );
    assert_eq!(subnetworks[0]["ipCidrRange"], cidr.as_str());
    let templates = h
        .fake
        .names()
        .into_iter()
        .filter(|n| n.starts_with("datum-t-"))
        .count();
    assert_eq!(templates, 1, "one template for the WorkloadDeployment");

    // Deleting everything leaves the fake as it started.
    seeds
        .delete("my-app", &DeleteParams::default())
        .await
        .expect("the seed deletes");
    eventually("the Instances are gone", || async {
        instances
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    Api::<datum_api::networking::Network>::namespaced(client.clone(), &ns)
        .delete("default", &DeleteParams::default())
        .await
        .expect("the Network deletes");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let names = h.fake.names();
        let secrets = h.fake.fake.with_secrets(|s| s.names());
        if names == vec!["default".to_owned()] && secrets.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let contexts = Api::<datum_api::networking::NetworkContext>::namespaced(client.clone(), &ns)
                .list(&ListParams::default())
                .await
                .map(|l| l.items.iter().map(|c| json!({"name": c.name_any(), "status": c.status, "fin": c.finalizers()})).collect::<Vec<_>>())
                .unwrap_or_default();
            let subnets = Api::<datum_api::networking::Subnet>::namespaced(client.clone(), &ns)
                .list(&ListParams::default())
                .await
                .map(|l| l.items.iter().map(|c| json!({"name": c.name_any(), "status": c.status, "fin": c.finalizers()})).collect::<Vec<_>>())
                .unwrap_or_default();
            let log = h.fake.fake.with_compute(|c| c.log.clone());
            panic!(
                "the fake still holds {names:?} and secrets {secrets:?}; NetworkContexts: {contexts:?}; Subnets: {subnets:?}; log tail: {:?}",
                &log[log.len().saturating_sub(8)..]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    stop.cancel();
    let _ = control.await;
    let _ = runtime.await;
}
