//! Usage figures from Cloud Monitoring: a running VM's CPU utilisation (and Ops Agent
//! memory) becomes its Instance's `status.usage`, fetched per project at most once per
//! interval for every instance at once, every page of series read; a Monitoring outage
//! keeps the last figures, fails nothing, and leaves Instances Ready; and Datum's
//! autoscaler scales a GCP workload from the figures.
//!
//! Its own test binary: the control-plane test's Location is cluster-wide.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use datum_api::compute::{Instance, InstanceSpec, WorkloadDeployment};
use datum_gcp_fake::{Figures, InjectedError};
use datum_provider::conformance::Harness;
use datum_provider::{ExternalClient, ExternalResource, Observation, PowerState, Usage};
use datum_provider_gcp::GcpProvider;
use datum_provider_gcp::compute::Compute;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use common::{Fake, PROJECT, eventually};

fn spec() -> InstanceSpec {
    serde_json::from_value(json!({
        "runtime": {
            "resources": { "instanceType": "datumcloud/d1-standard-2" },
            "sandbox": { "containers": [{ "name": "app", "image": "nginx:1" }] },
        },
        "networkInterfaces": [{ "network": { "name": "default" } }],
        "location": { "name": "loc" },
    }))
    .expect("a spec")
}

static NONE: BTreeMap<String, String> = BTreeMap::new();

fn resource<'a>(
    spec: &'a InstanceSpec,
    settings: &'a Value,
    uid: &'a str,
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
        labels: &NONE,
        network_policies: Vec::new(),
    }
}

fn path(uid: &str) -> String {
    format!("projects/{PROJECT}/zones/us-central1-a/instances/datum-{uid}")
}

fn instance_id(fake: &Fake, uid: &str) -> String {
    fake.fake
        .with_compute(|c| c.resource(&path(uid)))
        .and_then(|i| i["id"].as_str().map(str::to_owned))
        .expect("the VM has an ID")
}

/// Observes until the VM runs; returns its usage then.
async fn observe(
    compute: &Compute,
    r: &ExternalResource<'_, Instance>,
) -> (PowerState, Option<Usage>) {
    match compute.observe(r).await {
        Ok(Observation::Exists { live, .. }) => (live.power, live.usage),
        other => panic!("the instance exists and observing it succeeds: {other:?}"),
    }
}

async fn running(compute: &Compute, r: &ExternalResource<'_, Instance>) -> Option<Usage> {
    for _ in 0..20 {
        let (power, usage) = observe(compute, r).await;
        if power == PowerState::Running {
            return usage;
        }
    }
    panic!("the VM never ran");
}

fn queries(fake: &Fake) -> Vec<String> {
    fake.fake.with_monitoring(|m| m.queries.clone())
}

fn cpu(fraction: f64) -> Option<Figures> {
    Some(Figures {
        cpu: Some(fraction),
        memory_percent: None,
    })
}

async fn connect(fake: &Fake, interval: Duration) -> Compute {
    let provider = GcpProvider {
        usage_interval: interval,
        ..common::provider()
    };
    common::connect_with(provider, &fake.healthy).await
}

#[tokio::test]
async fn cpu_utilization_is_the_usage_and_asked_once_per_interval() {
    let fake = Fake::start(1).await;
    let compute = connect(&fake, Duration::from_secs(60)).await;
    let settings = common::location_settings();
    let spec = spec();
    let r = resource(&spec, &settings, "u1");
    compute.create(&r).await.expect("created");
    fake.fake
        .with_monitoring(|m| m.set_usage(&path("u1"), cpu(0.75)));

    let usage = running(&compute, &r).await;
    assert_eq!(
        usage,
        Some(Usage {
            cpu_utilization: Some(75),
            memory_utilization: None,
        }),
        "75 % of the vCPUs, no memory without the Ops Agent"
    );
    let asked = queries(&fake);
    assert_eq!(asked.len(), 2, "one CPU and one memory query: {asked:?}");
    let id = instance_id(&fake, "u1");
    assert!(
        asked[0].contains("metric.type = \"compute.googleapis.com/instance/cpu/utilization\"")
            && asked[0].contains(&format!("resource.labels.instance_id = one_of(\"{id}\")")),
        "{}",
        asked[0]
    );
    assert!(
        asked[1].contains("agent.googleapis.com/memory/percent_used")
            && asked[1].contains("metric.labels.state = \"used\""),
        "{}",
        asked[1]
    );

    // Within the minute: the cache answers, even when Monitoring's figures moved.
    fake.fake
        .with_monitoring(|m| m.set_usage(&path("u1"), cpu(0.1)));
    for _ in 0..3 {
        let (_, usage) = observe(&compute, &r).await;
        assert_eq!(usage.and_then(|u| u.cpu_utilization), Some(75));
    }
    assert_eq!(
        queries(&fake).len(),
        2,
        "no further query within the interval"
    );
}

