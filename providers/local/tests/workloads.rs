//! Workloads on the local provider with the real control plane's controllers: IPAM gives
//! the addresses, instances of one Network reach each other with real packets, other
//! Networks cannot, an interface policy lets exactly its port through, and a busy container's
//! CPU usage makes the autoscaler add an instance. Runs as root; every probe runs inside a
//! namespace the provider or the test made.

mod common;

use std::time::Duration;

use common::{Host, address, eventually, in_netns};
use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_api::networking::Network;
use datum_provider::Options;
use datum_provider_local::LocalProvider;
use datum_provider_local::names::HostNames;
use datum_runtime::shutdown::CancellationToken;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

/// The control plane's controllers and the local provider, scoped to `namespace`.
struct System {
    stop: CancellationToken,
    control: tokio::task::JoinHandle<()>,
    provider: tokio::task::JoinHandle<()>,
}

impl System {
    async fn start(host: &Host, namespace: &str) -> System {
        let config = format!("{namespace}-cfg");
        host.apply_config(&host.config(&config, None)).await;
        let stop = CancellationToken::new();
        let settings = datum_control::Settings {
            namespace: Some(namespace.to_owned()),
            resync: Duration::from_secs(5),
            retry: Duration::from_millis(250),
            autoscaler: datum_control::autoscaler::AutoscalerSettings {
                interval: Duration::from_secs(1),
                ..Default::default()
            },
            ..datum_control::Settings::default()
        };
        let client = host.client.clone();
        let token = stop.clone();
        let control = tokio::spawn(datum_control::run(
            client,
            settings,
            token.cancelled_owned(),
        ));
        let mut options = Options::new(config);
        options.namespace = Some(namespace.to_owned());
        options.resync = Duration::from_secs(2);
        options.progress_requeue = Duration::from_millis(500);
        options.backoff_max = Duration::from_secs(2);
        let client = host.client.clone();
        let token = stop.clone();
        let provider = tokio::spawn(async move {
            if let Err(error) =
                datum_provider::run(LocalProvider::default(), client, options, token).await
            {
                eprintln!("the provider stopped: {error}");
            }
        });
        System {
            stop,
            control,
            provider,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.control.await;
        let _ = self.provider.await;
    }
}

async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("the object is created");
}

/// A Location served by the local provider, and the Networks.
async fn location_and_networks(host: &Host, namespace: &str, networks: &[&str]) -> String {
    let location = format!("{namespace}-loc");
    create(
        &Api::<datum_api::networking::Location>::all(host.client.clone()),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": { "name": location },
            "spec": { "locationClassName": "self-managed", "topology": {}, "provider": { "local": {} } }
        }),
    )
    .await;
    for network in networks {
        create(
            &Api::<Network>::namespaced(host.client.clone(), namespace),
            json!({
                "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
                "metadata": { "name": network }, "spec": { "ipam": { "mode": "Auto" } }
            }),
        )
        .await;
    }
    location
}

/// A Workload of busybox containers running `script` on `network`, in `location`.
fn workload(
    name: &str,
    image: &str,
    location: &str,
    interface: serde_json::Value,
    script: &str,
    scale: serde_json::Value,
) -> serde_json::Value {
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": { "name": name },
        "spec": {
            "template": { "spec": {
                "runtime": {
                    "resources": { "instanceType": "datumcloud/d1-standard-2" },
                    "sandbox": { "containers": [{
                        "name": "main", "image": image,
                        "command": ["/bin/sh", "-c"], "args": [script],
                        "ports": [{ "name": "http", "port": 8080 }, { "name": "alt", "port": 9090 }]
                    }] }
                },
                "networkInterfaces": [interface]
            }},
            "placements": [{ "name": "p", "locations": [{ "name": location }], "scaleSettings": scale }]
        }
    })
}

/// Serves `ok` over HTTP on 8080 and 9090.
const SERVE_TWO_PORTS: &str = "mkdir -p /www && echo ok > /www/index.html && httpd -p 9090 -h /www && exec httpd -f -p 8080 -h /www";

/// The Ready instances of deployment `wd` with their addresses, once there are `count`.
async fn ready(instances: &Api<Instance>, wd: &str, count: usize) -> Vec<(Instance, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let list = instances.list(&Default::default()).await.expect("lists");
        let mut ready: Vec<(Instance, String)> = list
            .items
            .iter()
            .filter(|i| i.name_any().starts_with(&format!("{wd}-")))
            .filter(|i| common::is_true(i, "Ready"))
            .filter_map(|i| address(i).map(|a| (i.clone(), a)))
            .collect();
        ready.sort_by_key(|(i, _)| i.name_any());
        if ready.len() == count {
            return ready;
        }
        if tokio::time::Instant::now() > deadline {
            let statuses: Vec<_> = list
                .items
                .iter()
                .map(|i| {
                    (
                        i.name_any(),
                        serde_json::to_string(&i.status).unwrap_or_default(),
                    )
                })
                .collect();
            panic!(
                "gave up waiting for {count} instances of {wd} Ready with addresses: {statuses:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Whether an HTTP GET to `address:port` from inside `from_netns` is answered `200 OK`.
/// (busybox's nc rather than its wget, which crashes on IPv6 literals.)
fn reaches_http(from_netns: &str, address: &str, port: u16) -> bool {
    use std::io::Write as _;
    let child = std::process::Command::new("nsenter")
        .arg(format!(
            "--net={}",
            datum_provider_local::netns::path(from_netns).display()
        ))
        .args(["busybox", "nc", "-w", "2", address, &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    child
        .wait_with_output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("200 OK"))
}

fn pings(from_netns: &str, address: &str) -> bool {
    in_netns(
        from_netns,
        &["busybox", "ping", "-c", "1", "-W", "2", address],
    )
}

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

/// Files under `dir` (recursively).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
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
