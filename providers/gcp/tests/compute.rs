//! Focused tests of the Compute Engine client against the fake, without Kubernetes:
//! operations polled to `DONE`, adoption on `409`, `404` on delete, quota errors quoted,
//! no secret in instance metadata, and lists (Compute Engine's and Secret Manager's) read to
//! their last page.

mod common;

use base64::Engine as _;
use datum_api::compute::{Instance, InstanceSpec};
use datum_api::networking::{NetworkContext, NetworkContextSpec, Subnet, SubnetSpec};
use datum_gcp_fake::InjectedError;
use datum_provider::{ExternalClient, ExternalResource, Observation, PowerState};
use datum_provider_gcp::compute::Compute;
use datum_provider_gcp::compute::health_checks::Plan;
use serde_json::json;

use common::{Fake, PROJECT};

fn context_spec() -> NetworkContextSpec {
    serde_json::from_value(
        json!({ "network": { "name": "net" }, "location": { "name": "loc" }, "mtu": 1500 }),
    )
    .expect("a spec")
}

fn resource<'a, K: datum_provider::managed::ManagedKind>(
    spec: &'a K::Spec,
    settings: &'a serde_json::Value,
    uid: &'a str,
) -> ExternalResource<'a, K> {
    named(spec, settings, uid, "obj")
}

fn named<'a, K: datum_provider::managed::ManagedKind>(
    spec: &'a K::Spec,
    settings: &'a serde_json::Value,
    uid: &'a str,
    name: &'a str,
) -> ExternalResource<'a, K> {
    ExternalResource {
        namespace: "ns",
        name,
        uid,
        external_name: format!("datum-{uid}"),
        id: None,
        spec,
        location_settings: settings,
        assigned: vec![datum_provider::external::AssignedAddresses {
            network_ip: Some("10.128.0.42".into()),
            ..Default::default()
        }],
        annotations: &NO_ANNOTATIONS,
        labels: &NO_ANNOTATIONS,
        network_policies: Vec::new(),
    }
}

static NO_ANNOTATIONS: std::collections::BTreeMap<String, String> =
    std::collections::BTreeMap::new();

fn sandbox_spec() -> InstanceSpec {
    serde_json::from_value(json!({
        "runtime": {
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "sandbox": { "containers": [{
                "name": "app", "image": "nginx:1",
                "env": [
                    { "name": "PLAIN", "value": "visible" },
                    { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "app-secrets", "key": "token" } } },
                ],
            }]},
        },
        "networkInterfaces": [{ "network": { "name": "default" } }],
        "location": { "name": "loc" },
    }))
    .expect("a spec")
}

/// The VPC and subnetwork of NetworkContext `default-loc` (Network `default` in Location
/// `loc`), which an Instance with an IPAM address on Network `default` joins; their paths.
async fn default_network(compute: &Compute, settings: &serde_json::Value) -> (String, String) {
    let context = context_spec();
    let vpc = compute
        .create(&named::<NetworkContext>(
            &context,
            settings,
            "c1",
            "default-loc",
        ))
        .await
        .expect("the VPC");
    let subnet: SubnetSpec = serde_json::from_value(json!({
        "subnetClass": "private", "networkContext": { "name": "default-loc" },
        "location": { "name": "loc" }, "ipFamily": "IPv4",
        "startAddress": "10.128.0.0", "prefixLength": 24,
    }))
    .expect("a spec");
    let subnetwork = compute
        .create(&named::<Subnet>(
            &subnet,
            settings,
            "s1",
            "default-loc-ipv4",
        ))
        .await
        .expect("the subnetwork");
    (vpc, subnetwork)
}

#[tokio::test]
async fn operations_are_polled_to_done_and_the_network_matches_the_context() {
    let fake = Fake::start(4).await;
    let compute = common::connect(&fake.healthy).await;
    let spec = context_spec();
    let settings = common::location_settings();
    let r = resource::<NetworkContext>(&spec, &settings, "u1");
    let id = compute
        .create(&r)
        .await
        .expect("created once the operation is DONE");
    assert_eq!(id, format!("projects/{PROJECT}/global/networks/datum-u1"));
    let network = fake.fake.with_compute(|c| c.resource(&id)).expect("exists");
    assert_eq!(network["autoCreateSubnetworks"], false);
    assert_eq!(network["mtu"], 1500);
    assert_eq!(network["description"], "datum:ns/obj");
    assert!(matches!(
        compute.observe(&r).await,
        Ok(Observation::Exists {
            up_to_date: true,
            ..
        })
    ));
}

