//! The local provider end to end, for real: a real control plane, a real containerd with runc,
//! real network namespaces, bridges, veths and nftables. The tests act as the control plane
//! (they create Locations and Instances directly). Runs as root; every traffic probe runs
//! inside a namespace the test made.

mod common;

use std::time::Duration;

use common::{address, eventually, in_netns, location, running};
use datum_api::compute::Instance;
use datum_provider_local::instance::LABEL_EXTERNAL_NAME;
use datum_provider_local::{LocalProvider, names};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

fn instance(name: &str, location: &str, network: &str, image: &str) -> Instance {
    serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": name },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-standard-2" },
                "sandbox": { "containers": [{
                    "name": "app", "image": image,
                    "command": ["/bin/sh", "-c"],
                    "args": ["echo started $GREETING; exec sleep 100000"],
                    "env": [{ "name": "GREETING", "value": "hello" }],
                }] },
            },
            "networkInterfaces": [{ "network": { "name": network } }],
            "location": { "name": location },
            "controller": { "templateHash": "h1" },
        },
    }))
    .expect("a valid Instance")
}

#[tokio::test]
async fn instances_run_reach_their_network_only_and_leave_nothing() {
    let host = common::host("run").await;
    let host_links_before = common::host_links();
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-run")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    host.apply_config(&host.config(&format!("{ns}-cfg"), None))
        .await;
    let running_provider = host.start(LocalProvider::default(), &format!("{ns}-cfg"), &ns);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let image = format!("{}/datum/busybox:v1", host.registry);
    for (name, network) in [("a-0", "net-a"), ("a-1", "net-a"), ("b-0", "net-b")] {
        instances
            .create(
                &PostParams::default(),
                &instance(name, &loc, network, &image),
            )
            .await
            .expect("the Instance is created");
    }
    let mut ips = Vec::new();
    for name in ["a-0", "a-1", "b-0"] {
        let ready = eventually(&format!("{name} runs with an address"), || async {
            instances
                .get(name)
                .await
                .ok()
                .filter(|i| running(i) && address(i).is_some())
        })
        .await;
        let status = ready.status.clone().unwrap_or_default();
        assert!(
            status
                .provider_id
                .as_deref()
                .is_some_and(|p| p.starts_with("local://datum-")),
            "providerID: {status:?}"
        );
        ips.push((
            ready.uid().expect("a uid"),
            address(&ready).unwrap_or_default(),
        ));
    }

    // A real process runs in its own namespaces, with the command, args and env given.
    let containerd = host.containerd();
    let id = names::container_id(&format!("datum-{}", ips[0].0), "app");
    let task = containerd.task(&id).await.expect("tasks").expect("a task");
    let cmdline =
        std::fs::read(format!("/proc/{}/cmdline", task.pid)).expect("the process is visible");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("sleep"),
        "{cmdline:?}"
    );
    let own_net = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let its_net = std::fs::read_link(format!("/proc/{}/ns/net", task.pid)).expect("its netns");
    assert_ne!(
        own_net, its_net,
        "the container is not in the host's network namespace"
    );
    let memory_limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/datum/{id}/memory.limit_in_bytes"
    ))
    .expect("a memory cgroup");
    assert_eq!(
        memory_limit.trim(),
        (8u64 << 30).to_string(),
        "8Gi from d1-standard-2"
    );
    let log = host
        .dir
        .join("state/instances")
        .join(format!("datum-{}", ips[0].0))
        .join("logs/app.log");
    let logged = eventually("the container's output is in its log", || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("started hello"))
    })
    .await;
    assert!(logged.contains("started hello"));

    // Same network: reachable. Different network: not. Probes run inside the instance's netns.
    let hostnames = datum_provider_local::names::HostNames::new(&host.prefix);
    let a0 = hostnames.instance_netns(&format!("datum-{}", ips[0].0));
    assert!(
        in_netns(&a0, &["busybox", "ping", "-c", "1", "-W", "2", &ips[1].1]),
        "a-0 reaches a-1 on the same network"
    );
    assert!(
        !in_netns(&a0, &["busybox", "ping", "-c", "1", "-W", "1", &ips[2].1]),
        "a-0 cannot reach b-0 on another network"
    );
    // The isolation is nftables' doing.
    let location_netns = hostnames.location_netns(&loc);
    assert!(
        in_netns(&location_netns, &["nft", "list", "table", "inet", "datum"]),
        "the isolation table is loaded in the Location's namespace"
    );
    assert!(
        in_netns(
            &location_netns,
            &["sh", "-c", "grep -qx 1 /proc/sys/net/ipv4/ip_forward"]
        ),
        "forwarding is on in the Location's namespace, so only the rules keep networks apart"
    );
    // Usage is reported after two samples.
    eventually("usage is reported", || async {
        instances
            .get("a-0")
            .await
            .ok()?
            .status?
            .usage?
            .memory_utilization
    })
    .await;

    // Delete everything: no container, namespace, veth or bridge is left.
    for name in ["a-0", "a-1", "b-0"] {
        instances
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    common::all_gone(&instances).await;
    for (uid, _) in &ips {
        let left = containerd
            .containers_labelled(LABEL_EXTERNAL_NAME, &format!("datum-{uid}"))
            .await
            .expect("lists");
        assert!(left.is_empty(), "no container left: {left:?}");
    }
    assert_eq!(host.namespaces(), Vec::<String>::new(), "no namespace left");
    assert_eq!(
        common::host_links(),
        host_links_before,
        "the host's own links are untouched"
    );
    running_provider.stop().await;
}

