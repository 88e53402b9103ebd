//! Fuzzed manifests, reconciled for real: the generator of `crates/api/tests/fuzz_manifests.rs`
//! mutates a seed of every Datum kind, and each manifest is created on the real API server
//! (not a dry run) while the control-plane controllers and the sim provider run against it.
//! Every manifest the server rejects has a message naming a field; every one it accepts is
//! reconciled without a panic anywhere in the process; afterwards the controllers and the
//! provider are still running and take a known-good Workload to Ready.
//!
//! Accepted objects live while the next `WINDOW` cases are created, then are deleted, so the
//! controllers see creates, updates from their own status writes, and deletes, without
//! thousands of objects piling up. Seeds include a Workload placed on the sim Location and an
//! Instance located there, so the provider reconciles fuzzed objects too.
//!
//! CI runs 1,000 cases; the full-size campaign is
//! `DATUM_FUZZ_CASES=10000 cargo test -p datum-provider-sim --test fuzz_reconcile -- --nocapture`.

#[path = "../../../crates/api/tests/common/mod.rs"]
mod api_env;
mod common;
#[path = "../../../crates/api/tests/fuzz/mod.rs"]
mod fuzz;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datum_api::compute::{Instance, labels};
use datum_api::provider_config::sim::ProviderConfig;
use datum_provider_sim::SimProvider;
use datum_runtime::shutdown::CancellationToken;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// How many accepted objects exist at once.
const WINDOW: usize = 50;
const PATIENCE: Duration = Duration::from_secs(180);

/// Panics anywhere in this process, counted by a hook that then runs the default one.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn workload(name: &str, location: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {
                "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                            "sandbox": {"containers": [{"name": "web", "image": "nginx",
                                                        "ports": [{"name": "http", "port": 80}]}]}},
                "networkInterfaces": [{"network": {"name": "default"}}]
            }},
            "placements": [{"name": "here", "locations": [{"name": location}],
                            "scaleSettings": {"minReplicas": replicas}}]
        }
    })
}

fn ready(instance: &Instance) -> bool {
    let conditions = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    datum_api::conditions::is_true(conditions, "Ready")
}

#[test]
fn fuzzed_manifests_are_reconciled_without_a_panic() {
    count_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = runtime.block_on(api_env::env_named("fz"));
    let ns = env.namespace.clone();
    let client = env.client.clone();
    let location = format!("{ns}-sim");
    let config_name = format!("{ns}-sim");
    let state_dir = std::env::temp_dir().join(format!("datum-sim-{}-fuzz", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);

    // A sim Location and ProviderConfig, the Network the Workloads use, and both components.
    let config = common::sim_config(&config_name, &state_dir, 0, vec![]);
    let (control, provider, stop) = runtime.block_on(async {
        Api::<ProviderConfig>::all(client.clone())
            .patch(
                &config_name,
                &PatchParams::apply("fuzz").force(),
                &Patch::Apply(&config),
            )
            .await
            .expect("the ProviderConfig applies");
        for object in [
            json!({"apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
                   "metadata": {"name": location},
                   "spec": {"locationClassName": "datum-managed", "provider": {"sim": {}},
                            "topology": {"topology.datum.net/city-code": "FZZ"}}}),
            json!({"apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
                   "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}}),
        ] {
            env.create_object(&object).await.expect("created");
        }
        let stop = CancellationToken::new();
        let settings = datum_control::Settings {
            namespace: Some(ns.clone()),
            resync: Duration::from_secs(5),
            retry: Duration::from_millis(250),
            ..datum_control::Settings::default()
        };
        let control = tokio::spawn(datum_control::run(
            client.clone(),
            settings,
            stop.clone().cancelled_owned(),
        ));
        let mut options = datum_provider::Options::new(config_name.clone());
        options.namespace = Some(ns.clone());
        options.resync = Duration::from_secs(5);
        let provider = tokio::spawn(datum_provider::run(
            SimProvider,
            client.clone(),
            options,
            stop.clone(),
        ));
        (control, provider, stop)
    });

    let samples = std::fs::read_dir(api_env::upstream("samples"))
        .expect("samples")
        .flat_map(|entry| {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("sample");
            api_env::documents(&text)
        })
        .map(|obj| serde_json::to_value(&obj).expect("serializable"));
    let mut seeds = fuzz::seeds(&ns, samples);
    // Seeds the sim provider serves: a Workload placed on its Location, and an Instance there.
    seeds.push(workload(&format!("{ns}-on-sim"), &location, 2));
    for seed in &mut seeds {
        if seed["kind"] == "Instance" {
            seed["spec"]["location"] = json!({"name": location});
        }
    }

    let cases = fuzz::cases(1000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = Mutex::new((0u32, 0u32));
    let window: Mutex<VecDeque<Value>> = Mutex::new(VecDeque::new());
    let serial = AtomicUsize::new(0);
    let result = runner.run(&fuzz::case(seeds.len()), |case| {
        let mut obj = fuzz::apply(&seeds, &case);
        let n = serial.fetch_add(1, Ordering::Relaxed);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or("fuzz")
            .to_owned();
        obj["metadata"]["name"] = format!("{name}-{n}").into();
        match runtime.block_on(env.create_object(&obj)) {
            Ok(_) => {
                tally.lock().expect("not poisoned").0 += 1;
                let expired = {
                    let mut window = window.lock().expect("not poisoned");
                    window.push_back(obj);
                    (window.len() > WINDOW)
                        .then(|| window.pop_front())
                        .flatten()
                };
                if let Some(old) = expired {
                    runtime
                        .block_on(env.delete_object(&old))
                        .map_err(|e| TestCaseError::fail(format!("delete failed: {e}")))?;
                }
            }
            Err(kube::Error::Api(status)) => {
                tally.lock().expect("not poisoned").1 += 1;
                prop_assert!(
                    status.code == 422 || status.code == 400,
                    "{} {} for {obj}",
                    status.code,
                    status.message
                );
                prop_assert!(
                    fuzz::names_a_field(&status.message),
                    "no field named in {:?} for {obj}",
                    status.message
                );
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other} for {obj}"))),
        }
        Ok(())
    });
    let (accepted, rejected) = *tally.lock().expect("not poisoned");
    println!(
        "fuzz reconcile: {cases} manifests, {accepted} accepted, created and reconciled, {rejected} rejected with a field-named error"
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(
        accepted > cases / 10,
        "enough manifests are accepted ({accepted})"
    );

    // The components survived it all and still do their job.
    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    let left: Vec<Value> = window.lock().expect("not poisoned").drain(..).collect();
    runtime.block_on(async {
        for old in left {
            env.delete_object(&old).await.expect("deleted");
        }
        env.create_object(&workload("canary", &location, 2))
            .await
            .expect("the canary Workload is created");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let canaries: Vec<Instance> = instances
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|i| {
                    i.labels().get(labels::WORKLOAD_NAME).map(String::as_str) == Some("canary")
                })
                .collect();
            if canaries.len() == 2 && canaries.iter().all(ready) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the canary Workload did not reach Ready after the campaign"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    assert!(
        !control.is_finished() && !provider.is_finished(),
        "the controllers and the provider are still running"
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "nothing panicked while reconciling fuzzed objects (see the panic messages above)"
    );
    stop.cancel();
    runtime.block_on(async {
        let _ = control.await;
        let _ = provider.await;
    });
    let _ = std::fs::remove_dir_all(&state_dir);
}