#[tokio::test]
async fn a_failed_operation_quotes_googles_quota_message_and_creates_nothing() {
    let fake = Fake::start(2).await;
    let compute = common::connect(&fake.healthy).await;
    let message = "Quota 'NETWORKS' exceeded.  Limit: 5.0 globally.";
    fake.healthy
        .faults
        .fail_next_operation("/networks", InjectedError::quota_exceeded(message));
    let spec = context_spec();
    let settings = common::location_settings();
    let error = compute
        .create(&resource::<NetworkContext>(&spec, &settings, "u2"))
        .await
        .expect_err("the operation failed");
    assert_eq!(error.reason, "QuotaExceeded");
    assert!(error.message.contains(message), "{}", error.message);
    assert!(error.message.contains("backing off"), "{}", error.message);
    assert!(!fake.names().contains(&"datum-u2".to_owned()));
}

#[tokio::test]
async fn synchronous_quota_and_rate_limit_errors_name_their_reason() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let message = "Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1.";
    let settings = common::location_settings();
    default_network(&compute, &settings).await;
    fake.healthy
        .faults
        .fail_next("POST", "/instances", InjectedError::quota_exceeded(message));
    let spec = sandbox_spec();
    let error = compute
        .create(&resource::<Instance>(&spec, &settings, "u3"))
        .await
        .expect_err("quota");
    assert_eq!(error.reason, "QuotaExceeded");
    assert!(error.message.contains(message), "{}", error.message);
    fake.healthy
        .faults
        .fail_next("GET", "/instances/datum-u3", InjectedError::rate_limited());
    let error = compute
        .observe(&resource::<Instance>(&spec, &settings, "u3"))
        .await
        .expect_err("rate limited");
    assert_eq!(error.reason, "RateLimited");
}

#[tokio::test]
async fn an_existing_resource_is_adopted_on_409() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let spec = context_spec();
    let settings = common::location_settings();
    let r = resource::<NetworkContext>(&spec, &settings, "u4");
    let first = compute.create(&r).await.expect("created");
    // A second create — e.g. after a crash lost the ID — meets 409 and adopts.
    fake.fake.with_compute(|c| c.log.clear());
    let second = compute.create(&r).await.expect("adopted");
    assert_eq!(first, second);
    assert_eq!(fake.names().iter().filter(|n| *n == "datum-u4").count(), 1);
}

#[tokio::test]
async fn deleting_what_is_gone_is_success() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let spec = context_spec();
    let settings = common::location_settings();
    let r = resource::<NetworkContext>(&spec, &settings, "u5");
    let id = compute.create(&r).await.expect("created");
    ExternalClient::<NetworkContext>::delete(&compute, &id, &r)
        .await
        .expect("deleted");
    ExternalClient::<NetworkContext>::delete(&compute, &id, &r)
        .await
        .expect("already gone is success");
    assert!(matches!(compute.observe(&r).await, Ok(Observation::Absent)));
}

