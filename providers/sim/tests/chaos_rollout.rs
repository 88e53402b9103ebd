//! Chaos on the whole system: a rollout of Workloads on sim (10 % of platform calls fail,
//! each takes 50–500 ms) while a driver SIGKILLs the control-plane controllers and the
//! provider — each its own process — at random moments, and restarts kube-apiserver once
//! mid-rollout. Everything converges Ready; no Instance is duplicated; the sim ledger holds
//! exactly one resource per Instance, NetworkContext and Subnet; deleting the Workloads
//! (with more kills) leaves no Instance, WorkloadDeployment or machine behind, and deleting
//! the Network then empties the ledger.
//!
//! CI runs 200 Instances; the documented full run is
//! `DATUM_CHAOS_INSTANCES=1000 cargo test -p datum-provider-sim --test chaos_rollout -- --nocapture`.
//!
//! The controllers run in a child process: this test binary re-executed with
//! `CONTROL_PROCESS_ENV` set, running `datum_control::run` as the `datum-control` binary
//! does once it holds its Lease (without leader election, as `--no-leader-election`; with a
//! 30 s resync instead of 5 min, so a phase never waits minutes for a periodic pass).
//! A binary of another package has no `CARGO_BIN_EXE_*` here, and re-executing this one needs
//! no extra build. The provider is the `datum-provider-sim` binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use datum_api::compute::labels;
use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_api::networking::{Location, Network, NetworkContext, Subnet};
use datum_api::provider_config::sim::{Latency, ProviderConfig};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Set (to the namespace to manage) in the child that runs the controllers.
const CONTROL_PROCESS_ENV: &str = "DATUM_CHAOS_CONTROL_NAMESPACE";
const WORKLOADS: usize = 10;
/// Kills of each component while rolling out, and again while deleting.
const KILLS: usize = 4;
/// A component lives at least this long before it is killed again, so it gets some work done.
const MIN_LIFE: Duration = Duration::from_secs(3);

fn instances_wanted() -> usize {
    std::env::var("DATUM_CHAOS_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// Bound on each phase against a hung test, growing with the size of the run.
fn patience(instances: usize) -> Duration {
    Duration::from_secs(300 + 2 * instances as u64)
}

/// Runs only in the child process `Component::Control` starts: the controllers, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_process() {
    let Ok(namespace) = std::env::var(CONTROL_PROCESS_ENV) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let client = kube::Client::try_default()
        .await
        .expect("a client from KUBECONFIG");
    let settings = datum_control::Settings {
        namespace: Some(namespace),
        resync: Duration::from_secs(30),
        ..datum_control::Settings::default()
    };
    datum_control::run(client, settings, std::future::pending()).await;
}

/// `program` under `setpriv --pdeathsig KILL` (which execs it, keeping the pid), so a
/// component dies with the test even when the test itself is SIGKILLed.
fn supervised(program: &std::path::Path) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    command
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Component {
    Control,
    Provider,
}

/// What the chaos driver runs and kills.
struct Chaos<'h> {
    h: &'h common::SimHarness,
    namespace: String,
    config: String,
    running: BTreeMap<Component, (Child, Instant)>,
    kills: BTreeMap<Component, usize>,
    /// Exits nobody asked for (a component crashing on its own).
    crashes: Vec<String>,
    apiserver_restarts: usize,
}

impl<'h> Chaos<'h> {
    fn new(h: &'h common::SimHarness, namespace: &str, config: &str) -> Self {
        let mut chaos = Self {
            h,
            namespace: namespace.to_owned(),
            config: config.to_owned(),
            running: BTreeMap::new(),
            kills: BTreeMap::new(),
            crashes: Vec::new(),
            apiserver_restarts: 0,
        };
        for component in [Component::Control, Component::Provider] {
            chaos.start(component);
        }
        chaos
    }

