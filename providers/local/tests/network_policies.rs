//! NetworkPolicy objects on the local provider, with the real control plane's controllers:
//! three Workloads (role web, client, other) on one dual-stack Network, then policies that
//! select them by label. Real packets (HTTP over busybox `nc`), over IPv4 and IPv6, from
//! inside the instances' own namespaces show what each policy lets through; changing an
//! Instance's labels or the policies reprograms the rules without restarting a container;
//! and when everything is deleted no chain, set or file of a policy is left. Runs as root.

mod common;

use std::collections::BTreeMap;

use common::eventually;
use common::system::{SERVE_TWO_PORTS, System, create, location_and_networks, walk, workload};
use datum_api::compute::{Instance, Workload};
use datum_api::networking::{Network, NetworkPolicy};
use datum_provider_local::names::{self, HostNames};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

/// One instance: its name, namespace on the host, and addresses.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    external_name: String,
    netns: String,
    ipv4: String,
    ipv6: String,
}

/// The one Ready instance of Workload `workload`, once it has both addresses.
async fn member(instances: &Api<Instance>, names: &HostNames, workload: &str) -> Member {
    eventually(
        &format!("{workload} has a Ready instance with two addresses"),
        || async {
            let list = instances.list(&Default::default()).await.ok()?;
            let i = list
                .items
                .into_iter()
                .find(|i| i.name_any().starts_with(&format!("{workload}-")))?;
            if !common::is_true(&i, "Ready") {
                return None;
            }
            let a = i
                .status
                .as_ref()?
                .network_interfaces
                .as_ref()?
                .first()?
                .assignments
                .clone()?;
            let external_name = format!("datum-{}", i.uid()?);
            Some(Member {
                name: i.name_any(),
                netns: names.instance_netns(&external_name),
                external_name,
                ipv4: a.network_ip?,
                ipv6: a.network_ipv6?,
            })
        },
    )
    .await
}

/// Whether `from` gets an HTTP answer from `to` on `port`: `(over IPv4, over IPv6)`.
async fn probe(from: &Member, to: &Member, port: u16) -> (bool, bool) {
    let probe = |address: String| {
        let netns = from.netns.clone();
        tokio::task::spawn_blocking(move || common::system::reaches_http(&netns, &address, port))
    };
    let (v4, v6) = (probe(to.ipv4.clone()), probe(to.ipv6.clone()));
    (v4.await.unwrap_or(false), v6.await.unwrap_or(false))
}

/// Whether `from` gets an HTTP answer from `to` on `port`, over both families (they must
/// agree: a policy never lets one family through and not the other).
async fn reaches(from: &Member, to: &Member, port: u16) -> bool {
    let (v4, v6) = probe(from, to, port).await;
    assert_eq!(
        v4, v6,
        "{} -> {}:{port} differs between IPv4 ({v4}) and IPv6 ({v6})",
        from.name, to.name
    );
    v4
}

/// Waits until `from` reaching `to:port` is `expected` over both families (rules change
/// asynchronously, so the two may differ for a moment).
async fn until_reaches(from: &Member, to: &Member, port: u16, expected: bool) {
    let what = format!(
        "{} {} {}:{port}",
        from.name,
        if expected { "reaches" } else { "cannot reach" },
        to.name
    );
    eventually(&what, || async {
        (probe(from, to, port).await == (expected, expected)).then_some(())
    })
    .await;
}

/// The PID of every instance's container task, by instance.
async fn pids(host: &common::Host, members: &[&Member]) -> BTreeMap<String, u32> {
    let containerd = host.containerd();
    let mut out = BTreeMap::new();
    for m in members {
        let id = names::container_id(&m.external_name, "main");
        let task = containerd.task(&id).await.expect("containerd answers");
        out.insert(m.name.clone(), task.map(|t| t.pid).unwrap_or_default());
    }
    out
}

