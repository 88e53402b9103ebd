//! On a real control plane: a quota error from Compute Engine lands in the Instance's
//! `Programmed` condition with Google's message quoted, the object converges once quota
//! is back, and neither the key nor a token appears in its status or Events.

mod common;

use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::networking::{Location, LocationProvider, LocationSpec};
use datum_gcp_fake::InjectedError;
use datum_provider::conformance::{Behaviour, Harness};
use datum_provider::{Options, run};
use datum_runtime::shutdown::CancellationToken;
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn quota_errors_quote_google_in_the_condition_and_recover() {
    let h = common::harness().await;
    let client = h.client();
    let namespace = h.fresh_namespace("quota").await;
    let location = format!("{namespace}-loc");
    let spec = LocationSpec::new(
        "self-managed",
        LocationProvider::named("gcp", h.location_settings()).expect("a gcp Location"),
    );
    Api::<Location>::all(client.clone())
        .create(&PostParams::default(), &Location::new(&location, spec))
        .await
        .expect("the Location");
    let config_name = format!("{namespace}-cfg");
    let mut config = h.config(&config_name, Behaviour::Healthy).await;
    config.meta_mut().managed_fields = None;
    Api::<datum_api::provider_config::gcp::ProviderConfig>::all(client.clone())
        .patch(
            &config_name,
            &PatchParams::apply("gcp-tests").force(),
            &Patch::Apply(&config),
        )
        .await
        .expect("the ProviderConfig");
    let message = "Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1.";
    for _ in 0..1000 {
        h.fake.healthy.faults.fail_next(
            "POST",
            "/instances",
            InjectedError::quota_exceeded(message),
        );
    }

    let mut options = Options::new(&config_name);
    options.namespace = Some(namespace.clone());
    options.resync = Duration::from_secs(1);
    options.progress_requeue = Duration::from_millis(200);
    options.config_poll = Duration::from_millis(300);
    options.backoff_initial = Duration::from_millis(50);
    options.backoff_max = Duration::from_millis(500);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        common::provider(),
        client.clone(),
        options,
        shutdown.clone(),
    ));

    let instances: Api<Instance> = Api::namespaced(client.clone(), &namespace);
    let instance: Instance = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Instance",
        "metadata": { "name": "web-0" },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-standard-2" },
                "sandbox": { "containers": [{ "name": "app", "image": "nginx:1" }] },
            },
            "networkInterfaces": [{ "network": { "name": "default" } }],
            "location": { "name": location },
        },
    }))
    .expect("an Instance");
    instances
        .create(&PostParams::default(), &instance)
        .await
        .expect("created");

    let condition = eventually("Programmed=False, QuotaExceeded", || async {
        let i = instances.get("web-0").await.ok()?;
        let list = i.status?.conditions?;
        list.into_iter()
            .find(|c| c.type_ == "Programmed" && c.reason == "QuotaExceeded")
    })
    .await;
    assert_eq!(condition.status, "False");
    assert!(condition.message.contains(message), "{}", condition.message);

    h.fake.healthy.faults.clear();
    let programmed = eventually("Programmed=True after quota returns", || async {
        let i = instances.get("web-0").await.ok()?;
        let list = i.status.clone()?.conditions?;
        list.iter()
            .any(|c| c.type_ == "Programmed" && c.status == "True")
            .then_some(i)
    })
    .await;
    let status = serde_json::to_string(&programmed.status).unwrap_or_default();
    let events = Api::<Event>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .expect("Events list");
    let events = serde_json::to_string(&events.items).unwrap_or_default();
    assert!(
        events.contains("Quota 'CPUS' exceeded"),
        "the Event says why"
    );
    for text in [&status, &events] {
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("ya29."),
            "no credential: {text}"
        );
    }
    shutdown.cancel();
    let _ = task.await;
}