#[tokio::test]
async fn a_round_asks_about_every_instance_of_the_project_in_one_request() {
    let fake = Fake::start(1).await;
    let interval = Duration::from_millis(400);
    let compute = connect(&fake, interval).await;
    let settings = common::location_settings();
    let spec = spec();
    let (a, b) = (
        resource(&spec, &settings, "a1"),
        resource(&spec, &settings, "b1"),
    );
    compute.create(&a).await.expect("a created");
    compute.create(&b).await.expect("b created");
    fake.fake.with_monitoring(|m| {
        m.set_usage(&path("a1"), cpu(0.2));
        m.set_usage(
            &path("b1"),
            Some(Figures {
                cpu: Some(0.9),
                memory_percent: Some(40.4),
            }),
        );
    });
    running(&compute, &a).await;
    running(&compute, &b).await;

    // Both seen: the next round asks about both in one CPU and one memory request.
    tokio::time::sleep(interval).await;
    let before = queries(&fake).len();
    let (_, usage_a) = observe(&compute, &a).await;
    let (_, usage_b) = observe(&compute, &b).await;
    let asked = queries(&fake);
    assert_eq!(asked.len(), before + 2, "{asked:?}");
    let (ida, idb) = (instance_id(&fake, "a1"), instance_id(&fake, "b1"));
    let cpu_query = &asked[before];
    assert!(
        cpu_query.contains(&ida) && cpu_query.contains(&idb),
        "{cpu_query}"
    );
    assert_eq!(usage_a.and_then(|u| u.cpu_utilization), Some(20));
    assert_eq!(
        usage_b,
        Some(Usage {
            cpu_utilization: Some(90),
            memory_utilization: Some(40),
        })
    );
}

/// Series spread over pages are all read: with Monitoring's pages cut to one series, a
/// round over three instances takes three pages per metric, and every instance gets its
/// figures — the one whose series comes last too.
#[tokio::test]
async fn a_round_reads_every_page_of_series() {
    let fake = Fake::start(1).await;
    let interval = Duration::from_millis(400);
    let compute = connect(&fake, interval).await;
    let settings = common::location_settings();
    let spec = spec();
    let uids = ["p1", "p2", "p3"];
    let resources: Vec<_> = uids
        .iter()
        .map(|uid| resource(&spec, &settings, uid))
        .collect();
    for (i, (uid, r)) in uids.iter().zip(&resources).enumerate() {
        compute.create(r).await.expect("created");
        let figures = Figures {
            cpu: Some(0.1 * (i + 1) as f64),
            memory_percent: Some(10.0 * (i + 1) as f64),
        };
        fake.fake
            .with_monitoring(|m| m.set_usage(&path(uid), Some(figures)));
    }
    for r in &resources {
        running(&compute, r).await;
    }

    // All three seen: the next round reads them from pages of one series.
    fake.fake.with_monitoring(|m| m.set_page_size(Some(1)));
    tokio::time::sleep(interval).await;
    let before = queries(&fake).len();
    let mut usage = Vec::new();
    for r in &resources {
        usage.push(observe(&compute, r).await.1);
    }
    let expected: Vec<Option<Usage>> = [(10, 10), (20, 20), (30, 30)]
        .into_iter()
        .map(|(cpu, memory)| {
            Some(Usage {
                cpu_utilization: Some(cpu),
                memory_utilization: Some(memory),
            })
        })
        .collect();
    assert_eq!(
        usage, expected,
        "every instance's figures, the last page's too"
    );
    assert_eq!(
        queries(&fake).len(),
        before + 6,
        "three pages of CPU and three of memory"
    );
}

