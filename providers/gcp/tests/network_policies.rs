//! NetworkPolicy objects on the GCP provider, with the real control plane's controllers:
//! policies selecting a workload's instances by label become firewall rules that target a
//! network tag those instances (and no others) carry — allows from the peers' addresses
//! and an ipBlock minus its exception, a named port resolved, a deny isolating each
//! restricted direction; a new peer moves the instances to rules that name it, and the
//! rules nobody uses any more are swept; deleting a policy takes its tag and rules away,
//! and deleting everything leaves the fake as it started.
//!
//! Its own test binary: the Location is cluster-wide.

mod common;

use std::collections::BTreeSet;

use datum_api::compute::{Instance, Workload};
use datum_api::networking::NetworkPolicy;
use datum_provider::conformance::Harness;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use common::{GcpHarness, PROJECT, eventually};

const ZONE_PATH: &str = "zones/us-central1-a";

fn workload(role: &str, replicas: u32, ports: Value) -> Value {
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": { "name": role },
        "spec": {
            "template": {
                "metadata": { "labels": { "role": role } },
                "spec": {
                    "runtime": {
                        "resources": { "instanceType": "datumcloud/d1-standard-2" },
                        "sandbox": { "containers": [{ "name": "main", "image": "nginx:1", "ports": ports }] },
                    },
                    "networkInterfaces": [{ "network": { "name": "default" } }],
                },
            },
            "placements": [{
                "name": "p", "cityCodes": ["NPC"],
                "scaleSettings": { "minReplicas": replicas, "instanceManagementPolicy": "Parallel" },
            }],
        },
    })
}

/// The Compute Engine instance of each programmed Instance of workload `role`, with the
/// Instance's address, once there are `count`.
async fn programmed(
    h: &GcpHarness,
    instances: &Api<Instance>,
    role: &str,
    count: usize,
) -> Vec<(Value, String)> {
    eventually(&format!("{count} programmed {role} instances"), || async {
        let list = instances.list(&ListParams::default()).await.ok()?.items;
        let mut out = Vec::new();
        for i in list
            .iter()
            .filter(|i| i.labels().get("role").map(String::as_str) == Some(role))
        {
            let ip = i
                .status
                .as_ref()?
                .network_interfaces
                .as_ref()?
                .first()?
                .assignments
                .as_ref()?
                .network_ip
                .clone()?;
            let path = format!(
                "projects/{PROJECT}/{ZONE_PATH}/instances/datum-{}",
                i.uid().unwrap_or_default()
            );
            out.push((h.fake.fake.with_compute(|c| c.resource(&path))?, ip));
        }
        (out.len() == count).then_some(out)
    })
    .await
}