#[tokio::test]
async fn a_sandbox_runs_on_cos_and_no_secret_reaches_instance_metadata() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let spec = sandbox_spec();
    let settings = common::location_settings();
    default_network(&compute, &settings).await;
    let r = resource::<Instance>(&spec, &settings, "u6");
    let id = compute.create(&r).await.expect("created");
    let instance = fake.fake.with_compute(|c| c.resource(&id)).expect("exists");
    assert!(
        instance["disks"][0]["initializeParams"]["sourceImage"]
            .as_str()
            .is_some_and(|i| i.starts_with("projects/cos-cloud/")),
        "{instance}"
    );
    assert_eq!(instance["labels"]["datum-uid"], "u6");
    assert_eq!(instance["tags"]["items"][0], "datum-u6");
    assert_eq!(
        instance["networkInterfaces"][0]["networkIP"], "10.128.0.42",
        "the IPAM address"
    );
    let text = instance.to_string();
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("ya29."),
        "no credential in the instance"
    );
    let user_data = instance["metadata"]["items"][0]["value"]
        .as_str()
        .expect("user-data");
    let config: serde_json::Value =
        serde_json::from_str(user_data.trim_start_matches("#cloud-config\n"))
            .expect("cloud-config JSON");
    let manifest = base64::engine::general_purpose::STANDARD
        .decode(
            config["write_files"][0]["content"]
                .as_str()
                .expect("content"),
        )
        .expect("base64");
    let manifest = String::from_utf8(manifest).expect("utf-8");
    assert!(
        manifest.contains("visible"),
        "literal env is kept: {manifest}"
    );
    assert!(
        !manifest.contains("TOKEN") && !manifest.contains("app-secrets"),
        "secret references stay out of metadata: {manifest}"
    );
    // The instance boots as it is observed.
    let mut power = PowerState::Starting;
    for _ in 0..3 {
        if let Ok(Observation::Exists { live, .. }) = compute.observe(&r).await {
            power = live.power;
        }
    }
    assert_eq!(power, PowerState::Running);
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_token_endpoint() {
    let fake = Fake::start(1).await;
    // Trust only some other key: the signature no longer verifies.
    let other = datum_gcp_fake::FakeCompute::new(1);
    let listener = other.listen().await.expect("listens");
    other.trust_key(vec![1, 2, 3]);
    let config = common::config("direct", &listener);
    let mut credentials = datum_provider::Credentials::default();
    let reference = datum_api::provider_config::SecretKeyRef {
        namespace: "default".into(),
        name: "direct".into(),
        key: "credentials.json".into(),
    };
    credentials.insert(&reference, common::key_file(&listener));
    let error = datum_provider::Provider::connect(&common::provider(), &config, &credentials)
        .await
        .expect_err("refused");
    assert!(error.0.contains("Invalid JWT Signature"), "{}", error.0);
    assert!(!error.0.contains("PRIVATE KEY"));
    drop(fake);
}

#[tokio::test]
async fn a_vm_joins_its_contexts_vpc_subnetwork_with_firewalls_from_its_policy() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let settings = common::location_settings();
    let (vpc, subnetwork) = default_network(&compute, &settings).await;
    assert_eq!(
        subnetwork,
        format!("projects/{PROJECT}/regions/us-central1/subnetworks/datum-s1")
    );
    let stored = fake
        .fake
        .with_compute(|c| c.resource(&subnetwork))
        .expect("exists");
    assert_eq!(stored["ipCidrRange"], "10.128.0.0/24");

    let spec: InstanceSpec = serde_json::from_value(json!({
        "runtime": {
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "virtualMachine": { "volumeAttachments": [{ "name": "boot" }, { "name": "data" }] },
        },
        "volumes": [
            { "name": "boot", "disk": { "template": { "spec": {
                "type": "pd-ssd", "resources": { "requests": { "storage": "20Gi" } },
                "populator": { "image": { "name": "datumcloud/ubuntu-2204-lts" } } } } } },
            { "name": "data", "disk": { "template": { "spec": {
                "type": "pd-balanced", "resources": { "requests": { "storage": "100Gi" } } } } } },
        ],
        "networkInterfaces": [{
            "network": { "name": "default" },
            "networkPolicy": { "ingress": [{
                "ports": [{ "port": 22 }, { "protocol": "UDP", "port": 5000, "endPort": 5010 }],
                "from": [{ "ipBlock": { "cidr": "192.0.2.0/24" } }],
            }]},
        }],
        "location": { "name": "loc" },
    }))
    .expect("a spec");
    let r = resource::<Instance>(&spec, &settings, "u7");
    let id = compute.create(&r).await.expect("created");
    let instance = fake.fake.with_compute(|c| c.resource(&id)).expect("exists");
    let vpc_link = fake.fake.with_compute(|c| c.resource(&vpc)).expect("vpc")["selfLink"].clone();
    assert_eq!(instance["networkInterfaces"][0]["network"], vpc_link);
    assert_eq!(
        instance["networkInterfaces"][0]["subnetwork"],
        stored["selfLink"]
    );
    assert_eq!(
        instance["machineType"],
        "zones/us-central1-a/machineTypes/n2-standard-2"
    );
    assert_eq!(instance["disks"][0]["boot"], true);
    assert_eq!(
        instance["disks"][0]["initializeParams"]["diskType"],
        "zones/us-central1-a/diskTypes/pd-ssd"
    );
    assert_eq!(instance["disks"][0]["initializeParams"]["diskSizeGb"], "20");
    assert_eq!(
        instance["disks"][1]["initializeParams"]["diskType"],
        "zones/us-central1-a/diskTypes/pd-balanced"
    );
    let rule_path = format!("projects/{PROJECT}/global/firewalls/datum-u7-net-0-0");
    let rule = fake
        .fake
        .with_compute(|c| c.resource(&rule_path))
        .expect("the firewall rule");
    assert_eq!(rule["targetTags"][0], "datum-u7");
    assert_eq!(rule["sourceRanges"][0], "192.0.2.0/24");
    assert_eq!(
        rule["allowed"][0],
        json!({ "IPProtocol": "tcp", "ports": ["22"] })
    );
    assert_eq!(
        rule["allowed"][1],
        json!({ "IPProtocol": "udp", "ports": ["5000-5010"] })
    );
    ExternalClient::<Instance>::delete(&compute, &id, &r)
        .await
        .expect("deleted");
    assert!(
        fake.fake.with_compute(|c| c.resource(&rule_path)).is_none(),
        "its firewall rules go with it"
    );
}

