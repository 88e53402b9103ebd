//! Focused tests of the Compute Engine client against the fake, without Kubernetes:
//! operations polled to `DONE`, adoption on `409`, `404` on delete, quota errors quoted,
//! and no secret in instance metadata.

mod common;

use base64::Engine as _;
use datum_api::compute::{Instance, InstanceSpec};
use datum_api::networking::{NetworkContext, NetworkContextSpec, Subnet, SubnetSpec};
use datum_gcp_fake::InjectedError;
use datum_provider::{ExternalClient, ExternalResource, Observation, PowerState};
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
    fake.healthy
        .faults
        .fail_next("POST", "/instances", InjectedError::quota_exceeded(message));
    let spec = sandbox_spec();
    let settings = common::location_settings();
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
    // The NetworkContext of Network `default` in Location `loc` is `default-loc`.
    let context = context_spec();
    let vpc = compute
        .create(&named::<NetworkContext>(
            &context,
            &settings,
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
            &settings,
            "s1",
            "default-loc-ipv4",
        ))
        .await
        .expect("the subnetwork");
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

#[tokio::test]
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
    let start = std::time::Instant::now();
    for _ in 0..5 {
        compute.observe(&r).await.expect("observes");
    }
    // One call from the burst, then four at 10/s.
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(350),
        "{:?}",
        start.elapsed()
    );
}