fn tags(instance: &Value) -> BTreeSet<String> {
    instance["tags"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .filter(|t| t.starts_with("datum-np-"))
        .map(str::to_owned)
        .collect()
}

/// Every NetworkPolicy firewall rule in the fake.
fn rules(h: &GcpHarness) -> Vec<Value> {
    h.fake.fake.with_compute(|c| {
        c.names()
            .into_iter()
            .filter(|n| n.starts_with("datum-np-"))
            .filter_map(|n| c.resource(&format!("projects/{PROJECT}/global/firewalls/{n}")))
            .collect()
    })
}

/// The rules targeting `tag`.
fn rules_of(h: &GcpHarness, tag: &str) -> Vec<Value> {
    rules(h)
        .into_iter()
        .filter(|r| r["targetTags"] == json!([tag]))
        .collect()
}

/// The web instances' NetworkPolicy tags once they agree, there are `count` of them and
/// each has a rule matching `check`.
async fn web_tags(
    h: &GcpHarness,
    instances: &Api<Instance>,
    count: usize,
    check: impl Fn(&[Value]) -> bool,
) -> BTreeSet<String> {
    eventually(
        &format!("web instances share {count} policy tags whose rules are in place"),
        || async {
            let web = programmed(h, instances, "web", 2).await;
            let first = tags(&web[0].0);
            let agree = web.iter().all(|(i, _)| tags(i) == first);
            let complete = first.iter().all(|t| check(&rules_of(h, t)));
            (agree && first.len() == count && complete).then_some(first)
        },
    )
    .await
}

fn allows(rules: &[Value], direction: &str) -> Vec<Value> {
    rules
        .iter()
        .filter(|r| r["direction"] == direction && r["allowed"].is_array())
        .cloned()
        .collect()
}

fn denies(rules: &[Value], direction: &str) -> bool {
    rules.iter().any(|r| {
        r["direction"] == direction
            && r["denied"] == json!([{ "IPProtocol": "all" }])
            && r["priority"] == 2000
    })
}

#[tokio::test]
async fn network_policies_become_tag_targeted_firewall_rules_that_follow_their_peers() {
    let h = common::harness().await;
    let client = h.client.clone();
    let ns = h.fresh_namespace("gcp-np").await;
    let platform = common::Platform::start(&h, &ns, "NPC").await;
    let workloads = Api::<Workload>::namespaced(client.clone(), &ns);
    // A UDP port: named, so the policy can name it, without health checking (TCP only).
    for (role, replicas) in [("web", 2), ("client", 1)] {
        let w: Workload = serde_json::from_value(workload(
            role,
            replicas,
            json!([{ "name": "dns", "port": 5353, "protocol": "UDP" }]),
        ))
        .expect("a Workload");
        workloads
            .create(&PostParams::default(), &w)
            .await
            .expect("the Workload");
    }
    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    let clients = programmed(&h, &instances, "client", 1).await;
    let first_client = clients[0].1.clone();

    // Web takes UDP dns from clients and from 192.168.0.0/24 minus its upper half; web's
    // egress is closed.
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    for value in [
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "NetworkPolicy",
            "metadata": { "name": "web-in" },
            "spec": {
                "instanceSelector": { "matchLabels": { "role": "web" } },
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "ports": [{ "protocol": "UDP", "port": "dns" }],
                    "from": [
                        { "instanceSelector": { "matchLabels": { "role": "client" } } },
                        { "ipBlock": { "cidr": "192.168.0.0/24", "except": ["192.168.0.128/25"] } },
                    ],
                }],
            },
        }),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "NetworkPolicy",
            "metadata": { "name": "web-out" },
            "spec": {
                "instanceSelector": { "matchLabels": { "role": "web" } },
                "policyTypes": ["Egress"],
            },
        }),
    ] {
        let p: NetworkPolicy = serde_json::from_value(value).expect("a NetworkPolicy");
        policies
            .create(&PostParams::default(), &p)
            .await
            .expect("the NetworkPolicy");
    }
    let expected_sources = |clients: &[&str]| {
        let mut v: Vec<String> = clients.iter().map(|ip| format!("{ip}/32")).collect();
        v.push("192.168.0.0/25".to_owned());
        v.sort();
        json!(v)
    };
    let ingress_for = |clients: Vec<String>| {
        move |rules: &[Value]| {
            let ips: Vec<&str> = clients.iter().map(String::as_str).collect();
            let wanted = expected_sources(&ips);
            denies(rules, "INGRESS")
                && allows(rules, "INGRESS").iter().any(|r| {
                    r["sourceRanges"] == wanted
                        && r["allowed"] == json!([{ "IPProtocol": "udp", "ports": ["5353"] }])
                        && r["priority"] == 1000
                })
        }
    };
    let egress_closed =
        |rules: &[Value]| denies(rules, "EGRESS") && allows(rules, "EGRESS").is_empty();
    let before = web_tags(&h, &instances, 2, |rules| {
        ingress_for(vec![first_client.clone()])(rules) || egress_closed(rules)
    })
    .await;
    // Each rule lives in the instances' VPC, and only web carries policy tags.
    let vpc =
        programmed(&h, &instances, "web", 2).await[0].0["networkInterfaces"][0]["network"].clone();
    assert!(
        rules(&h).iter().all(|r| r["network"] == vpc),
        "rules outside the web instances' VPC {vpc}: {:?}",
        rules(&h)
    );
    assert!(tags(&programmed(&h, &instances, "client", 1).await[0].0).is_empty());

    // A second client: the web instances move to rules that name it too, and the rules
    // of the tag nobody carries any more go.
    workloads
        .patch(
            "client",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "placements": [{
                "name": "p", "cityCodes": ["NPC"],
                "scaleSettings": { "minReplicas": 2, "instanceManagementPolicy": "Parallel" },
            }] } })),
        )
        .await
        .expect("the Workload scales");
    let clients = programmed(&h, &instances, "client", 2).await;
    let ips: Vec<String> = clients.iter().map(|(_, ip)| ip.clone()).collect();
    let after = web_tags(&h, &instances, 2, |rules| {
        ingress_for(ips.clone())(rules) || egress_closed(rules)
    })
    .await;
    assert_eq!(
        before.intersection(&after).count(),
        1,
        "the egress policy kept its tag, the ingress one moved: {before:?} → {after:?}"
    );
    eventually("the old ingress tag's rules are swept", || async {
        let carried: BTreeSet<String> = rules(&h)
            .iter()
            .filter_map(|r| r["targetTags"][0].as_str().map(str::to_owned))
            .collect();
        (carried == after).then_some(())
    })
    .await;

    // The egress policy goes: its tag and rules with it.
    policies
        .delete("web-out", &DeleteParams::default())
        .await
        .expect("the policy deletes");
    let remaining = web_tags(&h, &instances, 1, ingress_for(ips.clone())).await;
    eventually("only the ingress policy's rules are left", || async {
        rules(&h)
            .iter()
            .all(|r| remaining.contains(r["targetTags"][0].as_str().unwrap_or_default()))
            .then_some(())
    })
    .await;

    // Deleting everything leaves the fake as it started.
    for name in ["web", "client"] {
        workloads
            .delete(name, &DeleteParams::default())
            .await
            .expect("the Workload deletes");
    }
    policies
        .delete("web-in", &DeleteParams::default())
        .await
        .expect("the policy deletes");
    common::expect_nothing_left(&h, &ns).await;
    platform.stop().await;
}
