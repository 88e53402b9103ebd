//! Chaos: 200 Instances, a 20% platform error rate, and the provider process SIGKILLed and
//! restarted every few seconds. Everything converges; the ledger holds exactly one resource
//! per Instance; deleting them all empties it.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::conditions;
use datum_api::networking::{Location, LocationProvider, LocationSpec};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use tokio::process::{Child, Command};

const INSTANCES: usize = 200;
/// Kills while creating, and again while deleting; then the provider runs undisturbed.
const KILLS: usize = 6;
const KILL_EVERY: Duration = Duration::from_secs(3);
/// Bound on each phase, against a hung test.
const PATIENCE: Duration = Duration::from_secs(150);

fn start_provider(h: &common::SimHarness, config: &str, namespace: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_datum-provider-sim"))
        .args([
            "--provider-config",
            config,
            "--namespace",
            namespace,
            "--concurrency",
            "16",
            "--platform-rate",
            "1000",
            "--resync-seconds",
            "5",
        ])
        .env("KUBECONFIG", h.cp.kubeconfig_path())
        .env(
            "RUST_LOG",
            std::env::var("CHAOS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("CHAOS_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("the provider starts")
}

fn converged(instance: &Instance) -> bool {
    let list = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions::is_true(&list, "Programmed") && conditions::is_true(&list, "Running")
}

/// Polls `done` every second, SIGKILLing and restarting the provider every `KILL_EVERY`
/// for the first `kills` times. Returns the provider still running.
async fn churn_until(
    h: &common::SimHarness,
    config: &str,
    namespace: &str,
    mut provider: Child,
    kills: usize,
    what: &str,
    done: impl AsyncFn() -> bool,
) -> (Child, usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last_kill = tokio::time::Instant::now();
    let mut killed = 0;
    loop {
        if killed >= kills && done().await {
            return (provider, killed);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        if killed < kills && last_kill.elapsed() >= KILL_EVERY {
            provider.start_kill().expect("SIGKILL is sent");
            provider.wait().await.expect("the provider dies");
            killed += 1;
            provider = start_provider(h, config, namespace);
            last_kill = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn instances_converge_under_errors_and_provider_kills_and_leave_nothing_behind() {
    let h = common::harness("chaos").await;
    let namespace =
        h.cp.fresh_namespace(&h.client, "chaos")
            .await
            .expect("namespace");
    let config = format!("{namespace}-cfg");
    let location = format!("{namespace}-loc");
    let configs: Api<datum_api::provider_config::sim::ProviderConfig> = Api::all(h.client.clone());
    configs
        .patch(
            &config,
            &PatchParams::apply("chaos").force(),
            &Patch::Apply(&common::sim_config(&config, &h.state_dir, 20, vec![])),
        )
        .await
        .expect("the ProviderConfig applies");
    Api::<Location>::all(h.client.clone())
        .create(
            &PostParams::default(),
            &Location::new(
                &location,
                LocationSpec::new("self-managed", LocationProvider::sim()),
            ),
        )
        .await
        .expect("the Location is created");

    let instances: Api<Instance> = Api::namespaced(h.client.clone(), &namespace);
    let provider = start_provider(&h, &config, &namespace);
    let mut uids = BTreeSet::new();
    for i in 0..INSTANCES {
        let instance: Instance = serde_json::from_value(serde_json::json!({
            "apiVersion": "compute.datumapis.com/v1alpha",
            "kind": "Instance",
            "metadata": { "name": format!("web-{i}") },
            "spec": {
                "runtime": { "resources": {}, "sandbox": { "containers": [{ "name": "app", "image": "nginx" }] } },
                "networkInterfaces": [{ "network": { "name": "default" } }],
                "location": { "name": location },
                "controller": { "templateHash": "h1" },
            },
        }))
        .expect("a valid Instance");
        let created = instances
            .create(&PostParams::default(), &instance)
            .await
            .expect("created");
        uids.insert(created.uid().expect("a uid"));
    }

    let all_converged = async || {
        let list = instances
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.len() == INSTANCES && list.iter().all(converged)
    };
    let (provider, killed) = churn_until(
        &h,
        &config,
        &namespace,
        provider,
        KILLS,
        "every Instance converges",
        all_converged,
    )
    .await;
    assert_eq!(killed, KILLS, "the provider was killed while converging");

    // Exactly one resource per Instance, and the IDs recorded on the Instances are theirs.
    let ledger = h.ledger().read().expect("the ledger reads");
    let expected: BTreeSet<String> = uids.iter().map(|u| format!("datum-{u}")).collect();
    let names: Vec<String> = ledger.records.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names.len(), INSTANCES, "no duplicates, nothing leaked");
    assert_eq!(names.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let recorded: BTreeSet<String> = instances
        .list(&ListParams::default())
        .await
        .expect("lists")
        .items
        .iter()
        .filter_map(|i| {
            i.annotations()
                .get("sim.provider.datum.net/external-id")
                .cloned()
        })
        .collect();
    let ids: BTreeSet<String> = ledger.records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        recorded, ids,
        "every Instance records the ID of its own resource"
    );

    // Delete everything, killing the provider again meanwhile.
    instances
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("deletes");
    let all_gone = async || {
        instances
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
    };
    let (mut provider, _) = churn_until(
        &h,
        &config,
        &namespace,
        provider,
        KILLS / 2,
        "every Instance is gone",
        all_gone,
    )
    .await;
    let ledger = h.ledger().read().expect("the ledger reads");
    assert!(
        ledger.records.is_empty(),
        "the ledger is empty: {:?}",
        ledger.records
    );
    provider.start_kill().ok();
    let _ = provider.wait().await;
}
