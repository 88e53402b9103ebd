//! Health checks feeding readiness: a workload that declares a TCP port gets a health
//! check, a firewall rule for Google's probers, an instance group and a backend service
//! per WorkloadDeployment; an Instance is Running (and so Ready) only while the fake's
//! backend service reports it `HEALTHY`; `UNHEALTHY` turns Ready False with the state in
//! its message; deleting the deployment's last instance leaves the fake as it started.
//!
//! Its own test binary: the control-plane test's Location is cluster-wide.

mod common;

use std::collections::BTreeMap;

use datum_api::compute::labels::WORKLOAD_DEPLOYMENT_UID;
use datum_api::compute::{Instance, InstanceSpec};
use datum_provider::conformance::Harness;
use datum_provider::{ExternalClient, ExternalResource, Observation, PowerState};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use common::{Fake, PROJECT, eventually};

const ZONE_PATH: &str = "zones/us-central1-a";

fn spec(ports: Value) -> InstanceSpec {
    serde_json::from_value(json!({
        "runtime": {
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "sandbox": { "containers": [{ "name": "web", "image": "nginx:1", "ports": ports }] },
        },
        "networkInterfaces": [{ "network": { "name": "default" } }],
        "location": { "name": "loc" },
    }))
    .expect("a spec")
}

fn resource<'a>(
    spec: &'a InstanceSpec,
    settings: &'a Value,
    uid: &'a str,
    labels: &'a BTreeMap<String, String>,
) -> ExternalResource<'a, Instance> {
    ExternalResource {
        namespace: "ns",
        name: uid,
        uid,
        external_name: format!("datum-{uid}"),
        id: None,
        spec,
        location_settings: settings,
        assigned: vec![],
        annotations: &NONE,
        labels,
        network_policies: Vec::new(),
    }
}

static NONE: BTreeMap<String, String> = BTreeMap::new();

async fn power(
    compute: &datum_provider_gcp::compute::Compute,
    r: &ExternalResource<'_, Instance>,
) -> (PowerState, bool) {
    match compute.observe(r).await {
        Ok(Observation::Exists {
            live, up_to_date, ..
        }) => (live.power, up_to_date),
        other => panic!("the instance exists: {other:?}"),
    }
}

