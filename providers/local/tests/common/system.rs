//! The whole system on one host, for tests that run Workloads: the control plane's
//! controllers and the local provider scoped to a test namespace, a Location and Networks,
//! Workloads of busybox containers, and real probes (HTTP over busybox `nc`, ping) sent from
//! inside namespaces the provider made.

use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::networking::Network;
use datum_provider::Options;
use datum_provider_local::LocalProvider;
use datum_runtime::shutdown::CancellationToken;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Host, address, in_netns};

/// The control plane's controllers and the local provider, scoped to `namespace`.
pub struct System {
    stop: CancellationToken,
    control: tokio::task::JoinHandle<()>,
    provider: tokio::task::JoinHandle<()>,
}

impl System {
    pub async fn start(host: &Host, namespace: &str) -> System {
        Self::start_as(host, namespace, host.client.clone(), host.client.clone()).await
    }

    /// Runs the controllers with `control`'s credentials and the provider with `provider`'s
    /// (which it also reads the instances' ConfigMaps and Secrets with).
    pub async fn start_as(
        host: &Host,
        namespace: &str,
        control: kube::Client,
        provider: kube::Client,
    ) -> System {
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
        let token = stop.clone();
        let control = tokio::spawn(datum_control::run(
            control,
            settings,
            token.cancelled_owned(),
        ));
        let mut options = Options::new(config);
        options.namespace = Some(namespace.to_owned());
        options.resync = Duration::from_secs(2);
        options.progress_requeue = Duration::from_millis(500);
        options.backoff_max = Duration::from_secs(2);
        let token = stop.clone();
        let local = LocalProvider {
            kube: Some(provider.clone()),
            ..LocalProvider::default()
        };
        let provider = tokio::spawn(async move {
            if let Err(error) = datum_provider::run(local, provider, options, token).await {
                eprintln!("the provider stopped: {error}");
            }
        });
        System {
            stop,
            control,
            provider,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.control.await;
        let _ = self.provider.await;
    }
}

/// Deletes `workloads`, then `networks`, of `namespace`, and waits until no Instance and no
/// network namespace of the test is left.
pub async fn delete_and_wait(host: &Host, namespace: &str, workloads: &[&str], networks: &[&str]) {
    let delete = kube::api::DeleteParams::default();
    let api: Api<datum_api::compute::Workload> = Api::namespaced(host.client.clone(), namespace);
    for name in workloads {
        api.delete(name, &delete).await.expect("deletes");
    }
    let api: Api<Network> = Api::namespaced(host.client.clone(), namespace);
    for name in networks {
        api.delete(name, &delete).await.expect("deletes");
    }
    super::all_gone(&Api::<Instance>::namespaced(host.client.clone(), namespace)).await;
    super::eventually("no namespace of this test is left", || async {
        host.namespaces().is_empty().then_some(())
    })
    .await;
}

pub async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("the object is created");
}

/// A Location served by the local provider, and the Networks.
pub async fn location_and_networks(host: &Host, namespace: &str, networks: &[&str]) -> String {
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
pub fn workload(
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
pub const SERVE_TWO_PORTS: &str = "mkdir -p /www && echo ok > /www/index.html && httpd -p 9090 -h /www && exec httpd -f -p 8080 -h /www";

/// The Ready instances of deployment `wd` with their addresses, once there are `count`.
pub async fn ready(instances: &Api<Instance>, wd: &str, count: usize) -> Vec<(Instance, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let list = instances.list(&Default::default()).await.expect("lists");
        let mut ready: Vec<(Instance, String)> = list
            .items
            .iter()
            .filter(|i| i.name_any().starts_with(&format!("{wd}-")))
            .filter(|i| super::is_true(i, "Ready"))
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
pub fn reaches_http(from_netns: &str, address: &str, port: u16) -> bool {
    http_get(from_netns, address, port).is_some_and(|reply| reply.contains("200 OK"))
}

/// The whole reply (status line, headers, body) to an HTTP GET of `/` sent to
/// `address:port` from inside `from_netns`, if anything answered.
/// (busybox's nc rather than its wget, which crashes on IPv6 literals.)
pub fn http_get(from_netns: &str, address: &str, port: u16) -> Option<String> {
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
    let mut child = child.ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let output = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned()).filter(|reply| !reply.is_empty())
}

pub fn pings(from_netns: &str, address: &str) -> bool {
    in_netns(
        from_netns,
        &["busybox", "ping", "-c", "1", "-W", "2", address],
    )
}

/// Files under `dir` (recursively).
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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
