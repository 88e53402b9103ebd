//! Scale benchmark: W Workloads spread over L Locations, N Instances in all, run by the
//! control-plane controllers and the sim provider (zero latency, no errors) on a real
//! control plane. Times apply → every Instance Ready, counts the API requests each
//! component issued, and reports CPU time and peak RSS.
//!
//! ```sh
//! cargo bench -p datum-provider-sim --bench scale                    # 1,000 instances
//! cargo bench -p datum-provider-sim --bench scale -- 10000 50 5      # instances workloads locations
//! ```
//!
//! The controllers and the provider run in this process (each with its own counted client),
//! so CPU time and peak RSS cover both plus the harness: upper bounds for each component.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datum_api::compute::{Instance, Workload};
use datum_api::networking::{Location, Network};
use datum_api::provider_config::sim::ProviderConfig;
use datum_provider_sim::SimProvider;
use datum_runtime::shutdown::CancellationToken;
use datum_testenv::{ControlPlane, Options};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

type Counter = Arc<AtomicU64>;

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

fn proc_status(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn ready(instance: &Instance) -> bool {
    let conditions = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    datum_api::conditions::is_true(conditions, "Ready")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let instances = numbers.first().copied().unwrap_or(1000);
    let workloads = numbers.get(1).copied().unwrap_or(10).max(1);
    let locations = numbers.get(2).copied().unwrap_or(5).max(1);
    let per_placement = instances / (workloads * locations);
    anyhow::ensure!(
        per_placement >= 1,
        "fewer instances than workload × location pairs"
    );
    let total = per_placement * workloads * locations;

    let cp = ControlPlane::start(Options::default()).await?;
    let admin = cp.admin_client().await?;
    datum_testenv::install_crds(&admin, &datum_api::crds::all()).await?;
    let ns = cp.fresh_namespace(&admin, "scale").await?;
    let state = std::env::temp_dir().join(format!("datum-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);

    let config: ProviderConfig = serde_json::from_value(json!({
        "apiVersion": "sim.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
        "metadata": {"name": "scale"}, "spec": {"stateDir": state.display().to_string()}
    }))?;
    Api::<ProviderConfig>::all(admin.clone())
        .patch(
            "scale",
            &PatchParams::apply("scale"),
            &Patch::Apply(&config),
        )
        .await?;
    let mut names = Vec::new();
    for l in 0..locations {
        let name = format!("scale-{l}");
        let location: Location = serde_json::from_value(json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": {"name": name},
            "spec": {"locationClassName": "datum-managed", "provider": {"sim": {}},
                     "topology": {"topology.datum.net/city-code": format!("SC{l}")}}
        }))?;
        Api::<Location>::all(admin.clone())
            .create(&PostParams::default(), &location)
            .await?;
        names.push(json!({"name": name}));
    }
    let network: Network = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}
    }))?;
    Api::<Network>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &network)
        .await?;

    let control_requests: Counter = Arc::default();
    let provider_requests: Counter = Arc::default();
    let stop = CancellationToken::new();
    let settings = datum_control::Settings {
        namespace: Some(ns.clone()),
        ..datum_control::Settings::default()
    };
    let control = tokio::spawn(datum_control::run(
        counting_client(&cp, control_requests.clone()).await?,
        settings,
        stop.clone().cancelled_owned(),
    ));
    let mut options = datum_provider::Options::new("scale");
    options.namespace = Some(ns.clone());
    options.concurrency = 32;
    options.platform_rate = 100_000.0;
    options.platform_burst = 100_000;
    let provider = tokio::spawn(datum_provider::run(
        SimProvider,
        counting_client(&cp, provider_requests.clone()).await?,
        options,
        stop.clone(),
    ));

    println!(
        "scale benchmark: {total} instances = {workloads} workloads × {locations} locations × {per_placement}, sim provider at zero latency"
    );
    let cpu_before = cpu_seconds().unwrap_or_default();
    let started = Instant::now();
    let workloads_api = Api::<Workload>::namespaced(admin.clone(), &ns);
    for w in 0..workloads {
        let workload: Workload = serde_json::from_value(json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
            "metadata": {"name": format!("w{w}")},
            "spec": {
                "template": {"spec": {
                    "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                                "sandbox": {"containers": [{"name": "app", "image": "example.org/app:1"}]}},
                    "networkInterfaces": [{"network": {"name": "default"}}]
                }},
                "placements": [{"name": "p", "locations": names,
                                "scaleSettings": {"minReplicas": per_placement, "instanceManagementPolicy": "Parallel"}}]
            }
        }))?;
        workloads_api
            .create(&PostParams::default(), &workload)
            .await?;
    }
    let instances_api = Api::<Instance>::namespaced(admin.clone(), &ns);
    let deadline = started + Duration::from_secs(3 * 3600);
    loop {
        let list = instances_api.list(&ListParams::default()).await?;
        let ready_count = list.items.iter().filter(|i| ready(i)).count();
        if list.items.len() == total && ready_count == total {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not converged after 3 h ({ready_count}/{total} ready)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds().unwrap_or_default() - cpu_before;
    let control_n = control_requests.load(Ordering::Relaxed);
    let provider_n = provider_requests.load(Ordering::Relaxed);
    println!(
        "all {total} Ready in {:.1} s ({:.0} instances/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "API requests: control plane {control_n} ({:.2}/instance), provider {provider_n} ({:.2}/instance)",
        control_n as f64 / total as f64,
        provider_n as f64 / total as f64
    );
    println!(
        "CPU time of the process (controllers + provider + harness): {cpu:.1} s; peak RSS {:.0} MiB",
        proc_status("VmHWM:").unwrap_or_default() / 1024.0
    );

    for w in 0..workloads {
        workloads_api
            .delete(&format!("w{w}"), &DeleteParams::background())
            .await?;
    }
    stop.cancel();
    let _ = control.await;
    let _ = provider.await;
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
