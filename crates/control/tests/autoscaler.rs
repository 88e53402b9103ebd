//! The autoscaler against a real API server: Instances report CPU utilisation in
//! `status.usage` (as a provider would); the deployment's `spec.replicas` follows, within
//! its bounds, immediately up and after the stabilisation window down, with an Event per
//! decision carrying the figures.

mod common;

use common::{Env, env, eventually, workload};
use datum_api::compute::{Instance, WorkloadDeployment};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

async fn report_cpu(env: &Env, percent: i32) {
    env.provider_runs_all().await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    for instance in env.instances().await {
        let patch =
            json!({ "status": { "usage": { "cpuUtilization": percent, "observedAt": now } } });
        let _ = env
            .api::<Instance>()
            .patch_status(
                &instance.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
    }
}

async fn replicas(env: &Env, name: &str) -> Option<i32> {
    env.api::<WorkloadDeployment>()
        .get(name)
        .await
        .ok()?
        .spec
        .replicas
}

async fn event_notes(env: &Env, reason: &str) -> Vec<String> {
    let events = env
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    events
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn scales_up_at_once_within_bounds_and_down_after_the_window() {
    let mut env = env().await;
    let city = env.unique("c").to_uppercase();
    let location = env.location("l", "sim", &city, "r").await;
    env.create_workload(workload(
        "app",
        json!([{ "name": "p", "cityCodes": [city], "scaleSettings": {
            "minReplicas": 1, "maxReplicas": 4, "instanceManagementPolicy": "Parallel",
            "metrics": [{ "resource": { "name": "cpu", "target": { "averageUtilization": 50 } } }] } }]),
    ))
    .await;
    let wd = format!("app-p-{location}");
    eventually("one instance", || async {
        (env.instances().await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(replicas(&env, &wd).await, Some(1));

    // 100% of a 50% target on one instance: 2 replicas.
    eventually("scaled to 2", || async {
        report_cpu(&env, 100).await;
        (replicas(&env, &wd).await == Some(2)).then_some(())
    })
    .await;
    // Still hot, far above target: capped at maxReplicas.
    eventually("scaled to the maximum", || async {
        report_cpu(&env, 400).await;
        (replicas(&env, &wd).await == Some(4) && env.instances().await.len() == 4).then_some(())
    })
    .await;
    let ups = event_notes(&env, "ScaledUp").await;
    assert!(
        ups.iter()
            .any(|n| n.contains("from 1 to 2") && n.contains("cpu average 100.0% of target 50%")),
        "{ups:?}"
    );
    assert!(
        ups.iter()
            .any(|n| n.contains("to 4") && n.contains("max 4")),
        "{ups:?}"
    );

    // Cold: after the stabilisation window, down to minReplicas; the hold is an Event too.
    eventually("scaled down to the minimum", || async {
        report_cpu(&env, 5).await;
        (replicas(&env, &wd).await == Some(1)).then_some(())
    })
    .await;
    let downs = event_notes(&env, "ScaledDown").await;
    assert!(
        downs
            .iter()
            .any(|n| n.contains("from 4 to 1") && n.contains("min 1")),
        "{downs:?}"
    );
    let held = event_notes(&env, "ScaleDownStabilised").await;
    assert!(
        held.iter()
            .any(|n| n.contains("keeping 4 replicas (recommended 1")),
        "the window held the scale-down first: {held:?}"
    );
    eventually("one instance left", || async {
        (env.instances().await.len() == 1).then_some(())
    })
    .await;
    env.cleanup().await;
}