/// The `inet datum` table of the Location's namespace, as nft lists it.
fn table(location_netns: &str) -> String {
    let output = std::process::Command::new("nsenter")
        .arg(format!(
            "--net={}",
            datum_provider_local::netns::path(location_netns).display()
        ))
        .args(["nft", "list", "table", "inet", "datum"])
        .output()
        .expect("nft runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Packets dropped so far by the NetworkPolicy ingress chains of `table`. A table reload
/// starts the counters again from zero; refilling a set keeps them.
fn ingress_drops(table: &str) -> u64 {
    let mut chain = "";
    let mut packets = 0;
    for line in table.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("chain ") {
            chain = name;
        } else if chain.starts_with("npi_")
            && let Some(rest) = line.split("counter packets ").nth(1)
        {
            packets += rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_default();
        }
    }
    packets
}

fn policy(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "NetworkPolicy",
        "metadata": { "name": name }, "spec": spec
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policies_select_instances_by_label_and_follow_changes() {
    let host = common::host("network-policies").await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-np")
        .await
        .expect("a namespace");
    let location = location_and_networks(&host, &ns, &[]).await;
    create(
        &Api::<Network>::namespaced(host.client.clone(), &ns),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
            "metadata": { "name": "net" },
            "spec": { "ipam": { "mode": "Auto" }, "ipFamilies": ["IPv4", "IPv6"] }
        }),
    )
    .await;
    let system = System::start(&host, &ns).await;
    let image = format!("{}/datum/busybox:v1", host.registry);
    let workloads: Api<Workload> = Api::namespaced(host.client.clone(), &ns);
    for role in ["web", "client", "other"] {
        let mut w = workload(
            role,
            &image,
            &location,
            json!({ "network": { "name": "net" } }),
            SERVE_TWO_PORTS,
            json!({ "minReplicas": 1 }),
        );
        w["spec"]["template"]["metadata"] = json!({ "labels": { "role": role } });
        create(&workloads, w).await;
    }
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let names = HostNames::new(&host.prefix);
    let web = member(&instances, &names, "web").await;
    let client = member(&instances, &names, "client").await;
    let other = member(&instances, &names, "other").await;
    let started = pids(&host, &[&web, &client, &other]).await;
    assert!(
        started.values().all(|pid| *pid > 0),
        "tasks run: {started:?}"
    );

    // No policy: everything on the network is open.
    until_reaches(&client, &web, 8080, true).await;
    assert!(reaches(&other, &web, 9090).await, "other reaches web:9090");

    // Ingress to web from clients, on 8080 only.
    let policies: Api<NetworkPolicy> = Api::namespaced(host.client.clone(), &ns);
    create(
        &policies,
        policy(
            "web-from-clients",
            json!({
                "instanceSelector": { "matchLabels": { "role": "web" } },
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "ports": [{ "port": 8080 }],
                    "from": [{ "instanceSelector": { "matchLabels": { "role": "client" } } }]
                }]
            }),
        ),
    )
    .await;
    until_reaches(&other, &web, 8080, false).await;
    assert!(
        reaches(&client, &web, 8080).await,
        "client reaches web:8080"
    );
    assert!(!reaches(&client, &web, 9090).await, "web:9090 is closed");
    assert!(
        !reaches(&other, &web, 9090).await,
        "other cannot reach web:9090"
    );
    assert!(reaches(&web, &client, 8080).await, "web's egress is free");
    assert!(reaches(&other, &client, 9090).await, "client is unselected");
    let location_netns = names.location_netns(&location);
    assert!(
        table(&location_netns).contains("set npi_"),
        "the peers are a named set:\n{}",
        table(&location_netns)
    );

    // Relabelling other as a client makes it a peer; relabelling it back removes it.
    let relabel = |role: &'static str| {
        let instances = instances.clone();
        let name = other.name.clone();
        async move {
            instances
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "labels": { "role": role } } })),
                )
                .await
                .expect("the labels are patched");
        }
    };
    let dropped = ingress_drops(&table(&location_netns));
    assert!(dropped > 0, "web's ingress chain dropped other's packets");
    relabel("client").await;
    until_reaches(&other, &web, 8080, true).await;
    assert!(
        ingress_drops(&table(&location_netns)) >= dropped,
        "a new peer refills the set; the table is not reloaded"
    );
    relabel("other").await;
    until_reaches(&other, &web, 8080, false).await;

    // Egress from clients: only to web's port named http.
    create(
        &policies,
        policy(
            "clients-to-web",
            json!({
                "instanceSelector": { "matchLabels": { "role": "client" } },
                "policyTypes": ["Egress"],
                "egress": [{
                    "ports": [{ "port": "http" }],
                    "to": [{ "instanceSelector": { "matchLabels": { "role": "web" } } }]
                }]
            }),
        ),
    )
    .await;
    until_reaches(&client, &other, 8080, false).await;
    assert!(
        reaches(&client, &web, 8080).await,
        "client still reaches web:http"
    );
    assert!(!reaches(&client, &other, 9090).await, "nor other:9090");
    assert!(
        reaches(&other, &client, 8080).await,
        "client's ingress is free, and its replies pass its egress"
    );

    // Deleting the ingress policy opens web; the egress policy still holds client.
    policies
        .delete("web-from-clients", &DeleteParams::default())
        .await
        .expect("deletes");
    until_reaches(&other, &web, 9090, true).await;
    assert!(!reaches(&client, &web, 9090).await, "client's egress holds");
    policies
        .delete("clients-to-web", &DeleteParams::default())
        .await
        .expect("deletes");
    until_reaches(&client, &other, 8080, true).await;
    assert!(
        reaches(&client, &web, 9090).await,
        "everything is open again"
    );

    // No container was restarted for any of it, and no policy chain or set is left.
    assert_eq!(pids(&host, &[&web, &client, &other]).await, started);
    let rules = table(&location_netns);
    for leftover in ["npi_", "npe_"] {
        assert!(!rules.contains(leftover), "no {leftover} left:\n{rules}");
    }
    let policy_files = walk(&host.dir.join("state").join("policies"));
    assert!(
        policy_files.is_empty(),
        "no policy file left: {policy_files:?}"
    );

    // A policy in force when everything goes leaves nothing behind either.
    create(
        &policies,
        policy("deny-all", json!({ "policyTypes": ["Ingress", "Egress"] })),
    )
    .await;
    until_reaches(&client, &web, 8080, false).await;
    for name in ["web", "client", "other"] {
        workloads
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    common::all_gone(&instances).await;
    Api::<Network>::namespaced(host.client.clone(), &ns)
        .delete("net", &DeleteParams::default())
        .await
        .expect("deletes");
    eventually("no namespace of this test is left", || async {
        host.namespaces().is_empty().then_some(())
    })
    .await;
    let policy_files = walk(&host.dir.join("state").join("policies"));
    assert!(
        policy_files.is_empty(),
        "no policy file left: {policy_files:?}"
    );
    system.stop().await;
}
