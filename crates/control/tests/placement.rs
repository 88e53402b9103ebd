//! The workload controller against a real API server: deployments per placement × Location,
//! following Locations as they change, status roll-up, and cleanup by the garbage collector.

mod common;

use common::{env, eventually, workload};
use datum_api::compute::conditions::{AVAILABLE, reasons};
use datum_api::compute::{Workload, WorkloadDeployment};
use datum_api::conditions;
use datum_api::networking::Location;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn available(workload: &Workload) -> Option<(String, String, String)> {
    let list = workload.status.as_ref()?.conditions.clone()?;
    let c = conditions::get(&list, AVAILABLE)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn multi_placement_rolls_up_and_names_what_matched_nothing() {
    let mut env = env().await;
    let city = env.unique("c").to_uppercase();
    let region = env.unique("r");
    let a1 = env.location("a1", "sim", &city, "elsewhere").await;
    let a2 = env.location("a2", "sim", &city, "elsewhere").await;
    let b = env.location("b", "local", "XXX", &region).await;
    let created = env
        .create_workload(workload(
            "web",
            json!([
                { "name": "city", "cityCodes": [city], "scaleSettings": { "minReplicas": 1 } },
                { "name": "region", "locationSelector": { "matchLabels": { "topology.datum.net/region": region } },
                  "scaleSettings": { "minReplicas": 2, "instanceManagementPolicy": "Parallel" } },
                { "name": "named", "locations": [{ "name": "nowhere-at-all" }], "scaleSettings": { "minReplicas": 1 } }
            ]),
        ))
        .await;

    let deployments = eventually("three deployments", || async {
        let d = env.deployments().await;
        (d.len() == 3).then_some(d)
    })
    .await;
    let names: Vec<String> = deployments.iter().map(|d| d.name_any()).collect();
    assert_eq!(
        names,
        [
            format!("web-city-{a1}"),
            format!("web-city-{a2}"),
            format!("web-region-{b}")
        ]
    );
    for deployment in &deployments {
        let owner = &deployment.owner_references()[0];
        assert_eq!(owner.uid, created.uid().unwrap_or_default());
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(deployment.spec.template, created.spec.template);
    }
    assert_eq!(deployments[2].spec.replicas, Some(2));
    assert_eq!(
        deployments[2]
            .spec
            .location_ref
            .as_ref()
            .map(|l| l.name.clone()),
        Some(b.clone())
    );

    // Nothing is ready yet: the unmatched placement is named. (The controllers read
    // Locations from a watch cache, so a first pass may run before it holds the Locations
    // made just above and name more placements; the status settles on this one.)
    let api = env.api::<Workload>();
    let (status, _reason, message) = eventually("NoMatchingLocation naming \"named\"", || async {
        available(&api.get("web").await.ok()?).filter(|c| {
            c.1 == reasons::NO_MATCHING_LOCATION
                && c.2.contains("\"named\"")
                && !c.2.contains("\"city\"")
                && !c.2.contains("\"region\"")
        })
    })
    .await;
    assert_eq!(status, "False");
    assert!(message.contains("locations [nowhere-at-all]"), "{message}");

    // Providers run every instance: 1 + 1 + 2 ready, per placement in spec order.
    let workload = eventually("all ready", || async {
        env.provider_runs_all().await;
        let w = api.get("web").await.ok()?;
        (w.status.as_ref()?.ready_replicas == 4).then_some(w)
    })
    .await;
    let status = workload.status.clone().unwrap_or_default();
    assert_eq!(
        (status.replicas, status.desired_replicas, status.deployments),
        (4, 4, 3)
    );
    assert_eq!(status.observed_generation, workload.metadata.generation);
    let placements = status.placements.unwrap_or_default();
    let order: Vec<&str> = placements.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(order, ["city", "region", "named"]);
    assert_eq!(placements[0].locations.as_ref().map(Vec::len), Some(2));
    assert_eq!(placements[1].ready_replicas, 2);
    let named = conditions::get(
        placements[2].conditions.as_deref().unwrap_or_default(),
        AVAILABLE,
    )
    .cloned();
    assert_eq!(
        named.map(|c| c.reason),
        Some(reasons::NO_MATCHING_LOCATION.to_owned())
    );
    let (status, reason, _) = eventually("Available", || async {
        available(&api.get("web").await.ok()?).filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", reasons::AVAILABLE_PLACEMENT_FOUND)
    );

    // Deleting the Workload cascades through the garbage collector.
    api.delete("web", &DeleteParams::background())
        .await
        .expect("deleted");
    eventually("everything gone", || async {
        (env.deployments().await.is_empty() && env.instances().await.is_empty()).then_some(())
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn deployments_follow_locations_as_they_come_go_and_fail() {
    let mut env = env().await;
    let city = env.unique("f").to_uppercase();
    let first = env.location("one", "sim", &city, "r").await;
    env.create_workload(workload(
        "app",
        json!([{ "name": "p", "cityCodes": [city], "scaleSettings": { "minReplicas": 1 } }]),
    ))
    .await;
    let names = |d: Vec<WorkloadDeployment>| d.iter().map(|d| d.name_any()).collect::<Vec<_>>();
    eventually("one deployment", || async {
        (names(env.deployments().await) == [format!("app-p-{first}")]).then_some(())
    })
    .await;

    let second = env.location("two", "sim", &city, "r").await;
    eventually("a deployment for the new location", || async {
        (names(env.deployments().await) == [format!("app-p-{first}"), format!("app-p-{second}")])
            .then_some(())
    })
    .await;

    env.delete_location(&first).await;
    eventually("the removed location's deployment gone", || async {
        (names(env.deployments().await) == [format!("app-p-{second}")]).then_some(())
    })
    .await;

    // A Location reported not Ready loses its deployment; Ready again, it comes back.
    let locations: Api<Location> = Api::all(env.client.clone());
    let set_ready = |status: &'static str| json!({ "status": { "conditions": [{ "type": "Ready", "status": status, "reason": "Probe", "message": "probe", "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
    locations
        .patch_status(
            &second,
            &PatchParams::default(),
            &Patch::Merge(&set_ready("False")),
        )
        .await
        .expect("patched");
    eventually("no deployment on an unready location", || async {
        env.deployments().await.is_empty().then_some(())
    })
    .await;
    // The status follows the deployments' removal in a later pass.
    eventually("the workload reports NoMatchingLocation", || async {
        let workload = env.api::<Workload>().get("app").await.ok()?;
        (available(&workload).map(|c| c.1) == Some(reasons::NO_MATCHING_LOCATION.to_owned()))
            .then_some(())
    })
    .await;
    locations
        .patch_status(
            &second,
            &PatchParams::default(),
            &Patch::Merge(&set_ready("True")),
        )
        .await
        .expect("patched");
    eventually("deployment back", || async {
        (env.deployments().await.len() == 1).then_some(())
    })
    .await;
    env.cleanup().await;
}

/// Every controller's reconciles are counted and timed in the metrics the binary serves.
#[tokio::test]
async fn reconciles_are_counted_in_metrics() {
    let mut env = common::env_without_controllers().await;
    let settings = common::settings(&env.namespace);
    let metrics = settings.metrics.clone();
    env.start_controllers_with(settings);
    let city = env.unique("m").to_uppercase();
    env.location("m", "gcp", &city, "us-south1").await;
    env.create_workload(workload(
        "metered",
        json!([{ "name": "p", "cityCodes": [city], "scaleSettings": { "minReplicas": 1 } }]),
    ))
    .await;
    eventually("the deployment and its Instance exist", || async {
        (!env.instances().await.is_empty()).then_some(())
    })
    .await;
    // Each controller records its first reconcile when it finishes; wait for all three.
    let text = eventually("every controller has counted a reconcile", || async {
        let text = metrics.encode().ok()?;
        ["placement", "instance_control", "instance_network"]
            .iter()
            .all(|c| text.contains(&format!("datum_reconcile_total{{controller=\"{c}\"}}")))
            .then_some(text)
    })
    .await;
    assert!(
        text.contains("datum_reconcile_duration_seconds_bucket"),
        "{text}"
    );
    env.cleanup().await;
}