#[tokio::test]
async fn a_restarted_provider_adopts_without_duplicates() {
    let host = common::host("adopt").await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-adopt")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    let cfg = format!("{ns}-cfg");
    host.apply_config(&host.config(&cfg, None)).await;
    let first = host.start(LocalProvider::default(), &cfg, &ns);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let image = format!("{}/datum/busybox:v1", host.registry);
    let uid = instances
        .create(
            &PostParams::default(),
            &instance("web-0", &loc, "net", &image),
        )
        .await
        .expect("created")
        .uid()
        .expect("a uid");
    eventually("web-0 runs", || async {
        instances.get("web-0").await.ok().filter(running)
    })
    .await;
    let containerd = host.containerd();
    let id = names::container_id(&format!("datum-{uid}"), "app");
    let pid = containerd
        .task(&id)
        .await
        .expect("tasks")
        .expect("a task")
        .pid;
    first.crash();

    let second = host.start(LocalProvider::default(), &cfg, &ns);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let adopted = instances.get("web-0").await.expect("still there");
    assert!(running(&adopted));
    let containers = containerd
        .containers_labelled(LABEL_EXTERNAL_NAME, &format!("datum-{uid}"))
        .await
        .expect("lists");
    assert_eq!(containers.len(), 1, "one container");
    assert_eq!(
        containerd.task(&id).await.expect("tasks").map(|t| t.pid),
        Some(pid),
        "the same process runs on"
    );
    assert_eq!(
        host.namespaces().len(),
        2,
        "one Location namespace and one instance namespace"
    );

    // Restart policy Always: a container that dies is started again.
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let restarted = eventually(
        "the container runs again after its process died",
        || async {
            containerd
                .task(&id)
                .await
                .ok()
                .flatten()
                .filter(|t| t.pid != pid && t.status == 2)
        },
    )
    .await;
    assert!(std::path::Path::new(&format!("/proc/{}", restarted.pid)).exists());
    instances
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("deletes");
    eventually("web-0 is gone", || async {
        matches!(instances.get_opt("web-0").await, Ok(None)).then_some(())
    })
    .await;
    assert!(host.namespaces().is_empty());
    second.stop().await;
}

#[tokio::test]
async fn config_map_and_secret_volumes_are_files() {
    use std::os::unix::fs::MetadataExt;

    let host = common::host("volumes").await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-volumes")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    let cfg = format!("{ns}-cfg");
    host.apply_config(&host.config(&cfg, None)).await;
    let post = PostParams::default();
    let config_map: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "settings" }, "data": { "mode": "fast" },
    }))
    .expect("a ConfigMap");
    Api::namespaced(host.client.clone(), &ns)
        .create(&post, &config_map)
        .await
        .expect("created");
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" }, "stringData": { "token": "not-for-logs" },
    }))
    .expect("a Secret");
    Api::namespaced(host.client.clone(), &ns)
        .create(&post, &secret)
        .await
        .expect("created");
    let provider = LocalProvider {
        kube: Some(host.client.clone()),
        ..LocalProvider::default()
    };
    let running_provider = host.start(provider, &cfg, &ns);
    let mut spec = serde_json::to_value(instance(
        "web-0",
        &loc,
        "net",
        &format!("{}/datum/busybox:v1", host.registry),
    ))
    .expect("json");
    spec["spec"]["volumes"] = json!([
        { "name": "settings", "configMap": { "name": "settings" } },
        { "name": "creds", "secret": { "secretName": "creds" } },
    ]);
    spec["spec"]["runtime"]["sandbox"]["containers"][0]["volumeAttachments"] = json!([
        { "name": "settings", "mountPath": "/etc/settings" },
        { "name": "creds", "mountPath": "/run/creds" },
    ]);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let uid = instances
        .create(&post, &serde_json::from_value(spec).expect("an Instance"))
        .await
        .expect("created")
        .uid()
        .expect("a uid");
    eventually("web-0 runs", || async {
        instances.get("web-0").await.ok().filter(running)
    })
    .await;
    let id = names::container_id(&format!("datum-{uid}"), "app");
    let pid = host
        .containerd()
        .task(&id)
        .await
        .expect("tasks")
        .expect("a task")
        .pid;
    let root = format!("/proc/{pid}/root");
    assert_eq!(
        std::fs::read_to_string(format!("{root}/etc/settings/mode")).expect("the file"),
        "fast"
    );
    let token = format!("{root}/run/creds/token");
    assert_eq!(
        std::fs::read_to_string(&token).expect("the file"),
        "not-for-logs"
    );
    assert_eq!(
        std::fs::metadata(&token).expect("meta").mode() & 0o777,
        0o400
    );
    instances
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("deletes");
    eventually("web-0 is gone", || async {
        matches!(instances.get_opt("web-0").await, Ok(None)).then_some(())
    })
    .await;
    assert!(
        !host
            .dir
            .join("state/instances")
            .join(format!("datum-{uid}"))
            .exists()
    );
    running_provider.stop().await;
}
