//! The short-form controller against a real API server, with the seed example from the
//! product docs (read in place). Its own test binary: the seed selects every `gcp`
//! Location in `us-central1`, and Locations are cluster-wide.

mod common;

use common::{env, eventually, upstream};
use datum_api::compute::conditions::AVAILABLE;
use datum_api::{compute, short_form};
use kube::ResourceExt;
use kube::api::PostParams;

#[tokio::test]
async fn seed_workload_lands_only_on_gcp_in_us_central1() {
    let mut env = env().await;
    let matching = env
        .location("gcp-central", "gcp", "DFW", "us-central1")
        .await;
    env.location("gcp-east", "gcp", "IAD", "us-east1").await;
    env.location("sim-central", "sim", "DFW", "us-central1")
        .await;

    let yaml = std::fs::read_to_string(upstream("samples/seed-workload.yaml"))
        .expect("seed sample readable");
    let mut seed: short_form::Workload =
        serde_yaml::from_str(&yaml).expect("seed is a short-form Workload");
    seed.metadata.namespace = Some(env.namespace.clone());
    let api = env.api::<short_form::Workload>();
    let seed = api
        .create(&PostParams::default(), &seed)
        .await
        .expect("seed created");

    let canonical = eventually("the canonical workload", || async {
        env.api::<compute::Workload>()
            .get_opt("my-app")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(
        canonical.owner_references()[0].uid,
        seed.uid().unwrap_or_default()
    );
    let placement = &canonical.spec.placements[0];
    assert_eq!(placement.scale_settings.min_replicas, 3);
    let sandbox = canonical
        .spec
        .template
        .spec
        .runtime
        .sandbox
        .clone()
        .expect("containers become a sandbox");
    assert_eq!(sandbox.containers[0].image, "gcr.io/my-project/my-app:v1.0");

    // The seed is OrderedReady: play the provider so each instance lets the next come.
    let instances = eventually("three instances", || async {
        env.provider_runs_all().await;
        let i = env.instances().await;
        (i.len() == 3).then_some(i)
    })
    .await;
    for instance in &instances {
        assert_eq!(
            instance.spec.location.as_ref().map(|l| l.name.clone()),
            Some(matching.clone()),
            "only the gcp us-central1 Location"
        );
    }

    let status = eventually("the short form shows three ready", || async {
        env.provider_runs_all().await;
        let s = api.get("my-app").await.ok()?.status?;
        (s.ready_replicas == 3).then_some(s)
    })
    .await;
    assert_eq!((status.replicas, status.desired_replicas), (3, 3));
    let available =
        datum_api::conditions::get(&status.conditions, AVAILABLE).expect("Available mirrored");
    assert_eq!(available.status, "True");

    let output = env.kubectl(&[
        "get",
        "workloads.workload.datum.net",
        "my-app",
        "--no-headers",
    ]);
    let line = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&columns[..5], ["my-app", "3", "3", "3", "True"], "{line}");
    env.cleanup().await;
}