#[tokio::test]
async fn a_monitoring_outage_keeps_the_last_figures_and_fails_no_observe() {
    let fake = Fake::start(1).await;
    let interval = Duration::from_millis(300);
    let compute = connect(&fake, interval).await;
    let settings = common::location_settings();
    let spec = spec();
    let r = resource(&spec, &settings, "o1");
    compute.create(&r).await.expect("created");
    fake.fake
        .with_monitoring(|m| m.set_usage(&path("o1"), cpu(0.5)));
    assert_eq!(
        running(&compute, &r).await.and_then(|u| u.cpu_utilization),
        Some(50)
    );

    // Monitoring down (503), then refusing (403): observes succeed with the last figures.
    fake.fake
        .with_monitoring(|m| m.set_usage(&path("o1"), cpu(0.6)));
    fake.healthy
        .faults
        .fail_path("/v3/", Some(InjectedError::backend_error()));
    for _ in 0..2 {
        tokio::time::sleep(interval).await;
        let (power, usage) = observe(&compute, &r).await;
        assert_eq!(power, PowerState::Running);
        assert_eq!(usage.and_then(|u| u.cpu_utilization), Some(50), "stale");
    }
    fake.healthy.faults.fail_path("/v3/", None);
    fake.fake.with_monitoring(|m| m.deny(PROJECT, true));
    tokio::time::sleep(interval).await;
    let (_, usage) = observe(&compute, &r).await;
    assert_eq!(usage.and_then(|u| u.cpu_utilization), Some(50), "stale");

    // Back: fresh figures at the next round.
    fake.fake.with_monitoring(|m| m.deny(PROJECT, false));
    tokio::time::sleep(interval).await;
    let (_, usage) = observe(&compute, &r).await;
    assert_eq!(usage.and_then(|u| u.cpu_utilization), Some(60));
}

fn condition_true(instance: &Instance, kind: &str) -> bool {
    instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|list| datum_api::conditions::get(list, kind))
        .is_some_and(|c| c.status == "True")
}

fn cpu_of(instance: &Instance) -> Option<i32> {
    instance.status.as_ref()?.usage.as_ref()?.cpu_utilization
}

#[tokio::test]
async fn the_autoscaler_scales_a_gcp_workload_from_monitoring_and_an_outage_stops_nothing() {
    let h = common::harness().await;
    let client = h.client.clone();
    let ns = h.fresh_namespace("usage").await;
    let provider = GcpProvider {
        usage_interval: Duration::from_secs(1),
        ..common::provider()
    };
    let platform = common::Platform::start_with(&h, &ns, "SEA", provider).await;
    let workload: datum_api::compute::Workload = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": { "name": "app" },
        "spec": {
            "template": { "spec": {
                "runtime": {
                    "resources": { "instanceType": "datumcloud/d1-standard-2" },
                    "sandbox": { "containers": [{ "name": "app", "image": "nginx:1" }] },
                },
                "networkInterfaces": [{ "network": { "name": "default" } }],
            }},
            "placements": [{
                "name": "sea", "cityCodes": ["SEA"],
                "scaleSettings": {
                    "minReplicas": 1, "maxReplicas": 2, "instanceManagementPolicy": "Parallel",
                    "metrics": [{ "resource": { "name": "cpu", "target": { "averageUtilization": 50 } } }],
                },
            }],
        },
    }))
    .expect("a Workload");
    Api::<datum_api::compute::Workload>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &workload)
        .await
        .expect("the Workload");
    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    let first = eventually("1 Ready Instance", || async {
        let list = instances.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 1 && condition_true(&list[0], "Ready")).then(|| list[0].clone())
    })
    .await;

    // Google reports the VM 75 % busy: the Instance says 75, the autoscaler wants 2.
    let vm = format!(
        "projects/{PROJECT}/zones/us-central1-a/instances/datum-{}",
        first.uid().unwrap_or_default()
    );
    h.fake.fake.with_monitoring(|m| m.set_usage(&vm, cpu(0.75)));
    eventually("cpuUtilization 75 in status", || async {
        let i = instances.get(&first.name_any()).await.ok()?;
        (cpu_of(&i) == Some(75)).then_some(())
    })
    .await;

    // Monitoring goes down: the first Instance stays Ready with its last figures, and the
    // provider keeps reconciling: the second Instance the autoscaler asked for comes up.
    h.fake
        .healthy
        .faults
        .fail_path("/v3/", Some(InjectedError::backend_error()));
    let deployments = Api::<WorkloadDeployment>::namespaced(client.clone(), &ns);
    eventually("the deployment scaled to 2", || async {
        let list = deployments.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 1 && list[0].spec.replicas == Some(2)).then_some(())
    })
    .await;
    eventually("2 Ready Instances during the outage", || async {
        let list = instances.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 2 && list.iter().all(|i| condition_true(i, "Ready"))).then_some(())
    })
    .await;
    let again = instances.get(&first.name_any()).await.expect("the first");
    assert!(condition_true(&again, "Ready"));
    assert_eq!(cpu_of(&again), Some(75), "the last figures stay");
    let text = serde_json::to_string(&again.status).unwrap_or_default();
    assert!(
        !text.contains("Monitoring"),
        "no condition about Monitoring: {text}"
    );

    h.fake.healthy.faults.fail_path("/v3/", None);
    platform.stop().await;
}
