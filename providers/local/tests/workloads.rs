//! Workloads on the local provider with the real control plane's controllers: IPAM gives
//! the addresses, instances of one Network reach each other with real packets, other
//! Networks cannot, an interface policy lets exactly its port through, and a busy container's
//! CPU usage makes the autoscaler add an instance. Runs as root; every probe runs inside a
//! namespace the provider or the test made.

mod common;

use common::eventually;
use common::system::{
    SERVE_TWO_PORTS, System, create, location_and_networks, pings, reaches_http, ready, walk,
    workload,
};
use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_api::networking::Network;
use datum_provider_local::names::HostNames;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;

#[tokio::test]
async fn workloads_get_ipam_addresses_their_network_only_and_their_policy() {
    let host = common::host("workloads").await;
    let host_links_before = common::host_links();
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-wl")
        .await
        .expect("a namespace");
    let location = location_and_networks(&host, &ns, &["net-a", "net-b"]).await;
    let system = System::start(&host, &ns).await;
    let image = format!("{}/datum/busybox:v1", host.registry);
    let workloads: Api<Workload> = Api::namespaced(host.client.clone(), &ns);
    let two = json!({ "minReplicas": 2 });
    let one = json!({ "minReplicas": 1 });
    let on = |network: &str| json!({ "network": { "name": network } });
    create(
        &workloads,
        workload("app", &image, &location, on("net-a"), SERVE_TWO_PORTS, two),
    )
    .await;
    create(
        &workloads,
        workload(
            "other",
            &image,
            &location,
            on("net-b"),
            SERVE_TWO_PORTS,
            one.clone(),
        ),
    )
    .await;
    let only_http = json!({
        "network": { "name": "net-a" },
        "networkPolicy": { "ingress": [{ "ports": [{ "port": "http" }] }] }
    });
    create(
        &workloads,
        workload("locked", &image, &location, only_http, SERVE_TWO_PORTS, one),
    )
    .await;

    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let app = ready(&instances, &format!("app-p-{location}"), 2).await;
    let other = ready(&instances, &format!("other-p-{location}"), 1).await;
    let locked = ready(&instances, &format!("locked-p-{location}"), 1).await;

    // The addresses are IPAM's (a Network's default range is a ULA /48 carved into /64s),
    // not the provider's fallback 10.213.0.0/16.
    let ula: ipnet::IpNet = "fd00::/8".parse().expect("a range");
    for (instance, address) in app.iter().chain(&other).chain(&locked) {
        let ip: std::net::IpAddr = address.parse().expect("an IP address");
        assert!(
            ula.contains(&ip),
            "{} has {address}, from IPAM",
            instance.name_any()
        );
    }

    let names = HostNames::new(&host.prefix);
    let netns_of =
        |i: &Instance| names.instance_netns(&format!("datum-{}", i.uid().unwrap_or_default()));
    let (a0, a1) = (netns_of(&app[0].0), &app[1].1);
    // Same network: real packets both ways.
    assert!(pings(&a0, a1), "app-0 pings app-1");
    assert!(pings(&netns_of(&app[1].0), &app[0].1), "app-1 pings app-0");
    assert!(reaches_http(&a0, a1, 9090), "app-0 reaches app-1:9090");
    // Another network: nothing gets through, either way.
    assert!(!pings(&a0, &other[0].1), "app-0 cannot ping other-0");
    assert!(
        !reaches_http(&a0, &other[0].1, 8080),
        "app-0 cannot reach other-0:8080"
    );
    assert!(
        !pings(&netns_of(&other[0].0), a1),
        "other-0 cannot ping app-1"
    );
    // The policy lets exactly its port through.
    let l0 = &locked[0].1;
    assert!(
        reaches_http(&a0, l0, 8080),
        "the allowed port of locked-0 answers"
    );
    assert!(
        !reaches_http(&a0, l0, 9090),
        "the other port of locked-0 is dropped"
    );
    assert!(!pings(&a0, l0), "ICMP to locked-0 is dropped");
    // ...and locked-0 itself may still open connections out (replies pass).
    assert!(
        reaches_http(&netns_of(&locked[0].0), a1, 9090),
        "locked-0 reaches app-1 and gets the reply"
    );

    // Delete everything: no container, namespace, bridge, rule or file of an instance left.
    for name in ["app", "other", "locked"] {
        workloads
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    let networks: Api<Network> = Api::namespaced(host.client.clone(), &ns);
    for name in ["net-a", "net-b"] {
        networks
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    common::all_gone(&instances).await;
    eventually("no namespace of this test is left", || async {
        host.namespaces().is_empty().then_some(())
    })
    .await;
    let containers = host
        .containerd()
        .containers_labelled(datum_provider_local::instance::LABEL_INDEX, "0")
        .await
        .expect("lists");
    assert!(containers.is_empty(), "no container left: {containers:?}");
    let state = host.dir.join("state");
    for dir in ["instances", "policies"] {
        let left: Vec<_> = walk(&state.join(dir));
        assert!(left.is_empty(), "nothing left under {dir}: {left:?}");
    }
    assert_eq!(
        common::host_links(),
        host_links_before,
        "the host's own links are untouched"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_busy_container_makes_the_autoscaler_add_an_instance() {
    let host = common::host("autoscale").await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-scale")
        .await
        .expect("a namespace");
    let location = location_and_networks(&host, &ns, &["default"]).await;
    let system = System::start(&host, &ns).await;
    let image = format!("{}/datum/busybox:v1", host.registry);
    let workloads: Api<Workload> = Api::namespaced(host.client.clone(), &ns);
    // One core spinning is about half of d1-standard-2's two; the target is 10 %.
    create(
        &workloads,
        workload(
            "busy",
            &image,
            &location,
            json!({ "network": { "name": "default" } }),
            "while :; do :; done",
            json!({
                "minReplicas": 1, "maxReplicas": 2,
                "metrics": [{ "resource": { "name": "cpu", "target": { "averageUtilization": 10 } } }]
            }),
        ),
    )
    .await;
    let wd = format!("busy-p-{location}");
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let first = ready(&instances, &wd, 1).await;
    let cpu = eventually("busy-0 reports its CPU usage", || async {
        let i = instances.get(&first[0].0.name_any()).await.ok()?;
        i.status?.usage?.cpu_utilization.filter(|c| *c > 10)
    })
    .await;
    assert!(cpu > 10, "a spinning container uses CPU: {cpu}%");
    let deployments: Api<WorkloadDeployment> = Api::namespaced(host.client.clone(), &ns);
    eventually("the autoscaler asks for 2 replicas", || async {
        let d = deployments.get(&wd).await.ok()?;
        (d.spec.replicas == Some(2)).then_some(())
    })
    .await;
    ready(&instances, &wd, 2).await;

    workloads
        .delete("busy", &DeleteParams::default())
        .await
        .expect("deletes");
    common::all_gone(&instances).await;
    system.stop().await;
}