/// The control plane allocates an Instance's address before this provider has made its
/// NetworkContext's VPC; the project's own `default` network is another network, so the
/// create waits for the VPC instead of joining that.
#[tokio::test]
async fn an_instance_with_an_ipam_address_waits_for_its_contexts_vpc() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let settings = common::location_settings();
    let spec = sandbox_spec();
    let r = resource::<Instance>(&spec, &settings, "u8");
    let error = compute.create(&r).await.expect_err("no VPC yet");
    assert_eq!(error.reason, "NetworkNotReady");
    assert!(error.message.contains("default-loc"), "{}", error.message);
    assert!(
        !fake.names().contains(&"datum-u8".to_owned()),
        "nothing is created on the project's network"
    );

    let (vpc, _) = default_network(&compute, &settings).await;
    let id = compute.create(&r).await.expect("created");
    let instance = fake.fake.with_compute(|c| c.resource(&id)).expect("exists");
    let vpc_link = fake.fake.with_compute(|c| c.resource(&vpc)).expect("vpc")["selfLink"].clone();
    assert_eq!(instance["networkInterfaces"][0]["network"], vpc_link);
}

/// The bucket is measured on tokio's virtual clock, not the wall clock: once paused, time
/// only moves when every task waits on a timer, so the elapsed virtual time is exactly the
/// rate limiter's waits, however loaded the machine is.
#[tokio::test(flavor = "current_thread")]
async fn calls_to_one_project_share_its_rate_limit() {
    let fake = Fake::start(1).await;
    let mut config = common::config("direct", &fake.healthy);
    config.spec.rate_limit.requests_per_second = 10;
    config.spec.rate_limit.burst = 1;
    let mut credentials = datum_provider::Credentials::default();
    let reference = config
        .spec
        .credentials
        .secret_ref
        .clone()
        .expect("a secretRef");
    credentials.insert(&reference, common::key_file(&fake.healthy));
    let compute = datum_provider::Provider::connect(&common::provider(), &config, &credentials)
        .await
        .expect("connects");
    let spec = context_spec();
    let settings = common::location_settings();
    let r = resource::<NetworkContext>(&spec, &settings, "u8");
    let requests = |fake: &Fake| fake.healthy.faults.requests();
    let before = requests(&fake);
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        compute.observe(&r).await.expect("observes");
    }
    let calls = requests(&fake) - before;
    assert!(calls >= 5, "each observe calls the API: {calls}");
    // One call from the burst, then every further call waits 100 ms for its token.
    let waited = start.elapsed();
    let expected =
        std::time::Duration::from_millis(100) * u32::try_from(calls - 1).unwrap_or(u32::MAX);
    assert!(
        waited + std::time::Duration::from_millis(1) >= expected,
        "{calls} calls at 10/s with burst 1 waited only {waited:?} of virtual time"
    );
}

fn vm_spec(data_size: &str) -> InstanceSpec {
    serde_json::from_value(json!({
        "runtime": {
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "virtualMachine": { "volumeAttachments": [{ "name": "boot" }, { "name": "data" }] },
        },
        "volumes": [
            { "name": "boot", "disk": { "template": { "spec": {
                "type": "pd-ssd", "resources": { "requests": { "storage": "20Gi" } },
                "populator": { "image": { "name": "datumcloud/ubuntu-2204-lts" } } } } } },
            { "name": "data", "disk": { "template": { "spec": {
                "type": "pd-balanced", "resources": { "requests": { "storage": data_size } } } } } },
        ],
        "networkInterfaces": [{ "network": { "name": "default" } }],
        "location": { "name": "loc" },
        "controller": { "templateHash": "abc123" },
    }))
    .expect("a spec")
}

