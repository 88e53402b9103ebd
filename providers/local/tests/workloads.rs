//! Workloads on the local provider with the real control plane's controllers: IPAM gives
//! the addresses, instances of one Network reach each other with real packets, other
//! Networks cannot, an interface policy lets exactly its port through, and a busy container's
//! CPU usage makes the autoscaler add an instance, and the controllers and the provider do
//! all of it with no more than the roles `config/rbac` ships. Runs as root; every probe runs
//! inside a namespace the provider or the test made.

mod common;

use common::eventually;
use common::system::{
    SERVE_TWO_PORTS, System, create, delete_and_wait, http_get, location_and_networks, pings,
    reaches_http, ready, walk, workload,
};
use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_provider_local::names::HostNames;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
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
    delete_and_wait(&host, &ns, &["app", "other", "locked"], &["net-a", "net-b"]).await;
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

/// The controllers and the local provider, each with its own ServiceAccount token and exactly
/// the roles in `config/rbac`, run a Workload whose containers serve a ConfigMap and mount a
/// Secret (both read with the provider's token) to Ready with IPAM's addresses, and delete
/// it without leftovers; outside their roles both are refused.
#[tokio::test]
async fn the_shipped_rbac_is_enough_to_run_a_workload_and_nothing_more() {
    let host = common::host("rbac").await;
    let admin = host.client.clone();
    let ns = host
        .cp
        .fresh_namespace(&admin, "local-rbac")
        .await
        .expect("a namespace");
    let rbac = |file: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/rbac")
            .join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let system_namespace = "{apiVersion: v1, kind: Namespace, metadata: {name: datum-system}}";
    for yaml in [
        system_namespace.to_owned(),
        rbac("datum-control.yaml"),
        rbac("provider-local.yaml"),
    ] {
        datum_testenv::apply_manifests(&admin, &yaml, "rbac-test")
            .await
            .expect("the shipped RBAC applies");
    }
    let token = |account: &'static str| {
        let (cp, admin) = (host.cp, admin.clone());
        async move {
            cp.service_account_client(&admin, "datum-system", account)
                .await
                .expect("a ServiceAccount token")
                .0
        }
    };
    let control = token("datum-control").await;
    let provider = token("datum-provider-local").await;
    // The authorizer follows role changes asynchronously.
    eventually("the shipped roles are in force", || async {
        let instances = Api::<Instance>::namespaced(provider.clone(), &ns);
        let workloads = Api::<Workload>::namespaced(control.clone(), &ns);
        instances.list(&Default::default()).await.ok()?;
        workloads.list(&Default::default()).await.ok()
    })
    .await;

    let page = "served from a ConfigMap";
    let post = kube::api::PostParams::default();
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "site" }, "data": { "index.html": page }
    }))
    .expect("a ConfigMap");
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&post, &config_map)
        .await
        .expect("created");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "token" }, "stringData": { "token": "s3cret" }
    }))
    .expect("a Secret");
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&post, &secret)
        .await
        .expect("created");

    let location = location_and_networks(&host, &ns, &["default"]).await;
    let system = System::start_as(&host, &ns, control.clone(), provider.clone()).await;
    let image = format!("{}/datum/busybox:v1", host.registry);
    // Serves /www (the ConfigMap) only once the Secret's file is there too.
    let script = "test -s /run/token/token && exec httpd -f -p 8080 -h /www";
    let mut site = workload(
        "site",
        &image,
        &location,
        json!({ "network": { "name": "default" } }),
        script,
        json!({ "minReplicas": 2 }),
    );
    site["spec"]["template"]["spec"]["volumes"] = json!([
        { "name": "site", "configMap": { "name": "site" } },
        { "name": "token", "secret": { "secretName": "token" } },
    ]);
    site["spec"]["template"]["spec"]["runtime"]["sandbox"]["containers"][0]["volumeAttachments"] = json!([
        { "name": "site", "mountPath": "/www" },
        { "name": "token", "mountPath": "/run/token" },
    ]);
    let workloads: Api<Workload> = Api::namespaced(admin.clone(), &ns);
    create(&workloads, site).await;
    let instances: Api<Instance> = Api::namespaced(admin.clone(), &ns);
    let site = ready(&instances, &format!("site-p-{location}"), 2).await;
    let names = HostNames::new(&host.prefix);
    let from = names.instance_netns(&format!("datum-{}", site[0].0.uid().unwrap_or_default()));
    let reply = eventually("site-0 gets site-1's page", || async {
        http_get(&from, &site[1].1, 8080).filter(|r| r.contains("200 OK"))
    })
    .await;
    assert!(reply.contains(page), "the page is the ConfigMap's: {reply}");

    // Outside their roles. The provider: no Workloads, no deleting Instances, no listing
    // Secrets, no editing Locations. The control plane: no Secrets, no deleting Locations.
    fn refused<T>(result: Result<T, kube::Error>) -> bool {
        matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
    }
    let nothing: Workload = serde_json::from_value(workload(
        "nope",
        &image,
        &location,
        json!({ "network": { "name": "default" } }),
        "true",
        json!({ "minReplicas": 1 }),
    ))
    .expect("a Workload");
    let as_provider = Api::<Workload>::namespaced(provider.clone(), &ns);
    assert!(
        refused(as_provider.create(&post, &nothing).await),
        "the provider creates no Workloads"
    );
    let delete = DeleteParams::default();
    let provider_instances = Api::<Instance>::namespaced(provider.clone(), &ns);
    let first = site[0].0.name_any();
    assert!(
        refused(provider_instances.delete(&first, &delete).await),
        "the provider deletes no Instances"
    );
    assert!(
        refused(
            Api::<Secret>::namespaced(provider.clone(), &ns)
                .list(&Default::default())
                .await
        ),
        "the provider lists no Secrets"
    );
    let locations = Api::<datum_api::networking::Location>::all(provider.clone());
    let label = json!({ "metadata": { "labels": { "touched": "yes" } } });
    assert!(
        refused(
            locations
                .patch(&location, &PatchParams::default(), &Patch::Merge(&label))
                .await
        ),
        "the provider edits no Location"
    );
    assert!(
        refused(
            Api::<Secret>::namespaced(control.clone(), &ns)
                .get("token")
                .await
        ),
        "the control plane reads no Secret"
    );
    assert!(
        refused(
            Api::<datum_api::networking::Location>::all(control.clone())
                .delete(&location, &delete)
                .await
        ),
        "the control plane deletes no Location"
    );

    delete_and_wait(&host, &ns, &["site"], &["default"]).await;
    system.stop().await;
}
