//! The test control plane is real: RBAC, service-account tokens, the garbage collector and
//! the namespace controller all work, and no process outlives its owner.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datum_testenv::{ControlPlane, Options};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams,
};
use kube::{Api, Client, ResourceExt};

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting until {what}");
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// A ConfigMap named `dependent` that `owner` (of `api_version` and `kind`) owns.
fn dependent(api_version: &str, kind: &str, owner: &impl ResourceExt) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: owner.name_any(),
                uid: owner.uid().expect("created objects have a uid"),
                ..OwnerReference::default()
            }]),
            ..meta("dependent")
        },
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn serves_the_pinned_kubernetes_version() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let version = client.apiserver_version().await?;
    let pinned = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/kube/go.mod"
    ))?;
    assert!(
        pinned.contains(&format!("k8s.io/kubernetes {}", version.git_version)),
        "API server reports {} which is not the version pinned in tools/kube/go.mod",
        version.git_version
    );
    Ok(())
}

#[tokio::test]
async fn service_accounts_get_only_what_rbac_grants() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let admin = cp.admin_client().await?;
    let ns = cp.fresh_namespace(&admin, "rbac").await?;
    let (reader, kubeconfig) = cp.service_account_client(&admin, &ns, "reader").await?;
    assert!(kubeconfig.exists());

    let secrets: Api<Secret> = Api::namespaced(reader.clone(), &ns);
    let denied = secrets
        .list(&ListParams::default())
        .await
        .expect_err("no role yet");
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "expected 403, got {denied:?}"
    );

    let role = Role {
        metadata: meta("read-configmaps"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = RoleBinding {
        metadata: meta("reader"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "read-configmaps".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "reader".into(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await?;

    let configmaps: Api<ConfigMap> = Api::namespaced(reader, &ns);
    eventually("the binding takes effect", || async {
        configmaps.list(&ListParams::default()).await.is_ok()
    })
    .await;
    assert!(
        secrets.list(&ListParams::default()).await.is_err(),
        "secrets stay forbidden"
    );
    Ok(())
}

#[tokio::test]
async fn garbage_collector_deletes_dependents() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let ns = cp.fresh_namespace(&client, "gc").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner = api
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("owner"),
                ..ConfigMap::default()
            },
        )
        .await?;
    api.create(
        &PostParams::default(),
        &dependent("v1", "ConfigMap", &owner),
    )
    .await?;
    api.delete("owner", &DeleteParams::default()).await?;
    eventually("the dependent is collected", || async {
        api.get_opt("dependent").await.ok().flatten().is_none()
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn the_garbage_collector_follows_kinds_whose_crds_are_given_at_start() -> anyhow::Result<()> {
    let crd = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.test.datum.net" },
        "spec": { "group": "test.datum.net", "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object" } } }] }
    }))?;
    let started = Instant::now();
    let cp = ControlPlane::start(Options {
        crds: vec![crd],
        ..Options::default()
    })
    .await?;
    let client = cp.admin_client().await?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.datum.net", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let owner = widgets
        .create(
            &PostParams::default(),
            &DynamicObject::new("owner", &resource),
        )
        .await?;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let dependent = dependent("test.datum.net/v1", "Widget", &owner);
    maps.create(&PostParams::default(), &dependent).await?;
    widgets.delete("owner", &DeleteParams::default()).await?;
    // The garbage collector looks for new kinds 30 s after it starts; had the CRD come
    // after it, the dependent would stay until then.
    let rediscovery = started + Duration::from_secs(30);
    while maps.get_opt("dependent").await?.is_some() {
        assert!(
            Instant::now() < rediscovery,
            "the dependent of a Widget outlived its owner until the garbage collector's rediscovery"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn deleted_namespaces_are_finalized() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let ns = cp.fresh_namespace(&client, "ns-delete").await?;
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("content"),
                ..ConfigMap::default()
            },
        )
        .await?;
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    eventually("the namespace is gone", || async {
        namespaces.get_opt(&ns).await.ok().flatten().is_none()
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn fresh_namespaces_are_distinct() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client: Client = cp.admin_client().await?;
    let a = cp.fresh_namespace(&client, "Same_Prefix").await?;
    let b = cp.fresh_namespace(&client, "Same_Prefix").await?;
    assert_ne!(a, b);
    assert!(
        a.starts_with("same-prefix-"),
        "{a} is a DNS label derived from the prefix"
    );
    Ok(())
}

/// Runs only as the child of `processes_die_with_their_owner`: starts a private control
/// plane, prints its process ids and data directory, then waits to be killed.
#[tokio::test]
async fn child_control_plane() -> anyhow::Result<()> {
    if std::env::var_os("DATUM_TESTENV_CHILD").is_none() {
        return Ok(());
    }
    let cp = ControlPlane::start(Options::default()).await?;
    for (name, pid) in cp.pids() {
        println!("PID {name} {pid}");
    }
    println!("DIR {}", cp.data_dir().display());
    println!("READY");
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

/// Kills the child test process if this test fails before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn processes_die_with_their_owner() -> anyhow::Result<()> {
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "child_control_plane",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DATUM_TESTENV_CHILD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (pids, dir) = tokio::task::spawn_blocking(move || {
        let mut pids = Vec::new();
        let mut dir = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test child_control_plane ... " on the same line first.
            let words: Vec<&str> = line.split_whitespace().collect();
            let start = words
                .iter()
                .position(|w| ["PID", "DIR", "READY"].contains(w))
                .unwrap_or(words.len());
            match &words[start..] {
                ["PID", _, pid] => pids.push(pid.parse::<u32>().expect("numeric pid")),
                ["DIR", path] => dir = Some(std::path::PathBuf::from(path)),
                ["READY"] => break,
                _ => {}
            }
        }
        (pids, dir)
    })
    .await?;
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver and kube-controller-manager were started"
    );
    let dir = dir.expect("the child printed its data directory");
    for pid in &pids {
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    child.0.kill()?; // SIGKILL: no destructor, no panic handler runs in the child
    child.0.wait()?;

    eventually(
        "every control-plane process and the data directory are gone",
        || {
            let (pids, dir) = (pids.clone(), dir.clone());
            async move {
                let alive = pids.iter().any(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .map(|stat| !stat.contains(") Z ")) // a zombie is already dead
                        .unwrap_or(false)
                });
                !alive && !dir.exists()
            }
        },
    )
    .await;
    Ok(())
}