fn with_annotations<'a>(
    spec: &'a InstanceSpec,
    settings: &'a serde_json::Value,
    uid: &'a str,
    annotations: &'a std::collections::BTreeMap<String, String>,
) -> ExternalResource<'a, Instance> {
    ExternalResource {
        annotations,
        ..named(spec, settings, uid, uid)
    }
}

fn metadata_item(instance: &serde_json::Value, key: &str) -> Option<String> {
    instance["metadata"]["items"]
        .as_array()?
        .iter()
        .find(|i| i["key"] == key)?["value"]
        .as_str()
        .map(str::to_owned)
}

fn templates(fake: &Fake) -> Vec<String> {
    fake.names()
        .into_iter()
        .filter(|n| n.starts_with("datum-t-"))
        .collect()
}

#[tokio::test]
async fn vm_instances_share_a_template_with_ssh_keys_disks_and_user_data_and_it_goes_when_unused() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let settings = common::location_settings();
    default_network(&compute, &settings).await;
    let spec = vm_spec("100Gi");
    let key = "myuser:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAqyjfr0gTk1lxqA/eEac0djYWuw+ZLFphPHmfWwxbO5 me@example.com";
    let annotations: std::collections::BTreeMap<String, String> = [(
        "compute.datumapis.com/ssh-keys".to_owned(),
        format!("{key}\n"),
    )]
    .into();
    let a = with_annotations(&spec, &settings, "v1", &annotations);
    let b = with_annotations(&spec, &settings, "v2", &annotations);
    let id_a = compute.create(&a).await.expect("created");
    let id_b = compute.create(&b).await.expect("created");
    let instance = fake
        .fake
        .with_compute(|c| c.resource(&id_a))
        .expect("exists");

    // One template for the revision, and the instance made from it.
    assert_eq!(templates(&fake).len(), 1, "{:?}", fake.names());
    let template = templates(&fake).remove(0);
    assert_eq!(instance["labels"]["datum-template"], template.as_str());
    assert!(
        metadata_item(&instance, "instance-template").is_some_and(|t| t.ends_with(&template)),
        "{instance}"
    );
    let stored = fake
        .fake
        .with_compute(|c| {
            c.resource(&format!(
                "projects/{PROJECT}/global/instanceTemplates/{template}"
            ))
        })
        .expect("the template");
    assert_eq!(stored["properties"]["machineType"], "n2-standard-2");

    // What the issue asks of a VM: machine type, boot image, disk tiers, ssh keys,
    // user-data, the IPAM address, labels back to the Datum object.
    assert_eq!(
        instance["machineType"],
        "zones/us-central1-a/machineTypes/n2-standard-2"
    );
    assert_eq!(
        instance["disks"][0]["initializeParams"]["sourceImage"],
        "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927"
    );
    assert_eq!(
        instance["disks"][0]["initializeParams"]["diskType"],
        "zones/us-central1-a/diskTypes/pd-ssd"
    );
    assert_eq!(instance["disks"][1]["boot"], false);
    assert_eq!(
        instance["disks"][1]["initializeParams"]["diskType"],
        "zones/us-central1-a/diskTypes/pd-balanced"
    );
    assert_eq!(
        instance["disks"][1]["initializeParams"]["diskSizeGb"],
        "100"
    );
    assert_eq!(metadata_item(&instance, "ssh-keys").as_deref(), Some(key));
    assert!(
        metadata_item(&instance, "user-data").is_some_and(|u| u.starts_with("#cloud-config\n")),
        "{instance}"
    );
    assert_eq!(instance["networkInterfaces"][0]["networkIP"], "10.128.0.42");
    assert_eq!(instance["labels"]["datum-uid"], "v1");
    assert_eq!(instance["labels"]["datum-namespace"], "ns");
    assert_eq!(instance["tags"]["items"][0], "datum-v1");
    assert!(
        stored["properties"]["networkInterfaces"][0]["networkIP"].is_null(),
        "addresses are the instance's own, not the template's"
    );

    // A new revision (a bigger data disk) gets its own template; the old one stays while
    // an instance still names it and goes with the last one.
    let resized = vm_spec("200Gi");
    let a2 = with_annotations(&resized, &settings, "v1", &annotations);
    assert!(matches!(
        compute.observe(&a2).await,
        Ok(Observation::Exists {
            up_to_date: false,
            ..
        })
    ));
    ExternalClient::<Instance>::update(&compute, &id_a, &a2)
        .await
        .expect("updated");
    assert_eq!(templates(&fake).len(), 2, "v2 still uses the old template");
    let b2 = with_annotations(&resized, &settings, "v2", &annotations);
    ExternalClient::<Instance>::update(&compute, &id_b, &b2)
        .await
        .expect("updated");
    assert_eq!(
        templates(&fake).len(),
        1,
        "the unused template is collected"
    );
    assert!(matches!(
        compute.observe(&b2).await,
        Ok(Observation::Exists {
            up_to_date: true,
            ..
        })
    ));

    ExternalClient::<Instance>::delete(&compute, &id_a, &a2)
        .await
        .expect("deleted");
    assert_eq!(templates(&fake).len(), 1, "v2 still uses it");
    ExternalClient::<Instance>::delete(&compute, &id_b, &b2)
        .await
        .expect("deleted");
    assert_eq!(
        fake.names(),
        ["datum-c1", "default", "datum-s1"],
        "only the networks are left"
    );

    // The same revision again, after its template was collected: the template is made
    // again (not answered from the earlier request ID's operation) and the instance runs.
    let c = with_annotations(&resized, &settings, "v4", &annotations);
    let id_c = compute.create(&c).await.expect("created again");
    assert_eq!(templates(&fake).len(), 1, "{:?}", fake.names());
    ExternalClient::<Instance>::delete(&compute, &id_c, &c)
        .await
        .expect("deleted");
}

