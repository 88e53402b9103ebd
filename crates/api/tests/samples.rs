//! Every upstream sample manifest applies unchanged with kubectl — client-side, then again
//! server-side — and `kubectl get` shows the printer columns users know.

mod common;

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The namespace a sample names itself (the seed example says `my-project`), if any.
fn namespace_in(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).expect("readable sample");
    common::documents(&text)
        .into_iter()
        .find_map(|obj| obj.metadata.namespace)
}

fn kubectl_ok(env: &common::Env, namespace: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.cp.kubeconfig_path())
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kubectl {} failed:\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn every_upstream_sample_applies_unchanged_client_and_server_side() {
    let env = common::env().await;
    let dir = common::upstream("samples");
    let mut samples: Vec<_> = std::fs::read_dir(&dir)
        .expect("samples directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    samples.sort();
    assert!(
        samples.len() >= 7,
        "expected the upstream samples under {}",
        dir.display()
    );

    for sample in &samples {
        let namespace = match namespace_in(sample) {
            Some(ns) => {
                let namespace = Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.clone()),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                };
                match Api::<Namespace>::all(env.client.clone())
                    .create(&PostParams::default(), &namespace)
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => panic!("creating namespace {ns}: {e}"),
                }
                ns
            }
            None => env.namespace.clone(),
        };
        let file = sample.to_str().expect("UTF-8 path");
        kubectl_ok(&env, &namespace, &["apply", "-f", file]);
        kubectl_ok(
            &env,
            &namespace,
            &["apply", "--server-side", "--force-conflicts", "-f", file],
        );
    }
}

fn header(output: &str) -> Vec<String> {
    output
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn assert_columns(output: &str, expected: &[&str]) {
    let columns = header(output);
    for column in expected {
        assert!(
            columns.iter().any(|c| c == column),
            "column {column} missing from:\n{output}"
        );
    }
}

#[tokio::test]
async fn kubectl_get_shows_printer_columns() {
    let env = common::env().await;
    let ns = env.namespace.clone();
    let network =
        std::fs::read_to_string(common::upstream("samples/networking_v1alpha_network.yaml"))
            .expect("sample");
    let workload = std::fs::read_to_string(common::upstream(
        "samples/compute_v1alpha_workload-sandbox.yaml",
    ))
    .expect("sample");
    env.create(&network).await.expect("network created");
    env.create(&workload).await.expect("workload created");
    env.create(&format!(
        "
apiVersion: networking.datumapis.com/v1alpha
kind: Location
metadata:
  name: {ns}-dfw
spec:
  locationClassName: datum-managed
  topology:
    topology.datum.net/city-code: DFW
  provider:
    gcp: {{projectId: p, region: us-south1, zone: us-south1-a}}
---
apiVersion: compute.datumapis.com/v1alpha
kind: Instance
metadata:
  name: web-0
spec:
  runtime:
    resources:
      instanceType: datumcloud/d1-standard-2
    sandbox:
      containers:
      - name: web
        image: nginx
  networkInterfaces:
  - network:
      name: default
"
    ))
    .await
    .expect("location and instance created");

    let workloads = kubectl_ok(&env, &ns, &["get", "workloads.compute.datumapis.com"]);
    assert_columns(
        &workloads,
        &[
            "NAME",
            "AGE",
            "AVAILABLE",
            "REASON",
            "DEPLOYMENTS",
            "REPLICAS",
            "READY",
            "DESIRED",
            "UP-TO-DATE",
        ],
    );
    assert!(workloads.contains("workload-sandbox-sample"), "{workloads}");

    let instances = kubectl_ok(&env, &ns, &["get", "instances"]);
    assert_columns(
        &instances,
        &["NAME", "AGE", "READY", "REASON", "NETWORK", "EXTERNAL"],
    );
    // The CRD's status default makes a fresh Instance read as Ready=Unknown/Pending.
    let row = instances
        .lines()
        .find(|l| l.starts_with("web-0"))
        .unwrap_or_else(|| panic!("{instances}"));
    assert!(row.contains("Unknown") && row.contains("Pending"), "{row}");

    let networks = kubectl_ok(&env, &ns, &["get", "networks"]);
    assert!(
        header(&networks).len() > 2,
        "networks show more than NAME and AGE:\n{networks}"
    );
    assert!(networks.contains("default"), "{networks}");

    let locations = kubectl_ok(&env, &ns, &["get", "locations", &format!("{ns}-dfw")]);
    assert!(
        header(&locations).len() > 2,
        "locations show more than NAME and AGE:\n{locations}"
    );
    assert!(
        locations.contains("DFW") || locations.contains("gcp"),
        "{locations}"
    );
}
