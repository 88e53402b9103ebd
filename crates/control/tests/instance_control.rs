//! The workload-deployment controller against a real API server: OrderedReady and
//! Parallel creation, rolling updates from the top ordinal, scale-down from the top, odd
//! objects, and a controller killed mid-rollout.

mod common;

use common::{Env, env, env_without_controllers, eventually, workload};
use datum_api::compute::{Instance, Workload, WorkloadDeployment, labels};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// A Workload `app` with one placement `p` of `replicas` in a fresh Location; returns the
/// deployment's name.
async fn deploy(env: &mut Env, replicas: i32, policy: &str) -> String {
    let city = env.unique("c").to_uppercase();
    let location = env.location("l", "sim", &city, "r").await;
    env.create_workload(workload(
        "app",
        json!([{ "name": "p", "cityCodes": [city], "scaleSettings": { "minReplicas": replicas, "instanceManagementPolicy": policy } }]),
    ))
    .await;
    format!("app-p-{location}")
}

fn names(deployment: &str, ordinals: &[u32]) -> Vec<String> {
    ordinals
        .iter()
        .map(|o| format!("{deployment}-{o}"))
        .collect()
}

fn hash_of(instance: &Instance) -> String {
    instance
        .spec
        .controller
        .as_ref()
        .map(|c| c.template_hash.clone())
        .unwrap_or_default()
}

async fn deployment_replicas_seen(env: &Env, deployment: &str, replicas: i32) {
    eventually("the deployment status counted the instances", || async {
        let d = env.api::<WorkloadDeployment>().get(deployment).await.ok()?;
        (d.status?.replicas == replicas).then_some(())
    })
    .await;
}

async fn set_image(env: &Env, image: &str) {
    let patch = json!({ "spec": { "template": { "spec": { "runtime": { "sandbox": { "containers": [{ "name": "web", "image": image }] } } } } } });
    env.api::<Workload>()
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("workload patched");
}

async fn set_min_replicas(env: &Env, replicas: i32) {
    let workload = env.api::<Workload>().get("app").await.expect("workload");
    let mut placements = serde_json::to_value(&workload.spec.placements).expect("serializes");
    placements[0]["scaleSettings"]["minReplicas"] = json!(replicas);
    let patch = json!({ "spec": { "placements": placements } });
    env.api::<Workload>()
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("workload patched");
}

#[tokio::test]
async fn ordered_ready_creates_one_at_a_time_waiting_for_ready() {
    let mut env = env().await;
    let wd = deploy(&mut env, 3, "OrderedReady").await;
    for ordinal in 0..3u32 {
        let expected = names(&wd, &(0..=ordinal).collect::<Vec<_>>());
        eventually("the next instance", || async {
            (env.instance_names().await == expected).then_some(())
        })
        .await;
        // A pass has seen the new instance not Ready (the status counts it) and created nothing more.
        deployment_replicas_seen(&env, &wd, ordinal as i32 + 1).await;
        assert_eq!(
            env.instance_names().await,
            expected,
            "nothing is created while {wd}-{ordinal} is not Ready"
        );
        let instance = env
            .api::<Instance>()
            .get(&format!("{wd}-{ordinal}"))
            .await
            .expect("instance");
        assert_eq!(
            instance.labels().get(labels::INSTANCE_INDEX),
            Some(&ordinal.to_string())
        );
        assert_eq!(
            instance.spec.location.as_ref().map(|l| l.name.clone()),
            Some(wd.trim_start_matches("app-p-").to_owned())
        );
        assert_eq!(
            instance.owner_references()[0].block_owner_deletion,
            Some(true)
        );
        env.provider_runs(&format!("{wd}-{ordinal}")).await;
    }
    let deployment = eventually("three ready", || async {
        let d = env.api::<WorkloadDeployment>().get(&wd).await.ok()?;
        (d.status.as_ref()?.ready_replicas == 3).then_some(d)
    })
    .await;
    let status = deployment.status.unwrap_or_default();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.current_replicas,
            status.desired_replicas
        ),
        (3, 3, 3, 3)
    );
    assert_eq!(status.observed_generation, deployment.metadata.generation);
    assert_eq!(
        status.selector,
        Some(format!(
            "{}={}",
            labels::WORKLOAD_DEPLOYMENT_UID,
            deployment.metadata.uid.unwrap_or_default()
        ))
    );
    env.cleanup().await;
}