#[tokio::test]
async fn a_malformed_ssh_key_is_refused_with_its_line() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let settings = common::location_settings();
    let spec = vm_spec("10Gi");
    let annotations: std::collections::BTreeMap<String, String> = [(
        "compute.datumapis.com/ssh-keys".to_owned(),
        "ops:ssh-ed25519 AAAAC3Nz\nssh-rsa AAAAB3 no-user".to_owned(),
    )]
    .into();
    let error = compute
        .create(&with_annotations(&spec, &settings, "v3", &annotations))
        .await
        .expect_err("refused");
    assert_eq!(error.reason, "InvalidSpec");
    assert!(error.message.contains("line 2"), "{}", error.message);
    assert!(!fake.names().iter().any(|n| n.contains("v3")));
}

#[tokio::test]
async fn a_crash_between_insert_and_record_leaves_exactly_one_instance() {
    let fake = Fake::start(1).await;
    let settings = common::location_settings();
    let spec = vm_spec("10Gi");
    let r = resource::<Instance>(&spec, &settings, "c9");
    default_network(&common::connect(&fake.healthy).await, &settings).await;
    // The insert takes effect and the answer never comes: the provider "crashes" there.
    let hanging = common::connect(&fake.hanging).await;
    let error = hanging
        .create(&r)
        .await
        .expect_err("no answer before the request timeout");
    assert!(error.message.contains("timed out"), "{error:?}");
    // After a restart nothing was recorded; observe finds the instance by its name, and a
    // create anyway (the worst case) adopts it on 409.
    let restarted = common::connect(&fake.healthy).await;
    assert!(matches!(
        restarted.observe(&r).await,
        Ok(Observation::Exists { .. })
    ));
    restarted.create(&r).await.expect("adopted");
    let instances = fake.names().into_iter().filter(|n| n == "datum-c9").count();
    assert_eq!(instances, 1);
}