/// Restarting the API server keeps its port, certificates and etcd data: objects written
/// before are there after, and a client made before the restart works again after it.
#[tokio::test]
async fn the_api_server_restarts_in_place() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default()).await?;
    let client = cp.admin_client().await?;
    let ns = cp.fresh_namespace(&client, "restart").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: meta("before"),
            ..ConfigMap::default()
        },
    )
    .await?;
    let pid_of = |cp: &ControlPlane| {
        cp.pids()
            .into_iter()
            .find(|(name, _)| *name == "kube-apiserver")
            .map(|(_, pid)| pid)
    };
    let before = pid_of(&cp).expect("an API server");
    let url = cp.server_url().to_owned();

    cp.restart_apiserver().await?;

    let after = pid_of(&cp).expect("an API server");
    assert_ne!(before, after, "a new API server process");
    assert!(
        !std::path::Path::new(&format!("/proc/{before}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{before}/stat"))
                .is_ok_and(|stat| stat.contains(") Z ")),
        "the old API server is gone"
    );
    assert_eq!(cp.server_url(), url, "same address");
    cp.check_running()?;
    eventually("the old client reaches the new API server", || async {
        api.get_opt("before").await.is_ok_and(|c| c.is_some())
    })
    .await;
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: meta("after"),
            ..ConfigMap::default()
        },
    )
    .await?;
    cp.stop();
    Ok(())
}