#[tokio::test]
async fn parallel_creates_all_at_once_and_removes_odd_instances() {
    let mut env = env().await;
    let wd = deploy(&mut env, 3, "Parallel").await;
    eventually("three instances, none ready", || async {
        (env.instance_names().await == names(&wd, &[0, 1, 2])).then_some(())
    })
    .await;

    // An object with the deployment's label but no numeric ordinal is surplus (quirk Q11).
    let deployment = env
        .api::<WorkloadDeployment>()
        .get(&wd)
        .await
        .expect("deployment");
    let mut odd = env
        .api::<Instance>()
        .get(&format!("{wd}-0"))
        .await
        .expect("instance");
    odd.metadata = kube::api::ObjectMeta {
        name: Some(format!("{wd}-odd")),
        labels: Some(
            [(
                labels::WORKLOAD_DEPLOYMENT_UID.to_owned(),
                deployment.uid().unwrap_or_default(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    odd.status = None;
    env.api::<Instance>()
        .create(&PostParams::default(), &odd)
        .await
        .expect("odd instance created");
    eventually("the odd instance removed", || async {
        (env.instance_names().await == names(&wd, &[0, 1, 2])).then_some(())
    })
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn template_change_rolls_from_the_top_and_scale_down_removes_the_top() {
    let mut env = env().await;
    let wd = deploy(&mut env, 3, "OrderedReady").await;
    eventually("three running", || async {
        env.provider_runs_all().await;
        let i = env.instances().await;
        (i.len() == 3
            && i.iter().all(|i| {
                i.status
                    .as_ref()
                    .and_then(|s| s.controller.as_ref())
                    .is_some()
            }))
        .then_some(())
    })
    .await;
    let old = hash_of(&env.instances().await[0]);

    set_image(&env, "nginx:1.28").await;
    for ordinal in [2u32, 1, 0] {
        let instances = eventually("the next instance updated", || async {
            let i = env.instances().await;
            i.iter()
                .any(|i| {
                    hash_of(i) != old
                        && i.status
                            .as_ref()
                            .and_then(|s| s.controller.as_ref())
                            .is_some_and(|c| c.observed_template_hash == old)
                })
                .then_some(i)
        })
        .await;
        let updated: Vec<String> = instances
            .iter()
            .filter(|i| hash_of(i) != old)
            .map(|i| i.name_any())
            .collect();
        assert_eq!(
            updated,
            names(&wd, &(ordinal..3).collect::<Vec<_>>()),
            "one at a time, from the top"
        );
        let current = instances
            .iter()
            .find(|i| i.name_any() == format!("{wd}-{ordinal}"))
            .expect("updated instance");
        assert!(
            current.spec.location.is_some(),
            "an update keeps spec.location"
        );
        assert_eq!(
            current
                .spec
                .runtime
                .sandbox
                .as_ref()
                .map(|s| s.containers[0].image.clone()),
            Some("nginx:1.28".to_owned())
        );
        env.provider_runs(&current.name_any()).await;
    }

    // Scale down with a provider finalizer, to see the order of deletion.
    for instance in env.instances().await {
        let patch = json!({ "metadata": { "finalizers": ["test.datum.net/provider"] } });
        env.api::<Instance>()
            .patch(
                &instance.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("finalizer");
    }
    set_min_replicas(&env, 1).await;
    for ordinal in [2u32, 1] {
        let name = format!("{wd}-{ordinal}");
        eventually("the top instance deleting", || async {
            let i = env.api::<Instance>().get(&name).await.ok()?;
            i.metadata.deletion_timestamp.is_some().then_some(())
        })
        .await;
        let deleting: Vec<String> = env
            .api::<Instance>()
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .iter()
            .filter(|i| i.metadata.deletion_timestamp.is_some())
            .map(|i| i.name_any())
            .collect();
        assert_eq!(
            deleting,
            std::slice::from_ref(&name),
            "one at a time, from the top"
        );
        let patch = json!({ "metadata": { "finalizers": null } });
        env.api::<Instance>()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("finalizer removed");
    }
    eventually("one left", || async {
        (env.instance_names().await == names(&wd, &[0])).then_some(())
    })
    .await;
    let patch = json!({ "metadata": { "finalizers": null } });
    env.api::<Instance>()
        .patch(
            &format!("{wd}-0"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("finalizer removed");
    env.cleanup().await;
}

#[tokio::test]
async fn killed_mid_rollout_converges_without_duplicates() {
    let mut env = env_without_controllers().await;
    env.start_controllers();
    let wd = deploy(&mut env, 3, "OrderedReady").await;
    eventually("three running", || async {
        env.provider_runs_all().await;
        let d = env.api::<WorkloadDeployment>().get(&wd).await.ok()?;
        (d.status?.ready_replicas == 3).then_some(())
    })
    .await;
    let old = hash_of(&env.instances().await[0]);
    set_image(&env, "nginx:1.28").await;
    eventually("the rollout started", || async {
        env.instances()
            .await
            .iter()
            .any(|i| hash_of(i) != old)
            .then_some(())
    })
    .await;
    env.kill_controllers();
    env.provider_runs_all().await;

    // Two fresh controller sets race to finish the rollout.
    env.start_controllers();
    let mut second = env_twin(&env);
    let instances = eventually("rollout finished", || async {
        env.provider_runs_all().await;
        let i = env.instances().await;
        let done = i.len() == 3
            && i.iter().all(|i| {
                hash_of(i) != old
                    && i.status
                        .as_ref()
                        .and_then(|s| s.controller.as_ref())
                        .is_some_and(|c| c.observed_template_hash == hash_of(i))
            });
        done.then_some(i)
    })
    .await;
    let all = env
        .api::<Instance>()
        .list(&Default::default())
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 3, "no duplicate instance");
    assert_eq!(
        instances.iter().map(|i| i.name_any()).collect::<Vec<_>>(),
        names(&wd, &[0, 1, 2])
    );
    second.stop_controllers().await;
    env.stop_controllers().await;
    env.cleanup().await;
}

/// A second controller set for the same namespace (as a second replica without leader election would be).
fn env_twin(env: &Env) -> Env {
    let mut twin = Env::twin(env);
    twin.start_controllers();
    twin
}