#[tokio::test]
async fn a_port_gets_health_checking_whose_result_is_the_instances_running_state() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let settings = common::location_settings();
    let spec = spec(json!([{ "name": "http", "port": 8080 }]));
    let labels: BTreeMap<String, String> =
        [(WORKLOAD_DEPLOYMENT_UID.to_owned(), "wd1".to_owned())].into();
    let a = resource(&spec, &settings, "h1", &labels);
    let b = resource(&spec, &settings, "h2", &labels);
    let id_a = compute.create(&a).await.expect("created");
    let id_b = compute.create(&b).await.expect("created");

    // One of each per deployment, shaped as Compute Engine documents them.
    let get = |path: String| {
        fake.fake
            .with_compute(|c| c.resource(&path))
            .unwrap_or_else(|| panic!("{path} exists"))
    };
    let check = get(format!(
        "projects/{PROJECT}/global/healthChecks/datum-hc-wd1"
    ));
    assert_eq!(check["type"], "TCP");
    assert_eq!(check["tcpHealthCheck"]["port"], 8080);
    let rule = get(format!("projects/{PROJECT}/global/firewalls/datum-hc-wd1"));
    assert_eq!(
        rule["sourceRanges"],
        json!(["35.191.0.0/16", "130.211.0.0/22"])
    );
    assert_eq!(rule["targetTags"], json!(["datum-hc-wd1"]));
    assert_eq!(
        rule["allowed"],
        json!([{ "IPProtocol": "tcp", "ports": ["8080"] }])
    );
    let group = format!("projects/{PROJECT}/{ZONE_PATH}/instanceGroups/datum-hc-wd1");
    get(group.clone());
    let service = get(format!(
        "projects/{PROJECT}/regions/us-central1/backendServices/datum-hc-wd1"
    ));
    assert_eq!(service["loadBalancingScheme"], "INTERNAL");
    assert_eq!(service["protocol"], "TCP");
    assert!(
        service["healthChecks"][0]
            .as_str()
            .is_some_and(|l| l.ends_with("/global/healthChecks/datum-hc-wd1"))
    );
    let members = fake.fake.with_compute(|c| c.group_members(&group));
    assert_eq!(members, vec![id_a.clone(), id_b.clone()]);
    let instance = get(id_a.clone());
    assert_eq!(
        instance["tags"]["items"],
        json!(["datum-h1", "datum-hc-wd1"])
    );

    // Booting, then running with no probe result yet: not Running.
    let mut state = power(&compute, &a).await;
    while state.0 == PowerState::Starting {
        state = power(&compute, &a).await;
    }
    assert_eq!(state, (PowerState::Unhealthy("UNKNOWN"), true));
    // The port answers: Running.
    fake.fake.with_compute(|c| c.set_answers(&id_a, Some(true)));
    assert_eq!(power(&compute, &a).await, (PowerState::Running, true));
    // It stops answering: not Running, with the state to quote.
    fake.fake
        .with_compute(|c| c.set_answers(&id_a, Some(false)));
    assert_eq!(
        power(&compute, &a).await,
        (PowerState::Unhealthy("UNHEALTHY"), true)
    );

    // Drift: the backend service deleted behind our back is out of date and repaired.
    fake.fake.with_compute(|c| c.set_answers(&id_a, Some(true)));
    compute
        .call(
            http::Method::DELETE,
            &format!("projects/{PROJECT}/regions/us-central1/backendServices/datum-hc-wd1"),
            &[],
            None,
        )
        .await
        .expect("deleted out of band");
    assert_eq!(
        power(&compute, &a).await,
        (PowerState::Unhealthy("UNKNOWN"), false)
    );
    ExternalClient::<Instance>::update(&compute, &id_a, &a)
        .await
        .expect("repaired");
    assert_eq!(power(&compute, &a).await, (PowerState::Running, true));

    // A revision with another port moves the check and the probers' rule to it.
    let moved = self::spec(json!([{ "name": "http", "port": 9090 }]));
    let a2 = resource(&moved, &settings, "h1", &labels);
    ExternalClient::<Instance>::update(&compute, &id_a, &a2)
        .await
        .expect("updated");
    let check = get(format!(
        "projects/{PROJECT}/global/healthChecks/datum-hc-wd1"
    ));
    assert_eq!(check["tcpHealthCheck"]["port"], 9090);
    let rule = get(format!("projects/{PROJECT}/global/firewalls/datum-hc-wd1"));
    assert_eq!(
        rule["allowed"],
        json!([{ "IPProtocol": "tcp", "ports": ["9090"] }])
    );

    // The health check cannot go while the backend service uses it.
    let refused = compute
        .call(
            http::Method::DELETE,
            &format!("projects/{PROJECT}/global/healthChecks/datum-hc-wd1"),
            &[],
            None,
        )
        .await
        .expect_err("in use");
    assert_eq!(
        (refused.status, refused.reason.as_str()),
        (400, "resourceInUseByAnotherResource")
    );

    // The first instance leaves the group before it goes; the deployment keeps its health
    // checking while an instance remains, and the last one takes it along.
    ExternalClient::<Instance>::delete(&compute, &id_a, &a)
        .await
        .expect("deleted");
    assert_eq!(
        fake.fake.with_compute(|c| c.group_members(&group)),
        vec![id_b.clone()]
    );
    let removals = fake.fake.with_compute(|c| {
        let log = &c.log;
        let removed = log
            .iter()
            .position(|l| l.ends_with("datum-hc-wd1/removeInstances"));
        let deleted = log.iter().position(|l| l == &format!("DELETE {id_a}"));
        (removed, deleted)
    });
    assert!(
        matches!(removals, (Some(r), Some(d)) if r < d),
        "removed from the group before the delete: {removals:?}"
    );
    assert!(fake.names().contains(&"datum-hc-wd1".to_owned()));
    ExternalClient::<Instance>::delete(&compute, &id_b, &b)
        .await
        .expect("deleted");
    assert_eq!(
        fake.names(),
        vec!["default".to_owned()],
        "the fake is as it started"
    );
    // Deleting again (a retry after a crash) is success.
    ExternalClient::<Instance>::delete(&compute, &id_b, &b)
        .await
        .expect("already gone");
}