    fn start(&mut self, component: Component) {
        let stderr = || {
            if std::env::var_os("CHAOS_DEBUG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let log = std::env::var("CHAOS_LOG").unwrap_or_else(|_| "warn".into());
        let mut command = match component {
            Component::Control => {
                let mut command =
                    supervised(&std::env::current_exe().expect("this test binary's path"));
                command
                    .args([
                        "--exact",
                        "control_plane_process",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(CONTROL_PROCESS_ENV, &self.namespace);
                command
            }
            Component::Provider => {
                let mut command = supervised(std::path::Path::new(env!(
                    "CARGO_BIN_EXE_datum-provider-sim"
                )));
                command.args([
                    "--provider-config",
                    &self.config,
                    "--namespace",
                    &self.namespace,
                    "--concurrency",
                    "16",
                    "--platform-rate",
                    "1000",
                    "--resync-seconds",
                    "30",
                ]);
                command
            }
        };
        let child = command
            .env("KUBECONFIG", self.h.cp.kubeconfig_path())
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("the component starts");
        self.running.insert(component, (child, Instant::now()));
    }

    /// SIGKILLs `component`, waits for it to die and starts it again.
    async fn kill(&mut self, component: Component) {
        if let Some((mut child, _)) = self.running.remove(&component) {
            child.start_kill().expect("SIGKILL is sent");
            child.wait().await.expect("the component dies");
        }
        *self.kills.entry(component).or_default() += 1;
        self.start(component);
    }

    /// Restarts a component that exited on its own, recording the crash.
    fn revive_crashed(&mut self) {
        let crashed: Vec<(Component, String)> = self
            .running
            .iter_mut()
            .filter_map(|(component, (child, _))| {
                child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|status| (*component, format!("{component:?} exited: {status}")))
            })
            .collect();
        for (component, crash) in crashed {
            eprintln!("chaos: {crash}");
            self.crashes.push(crash);
            self.start(component);
        }
    }

    /// Polls `progress` (0 to 1) every second until it reports done and every component has
    /// been killed `kills` times in this phase. Each component's kills happen at random points
    /// of the progress (drawn uniformly below 0.9, at least `MIN_LIFE` apart), so they spread
    /// over the phase however long it takes. When `restart_apiserver_at` is given, restarts
    /// kube-apiserver once the progress reaches that fraction.
    async fn churn_until(
        &mut self,
        what: &str,
        kills: usize,
        mut restart_apiserver_at: Option<f64>,
        progress: impl AsyncFn() -> Option<f64>,
    ) {
        let deadline = Instant::now() + patience(instances_wanted());
        let start_kills = self.kills.clone();
        let mut kill_at: BTreeMap<Component, Vec<f64>> = [Component::Control, Component::Provider]
            .into_iter()
            .map(|component| {
                let mut points: Vec<f64> =
                    (0..kills).map(|_| rand::random_range(0.0..0.9)).collect();
                points.sort_by(|a, b| b.total_cmp(a)); // the next one last, for `pop`
                (component, points)
            })
            .collect();
        loop {
            self.revive_crashed();
            let fraction = progress().await;
            let killed_enough = [Component::Control, Component::Provider]
                .iter()
                .all(|c| self.kills_since(&start_kills, *c) >= kills);
            if killed_enough && fraction.is_some_and(|f| f >= 1.0) && restart_apiserver_at.is_none()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting: {what} (progress {fraction:?})"
            );
            if let Some(at) = restart_apiserver_at
                && fraction.is_some_and(|f| f >= at)
            {
                eprintln!("chaos: restarting kube-apiserver at {fraction:?} of: {what}");
                let restarting = Instant::now();
                self.h
                    .cp
                    .restart_apiserver()
                    .await
                    .expect("kube-apiserver restarts");
                eprintln!(
                    "chaos: kube-apiserver ready again after {:.1} s",
                    restarting.elapsed().as_secs_f64()
                );
                self.apiserver_restarts += 1;
                restart_apiserver_at = None;
            }
            for component in [Component::Control, Component::Provider] {
                let next = kill_at.get(&component).and_then(|p| p.last().copied());
                let started = self.running.get(&component).map(|(_, at)| *at);
                let due = next.is_some_and(|point| fraction.is_some_and(|f| f >= point))
                    && started.is_some_and(|at| at.elapsed() >= MIN_LIFE);
                if due {
                    eprintln!("chaos: SIGKILL {component:?} at {fraction:?} of: {what}");
                    self.kill(component).await;
                    kill_at.get_mut(&component).and_then(Vec::pop);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn kills_since(&self, start: &BTreeMap<Component, usize>, component: Component) -> usize {
        self.kills.get(&component).copied().unwrap_or_default()
            - start.get(&component).copied().unwrap_or_default()
    }

    async fn stop(mut self) {
        for (_, (mut child, _)) in std::mem::take(&mut self.running) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

fn ready(instance: &Instance) -> bool {
    let conditions = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    datum_api::conditions::is_true(conditions, "Ready")
}

async fn list<K>(api: &Api<K>) -> Option<Vec<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default()).await.ok().map(|l| l.items)
}

/// `datum-<uid>` for each object: the name the SDK gives its external resource.
fn external_names<K: Resource>(objects: &[K]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| format!("datum-{}", o.meta().uid.as_deref().expect("a uid")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_converges_while_controllers_provider_and_apiserver_are_killed() {
    let total = instances_wanted();
    let replicas = total.div_ceil(WORKLOADS);
    let total = replicas * WORKLOADS;
    let h = common::harness("chaos-rollout").await;
    let client = h.client.clone();
    let ns =
        h.cp.fresh_namespace(&client, "chaos-rollout")
            .await
            .expect("namespace");
    let config_name = format!("{ns}-cfg");
    let location = format!("{ns}-loc");

    let mut config: ProviderConfig = common::sim_config(&config_name, &h.state_dir, 10, vec![]);
    config.spec.latency = Latency {
        min_millis: 50,
        max_millis: 500,
    };
    Api::<ProviderConfig>::all(client.clone())
        .patch(
            &config_name,
            &PatchParams::apply("chaos").force(),
            &Patch::Apply(&config),
        )
        .await
        .expect("the ProviderConfig applies");
    let location_object: Location = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
        "metadata": {"name": location},
        "spec": {"locationClassName": "datum-managed", "provider": {"sim": {}},
                 "topology": {"topology.datum.net/city-code": "CHA"}}
    }))
    .expect("a Location");
    Api::<Location>::all(client.clone())
        .create(&PostParams::default(), &location_object)
        .await
        .expect("the Location is created");
    let networks = Api::<Network>::namespaced(client.clone(), &ns);
    let network: Network = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}
    }))
    .expect("a Network");
    networks
        .create(&PostParams::default(), &network)
        .await
        .expect("the Network is created");

    let mut chaos = Chaos::new(&h, &ns, &config_name);
    let workloads = Api::<Workload>::namespaced(client.clone(), &ns);
    for w in 0..WORKLOADS {
        let workload: Workload = serde_json::from_value(json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
            "metadata": {"name": format!("w{w}")},
            "spec": {
                "template": {"spec": {
                    "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                                "sandbox": {"containers": [{"name": "app", "image": "example.org/app:1"}]}},
                    "networkInterfaces": [{"network": {"name": "default"}}]
                }},
                "placements": [{"name": "p", "locations": [{"name": location}],
                                "scaleSettings": {"minReplicas": replicas,
                                                  "instanceManagementPolicy": "Parallel"}}]
            }
        }))
        .expect("a Workload");
        workloads
            .create(&PostParams::default(), &workload)
            .await
            .expect("the Workload is created");
    }
    println!(
        "chaos: {total} Instances = {WORKLOADS} Workloads × {replicas}, 10 % errors, 50–500 ms per platform call"
    );

    // Roll out, with kills, and the API server restarted when a third of the Instances exist.
    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    let started = Instant::now();
    chaos
        .churn_until(
            "every Instance is Ready",
            KILLS,
            Some(1.0 / 3.0),
            async || {
                let list = list(&instances).await?;
                let existing = list.len() as f64 / total as f64;
                let ready = list.iter().filter(|i| ready(i)).count() as f64 / total as f64;
                Some(if list.len() == total {
                    ready
                } else {
                    existing / 2.0
                })
            },
        )
        .await;
    let rollout = started.elapsed();
    let workloads_ready = async || {
        list(&workloads).await.is_some_and(|all| {
            all.len() == WORKLOADS
                && all.iter().all(|w| {
                    w.status
                        .as_ref()
                        .is_some_and(|s| s.ready_replicas as usize == replicas)
                })
        })
    };
    chaos
        .churn_until(
            "every Workload reports its replicas Ready",
            0,
            None,
            async || workloads_ready().await.then_some(1.0),
        )
        .await;
    assert_eq!(
        chaos.apiserver_restarts, 1,
        "kube-apiserver was restarted once"
    );

    // No duplicates: each deployment has exactly the ordinals 0..replicas, one Instance each.
    let all = list(&instances).await.expect("Instances list");
    let deployments = list(&Api::<WorkloadDeployment>::namespaced(client.clone(), &ns))
        .await
        .expect("WorkloadDeployments list");
    assert_eq!(deployments.len(), WORKLOADS, "one deployment per Workload");
    let mut ordinals: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for instance in &all {
        let marks = instance.labels();
        let deployment = marks
            .get(labels::WORKLOAD_DEPLOYMENT_NAME)
            .expect("the deployment label")
            .clone();
        let index: u32 = marks
            .get(labels::INSTANCE_INDEX)
            .and_then(|i| i.parse().ok())
            .expect("the index label");
        assert_eq!(instance.name_any(), format!("{deployment}-{index}"));
        ordinals.entry(deployment).or_default().push(index);
    }
    for deployment in &deployments {
        let mut seen = ordinals.remove(&deployment.name_any()).unwrap_or_default();
        seen.sort_unstable();
        let expected: Vec<u32> = (0..replicas as u32).collect();
        assert_eq!(
            seen,
            expected,
            "{} has each ordinal once",
            deployment.name_any()
        );
    }
    assert!(
        ordinals.is_empty(),
        "no Instance of an unknown deployment: {ordinals:?}"
    );

    // The ledger: exactly one resource per Instance, NetworkContext and Subnet, named for
    // its UID, and each Instance records the ID of its own.
    let contexts = list(&Api::<NetworkContext>::namespaced(client.clone(), &ns))
        .await
        .expect("NetworkContexts list");
    let subnets = list(&Api::<Subnet>::namespaced(client.clone(), &ns))
        .await
        .expect("Subnets list");
    let ledger = h.ledger().read().expect("the ledger reads");
    let by_kind = |kind: &str| -> Vec<String> {
        ledger
            .records
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.name.clone())
            .collect()
    };
    for (kind, expected) in [
        ("instance", external_names(&all)),
        ("network_context", external_names(&contexts)),
        ("subnet", external_names(&subnets)),
    ] {
        let names = by_kind(kind);
        assert_eq!(
            names.len(),
            expected.len(),
            "one {kind} resource each, no duplicate"
        );
        assert_eq!(
            names.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{kind} resources"
        );
    }
    assert_eq!(
        ledger.records.len(),
        all.len() + contexts.len() + subnets.len(),
        "nothing else in the ledger: {:?}",
        ledger.records
    );
    let recorded: BTreeSet<String> = all
        .iter()
        .filter_map(|i| {
            i.annotations()
                .get("sim.provider.datum.net/external-id")
                .cloned()
        })
        .collect();
    let ids: BTreeSet<String> = ledger
        .records
        .iter()
        .filter(|r| r.kind == "instance")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        recorded, ids,
        "every Instance records the ID of its own machine"
    );
    println!(
        "chaos: all {total} Ready after {:.1} s; kills {:?}; kube-apiserver restarted {}",
        rollout.as_secs_f64(),
        chaos.kills,
        chaos.apiserver_restarts
    );

    // Delete every Workload, killing both components again meanwhile: nothing is left.
    let deleting = Instant::now();
    for w in 0..WORKLOADS {
        workloads
            .delete(&format!("w{w}"), &DeleteParams::background())
            .await
            .expect("the Workload is deleted");
    }
    let deployments_api = Api::<WorkloadDeployment>::namespaced(client.clone(), &ns);
    chaos
        .churn_until(
            "every Workload leaves nothing behind",
            KILLS,
            None,
            async || {
                let left = list(&instances).await?.len()
                    + list(&deployments_api).await?.len()
                    + list(&workloads).await?.len();
                let ledger = h.ledger();
                let machines = tokio::task::spawn_blocking(move || ledger.read())
                    .await
                    .ok()?
                    .ok()?
                    .records
                    .iter()
                    .filter(|r| r.kind == "instance")
                    .count();
                Some(if left + machines == 0 {
                    1.0
                } else {
                    1.0 - (left + machines) as f64 / (2 * total + 2 * WORKLOADS) as f64
                })
            },
        )
        .await;
    let teardown = deleting.elapsed();

    // Then the Network: the ledger empties.
    networks
        .delete("default", &DeleteParams::foreground())
        .await
        .expect("the Network is deleted");
    chaos
        .churn_until("the ledger is empty", 0, None, async || {
            let ledger = h.ledger();
            let left = tokio::task::spawn_blocking(move || ledger.read())
                .await
                .ok()?
                .ok()?
                .records
                .len();
            (left == 0).then_some(1.0)
        })
        .await;
    println!(
        "chaos: deleted in {:.1} s; kills in all {:?}; crashes {:?}",
        teardown.as_secs_f64(),
        chaos.kills,
        chaos.crashes
    );
    let crashes = chaos.crashes.clone();
    chaos.stop().await;
    assert!(
        crashes.is_empty(),
        "no component exits unless killed: {crashes:?}"
    );
    let _ = std::fs::remove_dir_all(&h.state_dir);
}
