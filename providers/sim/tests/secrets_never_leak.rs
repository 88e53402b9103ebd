//! No Secret value appears in any log line, Event or object. The controllers and the sim
//! provider run in this process with every tracing event at DEBUG captured to a buffer; the
//! provider's credentials Secret and a Secret the Workload mounts and reads into its
//! environment hold distinctive random values. After a Workload goes to Ready and is deleted,
//! the test searches the logs, every Event (core and `events.k8s.io`) and every object of
//! every listable resource in the cluster except Secrets themselves — statuses included —
//! for each value, plain and base64-encoded.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datum_api::compute::{Instance, Workload};
use datum_api::networking::{Location, Network};
use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::sim::ProviderConfig;
use datum_provider_sim::SimProvider;
use datum_runtime::shutdown::CancellationToken;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, verbs};
use kube::{Api, Client};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(120);

/// Everything every subscriber writes, kept for the search.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
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

/// The forms a value can take on the wire: itself, and base64 as in a Secret's `data`.
fn forms(value: &str) -> Vec<String> {
    let encoded = serde_json::to_value(ByteString(value.as_bytes().to_vec()))
        .expect("base64")
        .as_str()
        .expect("a string")
        .to_owned();
    vec![value.to_owned(), encoded]
}

/// Every object of every listable resource except Secrets, as JSON text, with where it is.
async fn every_object(client: &Client) -> Vec<(String, String)> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if resource.plural == "secrets" || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            // Namespaced or not, `all` lists every object of the resource.
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for object in list.items {
                let place = format!(
                    "{} {}/{}",
                    resource.plural,
                    object.metadata.namespace.clone().unwrap_or_default(),
                    object.metadata.name.clone().unwrap_or_default()
                );
                found.push((place, serde_json::to_string(&object).expect("JSON")));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_a_log_an_event_or_a_status() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let h = common::harness("secrets").await;
    let client = h.client.clone();
    let ns =
        h.cp.fresh_namespace(&client, "secrets")
            .await
            .expect("namespace");
    let token = format!("canary-token-{:032x}", rand::random::<u128>());
    let app_secret = format!("canary-app-{:032x}", rand::random::<u128>());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for (name, key, value) in [
        ("sim-credentials", "token", &token),
        ("app", "password", &app_secret),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name}, "stringData": {key: value}
        }))
        .expect("a Secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("the Secret is created");
    }

    let config_name = format!("{ns}-sim");
    let mut config = common::sim_config(&config_name, &h.state_dir, 20, vec![]);
    config.spec.credentials_secret_ref = Some(SecretKeyRef {
        name: "sim-credentials".into(),
        namespace: ns.clone(),
        key: "token".into(),
    });
    Api::<ProviderConfig>::all(client.clone())
        .patch(
            &config_name,
            &PatchParams::apply("secrets").force(),
            &Patch::Apply(&config),
        )
        .await
        .expect("the ProviderConfig applies");
    let location: Location = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
        "metadata": {"name": format!("{ns}-loc")},
        "spec": {"locationClassName": "datum-managed", "provider": {"sim": {}},
                 "topology": {"topology.datum.net/city-code": "SEC"}}
    }))
    .expect("a Location");
    Api::<Location>::all(client.clone())
        .create(&PostParams::default(), &location)
        .await
        .expect("the Location is created");
    let network: Network = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}
    }))
    .expect("a Network");
    Api::<Network>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &network)
        .await
        .expect("the Network is created");

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

    let workload: Workload = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": {"name": "web"},
        "spec": {
            "template": {"spec": {
                "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                            "sandbox": {"containers": [{
                                "name": "web", "image": "nginx",
                                "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app", "key": "password"}}}],
                                "envFrom": [{"secretRef": {"name": "app"}}],
                                "volumeAttachments": [{"name": "creds", "mountPath": "/creds"}]
                            }]}},
                "networkInterfaces": [{"network": {"name": "default"}}],
                "volumes": [{"name": "creds", "secret": {"secretName": "app"}}]
            }},
            "placements": [{"name": "here", "locations": [{"name": format!("{ns}-loc")}],
                            "scaleSettings": {"minReplicas": 2}}]
        }
    }))
    .expect("a Workload");
    let workloads = Api::<Workload>::namespaced(client.clone(), &ns);
    workloads
        .create(&PostParams::default(), &workload)
        .await
        .expect("the Workload is created");
    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    wait_until("2 Instances are Ready", || async {
        instances
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.len() == 2 && l.items.iter().all(ready))
    })
    .await;

    // Every object now, statuses included; then the teardown's logs and events too.
    // A planted value, not a secret, in a ConfigMap and a log line: the search must find it.
    let planted = format!("planted-{:032x}", rand::random::<u128>());
    let configmap: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "planted"}, "data": {"value": planted}
    }))
    .expect("a ConfigMap");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &configmap)
        .await
        .expect("the ConfigMap is created");
    tracing::debug!(value = %planted, "planted for the search's self-check");
    let objects = every_object(&client).await;
    workloads
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("the Workload is deleted");
    wait_until("the Instances are gone", || async {
        instances
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
    })
    .await;
    stop.cancel();
    let _ = control.await;
    let _ = provider.await;

    let events: Vec<(String, String)> = every_object(&client)
        .await
        .into_iter()
        .filter(|(place, _)| place.starts_with("events "))
        .collect();
    let text = logs.text();
    // The search looks where it claims to: DEBUG lines of our crates, the Instances, the
    // provider's Events, the ProviderConfig naming the Secret.
    assert!(
        text.contains("DEBUG") && text.contains("datum_provider"),
        "the provider's DEBUG logs are captured"
    );
    assert!(
        objects
            .iter()
            .any(|(p, o)| p.starts_with("instances ") && o.contains("\"status\"")),
        "the Instances and their status are searched"
    );
    assert!(
        text.contains(&planted) && objects.iter().any(|(_, o)| o.contains(&planted)),
        "the search finds a planted value in the logs and the objects"
    );
    assert!(
        objects.iter().any(|(_, o)| o.contains("sim-credentials")),
        "the ProviderConfig naming the Secret is searched"
    );
    assert!(
        events.iter().any(|(_, e)| e.contains(&ns)),
        "this test's Events are searched"
    );
    println!(
        "searched {} log bytes, {} objects, {} events",
        text.len(),
        objects.len(),
        events.len()
    );

    let mut leaks = Vec::new();
    for secret in [&token, &app_secret] {
        for form in forms(secret) {
            if let Some(line) = text.lines().find(|l| l.contains(&form)) {
                leaks.push(format!("log line: {line}"));
            }
            for (place, object) in objects.iter().chain(&events) {
                if object.contains(&form) {
                    leaks.push(format!("{place}: {object}"));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "Secret values leaked:\n{}",
        leaks.join("\n")
    );
    let _ = std::fs::remove_dir_all(&h.state_dir);
}