#[tokio::test]
async fn without_a_tcp_port_readiness_is_the_vms_status_alone() {
    let fake = Fake::start(1).await;
    let compute = common::connect(&fake.healthy).await;
    let settings = common::location_settings();
    let spec = spec(json!([{ "name": "dns", "port": 53, "protocol": "UDP" }]));
    let r = resource(&spec, &settings, "n1", &NONE);
    let id = compute.create(&r).await.expect("created");
    assert!(
        !fake.names().iter().any(|n| n.starts_with("datum-hc-")),
        "{:?}",
        fake.names()
    );
    let mut state = power(&compute, &r).await;
    while state.0 == PowerState::Starting {
        state = power(&compute, &r).await;
    }
    assert_eq!(state, (PowerState::Running, true));
    ExternalClient::<Instance>::delete(&compute, &id, &r)
        .await
        .expect("deleted");
    assert_eq!(fake.names(), vec!["default".to_owned()]);
}

fn condition(instance: &Instance, kind: &str) -> Option<(String, String, String)> {
    let list = instance.status.as_ref()?.conditions.as_ref()?;
    let c = datum_api::conditions::get(list, kind)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn instances_are_ready_only_while_gcp_reports_them_healthy() {
    let h = common::harness().await;
    let client = h.client.clone();
    let ns = h.fresh_namespace("health").await;
    let platform = common::Platform::start(&h, &ns, "ORD").await;

    let workload: datum_api::compute::Workload = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": { "name": "web" },
        "spec": {
            "template": { "spec": {
                "runtime": {
                    "resources": { "instanceType": "datumcloud/d1-standard-2" },
                    "sandbox": { "containers": [{
                        "name": "web", "image": "nginx:1",
                        "ports": [{ "name": "http", "port": 8080 }],
                    }]},
                },
                "networkInterfaces": [{ "network": { "name": "default" } }],
            }},
            "placements": [{
                "name": "ord", "cityCodes": ["ORD"],
                "scaleSettings": { "minReplicas": 2, "instanceManagementPolicy": "Parallel" },
            }],
        },
    }))
    .expect("a Workload");
    let workloads = Api::<datum_api::compute::Workload>::namespaced(client.clone(), &ns);
    workloads
        .create(&PostParams::default(), &workload)
        .await
        .expect("the Workload");

    // Both VMs run, and the check has no result yet: Programmed, not Running, not Ready.
    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    let list = eventually("2 programmed Instances whose health is UNKNOWN", || async {
        let list = instances.list(&ListParams::default()).await.ok()?.items;
        let waiting = list.iter().all(|i| {
            condition(i, "Running")
                .is_some_and(|(s, r, m)| s == "False" && r == "Unhealthy" && m.contains("UNKNOWN"))
        });
        (list.len() == 2 && waiting).then_some(list)
    })
    .await;
    for instance in &list {
        let ready = condition(instance, "Ready").expect("Ready");
        assert_eq!(ready.0, "False", "{ready:?}");
    }
    let deployment = list[0]
        .labels()
        .get(WORKLOAD_DEPLOYMENT_UID)
        .cloned()
        .expect("the deployment label");
    let name = format!("datum-hc-{deployment}");
    assert!(
        h.fake.fake.with_compute(|c| c
            .resource(&format!(
                "projects/{PROJECT}/regions/us-central1/backendServices/{name}"
            ))
            .is_some()),
        "{:?}",
        h.fake.names()
    );
    let path = |i: &Instance| {
        format!(
            "projects/{PROJECT}/{ZONE_PATH}/instances/datum-{}",
            i.uid().unwrap_or_default()
        )
    };

    // Their ports answer: Ready.
    for instance in &list {
        h.fake
            .fake
            .with_compute(|c| c.set_answers(&path(instance), Some(true)));
    }
    eventually("2 Ready Instances", || async {
        let list = instances.list(&ListParams::default()).await.ok()?.items;
        list.iter()
            .all(|i| condition(i, "Ready").is_some_and(|(s, _, _)| s == "True"))
            .then_some(())
    })
    .await;

    // One stops answering: it is not Ready, and says why.
    let sick = list[0].name_any();
    h.fake
        .fake
        .with_compute(|c| c.set_answers(&path(&list[0]), Some(false)));
    let (status, reason, message) = eventually("Ready=False quoting UNHEALTHY", || async {
        let i = instances.get(&sick).await.ok()?;
        condition(&i, "Ready").filter(|(s, _, _)| s == "False")
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unhealthy"));
    assert!(message.contains("UNHEALTHY"), "{message}");
    let other = instances.get(&list[1].name_any()).await.expect("the other");
    assert_eq!(
        condition(&other, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );

    // Deleting everything leaves the fake as it started.
    workloads
        .delete("web", &DeleteParams::default())
        .await
        .expect("the Workload deletes");
    common::expect_nothing_left(&h, &ns).await;
    platform.stop().await;
}