/// Lists follow `nextPageToken` to the last page: with the fake's pages cut to two items,
/// seven networks take four requests and all come back, and the network a context looks
/// for is found on the last page.
#[tokio::test]
async fn lists_are_read_page_by_page_to_the_last_page() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    fake.fake.with_compute(|c| {
        for i in 0..6 {
            c.seed(
                &format!("projects/{PROJECT}/global/networks/net-{i}"),
                json!({ "name": format!("net-{i}"), "description": format!("datum:ns/ctx-{i}") }),
            );
        }
        c.set_page_size(Some(2));
    });
    let before = fake.healthy.faults.requests();
    let networks = compute
        .list(&format!("projects/{PROJECT}/global/networks"))
        .await
        .expect("lists");
    let names: Vec<&str> = networks.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "default", "net-0", "net-1", "net-2", "net-3", "net-4", "net-5"
        ]
    );
    assert_eq!(
        fake.healthy.faults.requests() - before,
        4,
        "one request per page of two"
    );
    let found = compute
        .find_network(PROJECT, "ns", "ctx-5")
        .await
        .expect("lists");
    assert_eq!(found.map(|n| n["name"].clone()), Some(json!("net-5")));
}

/// An instance group's members are read page by page too (`listInstances`): a member on
/// the last page is seen, so it leaves the group, and the group is empty only once all
/// have left.
#[tokio::test]
async fn group_members_are_read_page_by_page() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let zone = "us-central1-a";
    let plan = Plan::of_deployment(
        &std::collections::BTreeMap::new(),
        "wd",
        PROJECT,
        zone,
        "us-central1",
    );
    let group = format!(
        "projects/{PROJECT}/zones/{zone}/instanceGroups/{}",
        plan.name
    );
    let instances: Vec<String> = (0..5)
        .map(|i| format!("projects/{PROJECT}/zones/{zone}/instances/vm-{i}"))
        .collect();
    fake.fake.with_compute(|c| {
        c.seed(&group, json!({ "name": plan.name }));
        for (i, path) in instances.iter().enumerate() {
            c.seed(
                path,
                json!({ "name": format!("vm-{i}"), "status": "RUNNING" }),
            );
        }
    });
    for path in &instances {
        compute.join_group(&plan, path).await.expect("joins");
    }
    fake.fake.with_compute(|c| c.set_page_size(Some(2)));
    compute
        .leave_group(&plan, &instances[4])
        .await
        .expect("leaves");
    let members = fake.fake.with_compute(|c| c.group_members(&group));
    assert_eq!(members, instances[..4], "vm-4, on the third page, left");
    for path in &instances[..3] {
        compute.leave_group(&plan, path).await.expect("leaves");
    }
    assert!(
        !compute.group_is_empty(&plan).await.expect("lists"),
        "vm-3 is on the second page"
    );
    compute
        .leave_group(&plan, &instances[3])
        .await
        .expect("leaves");
    assert!(compute.group_is_empty(&plan).await.expect("lists"));
}

/// The secrets of an unused template are found page by page (`secrets.list`): with Secret
/// Manager's pages cut to two secrets, all five of the template's are listed, and
/// collecting the template deletes every one of them — the one on the last page too —
/// while another template's secret stays.
#[tokio::test]
async fn a_templates_secrets_are_read_page_by_page_and_all_collected() {
    use datum_provider_gcp::compute::instance_templates::{LABEL, PREFIX, description};

    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let zone = "us-central1-a";
    let template = format!("{PREFIX}unused");
    fake.fake.with_compute(|c| {
        c.seed(
            &format!("projects/{PROJECT}/global/instanceTemplates/{template}"),
            json!({ "name": template, "description": description("ns", zone) }),
        );
    });
    let ids: Vec<String> = (0..5).map(|i| format!("{template}-v{i}")).collect();
    for id in &ids {
        compute
            .put_secret(PROJECT, id, b"data", &json!({ LABEL: template }))
            .await
            .expect("stored");
    }
    let kept = format!("projects/{PROJECT}/secrets/{PREFIX}other-v0");
    compute
        .put_secret(
            PROJECT,
            &format!("{PREFIX}other-v0"),
            b"data",
            &json!({ LABEL: format!("{PREFIX}other") }),
        )
        .await
        .expect("stored");
    fake.fake.with_secrets(|s| s.set_page_size(Some(2)));

    let found = compute
        .secrets_labelled(PROJECT, LABEL, &template)
        .await
        .expect("lists");
    assert_eq!(found, ids, "three pages of at most two");

    compute
        .collect_templates(PROJECT, zone, "ns")
        .await
        .expect("collects");
    assert_eq!(
        fake.fake.with_secrets(|s| s.names()),
        [kept],
        "every secret of the template went, the last page's too"
    );
    assert!(
        !fake.names().contains(&template),
        "the template went after its secrets"
    );
}
