//! Rollout benchmark: apply a Workload with N replicas and time until every Instance exists
//! and is Ready, under `Parallel` and under `OrderedReady`, on a real control plane. A
//! stand-in provider marks each Instance Programmed and Running the moment its scheduling
//! gates are clear, so the figures are the control plane's own.
//!
//! ```sh
//! cargo bench -p datum-control --bench rollout            # 1,000 replicas
//! cargo bench -p datum-control --bench rollout -- 200     # another size
//! ```
//!
//! Prints, per policy: wall time, API requests the controllers issued (counted on their
//! client), and requests per Instance; then the process's peak RSS (controllers, the
//! stand-in provider and the harness together — an upper bound for the controllers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datum_api::compute::{Instance, Workload};
use datum_testenv::{ControlPlane, Options};
use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

type Counter = Arc<AtomicU64>;

/// A client whose every request is counted.
async fn counting_client(cp: &ControlPlane, counter: Counter) -> anyhow::Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.kubeconfig_path())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let layer = tower::util::MapRequestLayer::new(move |request| {
        counter.fetch_add(1, Ordering::Relaxed);
        request
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// Marks Instances Programmed and Running at their current template, as a provider would.
async fn stand_in_provider(client: Client, namespace: String) {
    let api: Api<Instance> = Api::namespaced(client, &namespace);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(Ok(event)) = events.next().await {
        let (watcher::Event::Apply(instance) | watcher::Event::InitApply(instance)) = event else {
            continue;
        };
        let spec_controller = instance.spec.controller.clone().unwrap_or_default();
        let gated = spec_controller
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty());
        let hash = spec_controller.template_hash.clone();
        let status = instance.status.clone().unwrap_or_default();
        let done = status
            .controller
            .as_ref()
            .is_some_and(|c| c.observed_template_hash == hash)
            && datum_api::conditions::is_true(
                status.conditions.as_deref().unwrap_or_default(),
                "Running",
            );
        if gated || done {
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let condition = |type_: &str| {
            json!({"type": type_, "status": "True", "reason": "Bench", "message": "stand-in provider",
                   "lastTransitionTime": now, "observedGeneration": instance.metadata.generation})
        };
        let mut conditions = vec![condition("Programmed"), condition("Running")];
        if let Some(ready) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
        {
            conditions.push(serde_json::to_value(ready).unwrap_or_default());
        }
        let patch = json!({"status": {"conditions": conditions,
                                      "controller": {"observedTemplateHash": hash}}});
        let _ = api
            .patch_status(
                &instance.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await;
    }
}

async fn run_once(
    cp: &ControlPlane,
    admin: &Client,
    policy: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let namespace = cp
        .fresh_namespace(admin, &format!("bench-{}", policy.to_lowercase()))
        .await?;
    let location = format!("{namespace}-here");
    let locations: Api<datum_api::networking::Location> = Api::all(admin.clone());
    locations
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
                "metadata": {"name": location},
                "spec": {"locationClassName": "datum-managed", "provider": {"bench": {}},
                         "topology": {"topology.datum.net/city-code": "BEN"}}
            }))?,
        )
        .await?;
    Api::<datum_api::networking::Network>::namespaced(admin.clone(), &namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
                "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}
            }))?,
        )
        .await?;

    let counter: Counter = Arc::default();
    let controllers_client = counting_client(cp, counter.clone()).await?;
    let stop = datum_runtime::shutdown::CancellationToken::new();
    let settings = datum_control::Settings {
        namespace: Some(namespace.clone()),
        retry: Duration::from_millis(250),
        ..datum_control::Settings::default()
    };
    let controllers = tokio::spawn(datum_control::run(
        controllers_client,
        settings,
        stop.clone().cancelled_owned(),
    ));
    let provider = tokio::spawn(stand_in_provider(admin.clone(), namespace.clone()));

    let workload: Workload = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": {"name": "bench"},
        "spec": {
            "template": {"spec": {
                "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"}, "sandbox": {"containers": [{"name": "app", "image": "example.org/app:1"}]}},
                "networkInterfaces": [{"network": {"name": "default"}}]
            }},
            "placements": [{"name": "here", "locations": [{"name": location}],
                            "scaleSettings": {"minReplicas": replicas, "instanceManagementPolicy": policy}}]
        }
    }))?;
    let started = Instant::now();
    Api::<Workload>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &workload)
        .await?;

    let instances: Api<Instance> = Api::namespaced(admin.clone(), &namespace);
    let deadline = started + Duration::from_secs(3600);
    loop {
        let list = instances.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|i| {
                datum_api::conditions::is_true(
                    i.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_deref())
                        .unwrap_or_default(),
                    "Ready",
                )
            })
            .count();
        if list.items.len() == replicas as usize && ready == replicas as usize {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{policy}: not converged after an hour ({ready} ready)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let requests = counter.load(Ordering::Relaxed);
    stop.cancel();
    provider.abort();
    let _ = controllers.await;
    println!(
        "{policy:>12}: {replicas} instances created and Ready in {:.1} s; controllers issued {requests} API requests ({:.2} per Instance)",
        elapsed.as_secs_f64(),
        requests as f64 / f64::from(replicas)
    );
    Ok(())
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a bare number sets the size.
    let replicas: i32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let cp = ControlPlane::start(Options {
        crds: datum_api::crds::all(),
        ..Options::default()
    })
    .await?;
    let admin = cp.admin_client().await?;
    println!(
        "rollout benchmark: {replicas} replicas, one Location, Kubernetes control plane on loopback"
    );
    for policy in ["Parallel", "OrderedReady"] {
        run_once(&cp, &admin, policy, replicas).await?;
    }
    if let Some(rss) = peak_rss_mib() {
        println!(
            "peak RSS of the benchmark process (controllers + stand-in provider + harness): {rss:.0} MiB"
        );
    }
    Ok(())
}
