//! Shared fixture for the control-plane tests: the test binary's real control plane with
//! every Datum CRD installed, a fresh namespace per test, the controllers running for that
//! namespace, and helpers that play the provider's part (setting `Programmed`/`Running`).
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datum_api::compute::conditions::{PROGRAMMED, RUNNING, reasons};
use datum_api::compute::{Instance, InstanceControllerStatus, Workload, WorkloadDeployment};
use datum_api::conditions::{self, ConditionStatus};
use datum_api::networking::well_known::topology;
use datum_api::networking::{Location, LocationProvider, LocationSpec};
use datum_control::Settings;
use datum_testenv::ControlPlane;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Env {
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub namespace: String,
    controllers: Option<Controllers>,
    locations: Vec<String>,
}

struct Controllers {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Short windows so the suite stays quick; behaviour, not timing, is asserted.
pub fn settings(namespace: &str) -> Settings {
    let mut settings = Settings {
        namespace: Some(namespace.to_owned()),
        resync: Duration::from_secs(2),
        retry: Duration::from_millis(250),
        ..Settings::default()
    };
    settings.autoscaler.interval = Duration::from_millis(500);
    settings.autoscaler.scale_down_stabilisation = Duration::from_secs(2);
    settings
}

/// The control plane, a fresh namespace named after the test, and the controllers running.
pub async fn env() -> Env {
    let mut env = env_without_controllers().await;
    env.start_controllers();
    env
}

/// Like [`env`], but the test starts (and stops) the controllers itself.
pub async fn env_without_controllers() -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let cp = ControlPlane::shared_with(datum_api::crds::all)
        .await
        .expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .replace('_', "-");
    let namespace = cp.fresh_namespace(&client, &test).await.expect("namespace");
    // The network the test workloads attach to, as a user would create it first.
    let network: datum_api::networking::Network = serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": { "name": "default" }, "spec": { "ipam": { "mode": "Auto" } }
    }))
    .expect("a Network");
    Api::<datum_api::networking::Network>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &network)
        .await
        .expect("network created");
    Env {
        cp,
        client,
        namespace,
        controllers: None,
        locations: Vec::new(),
    }
}

impl Env {
    /// Another handle on the same namespace, without controllers of its own yet.
    pub fn twin(other: &Env) -> Env {
        Env {
            cp: other.cp,
            client: other.client.clone(),
            namespace: other.namespace.clone(),
            controllers: None,
            locations: Vec::new(),
        }
    }

    pub fn start_controllers(&mut self) {
        let settings = settings(&self.namespace);
        self.start_controllers_with(settings);
    }

    /// Starts the controllers with the given settings.
    pub fn start_controllers_with(&mut self, settings: Settings) {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(datum_control::run(
            self.client.clone(),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
        self.controllers = Some(Controllers { stop, task });
    }

    /// Kills the controllers abruptly (the task is aborted mid-flight, as a crash would).
    pub fn kill_controllers(&mut self) {
        if let Some(controllers) = self.controllers.take() {
            controllers.task.abort();
            drop(controllers.stop);
        }
    }

    /// Stops the controllers gracefully and waits until they returned.
    pub async fn stop_controllers(&mut self) {
        if let Some(controllers) = self.controllers.take() {
            let _ = controllers.stop.send(());
            controllers.task.await.expect("controllers return");
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A value unique to this test (Locations are cluster-scoped and shared by the binary).
    pub fn unique(&self, tag: &str) -> String {
        format!("{}-{tag}", self.namespace)
    }

    /// Creates Location `<namespace>-<tag>` with the given provider key, city code and region.
    pub async fn location(
        &mut self,
        tag: &str,
        provider: &str,
        city: &str,
        region: &str,
    ) -> String {
        let name = self.unique(tag);
        let provider = LocationProvider::named(provider, Default::default()).unwrap_or_else(|_| {
            let mut settings = serde_json::Map::new();
            settings.insert("projectId".into(), "p".into());
            settings.insert("region".into(), region.into());
            settings.insert("zone".into(), format!("{region}-a").into());
            LocationProvider::named(provider, settings).expect("provider settings")
        });
        let mut spec = LocationSpec::new("datum-managed", provider);
        spec.topology
            .insert(topology::CITY_CODE.into(), city.into());
        spec.topology.insert(topology::REGION.into(), region.into());
        let api: Api<Location> = Api::all(self.client.clone());
        api.create(&PostParams::default(), &Location::new(&name, spec))
            .await
            .expect("location created");
        self.locations.push(name.clone());
        name
    }

    pub async fn delete_location(&self, name: &str) {
        let api: Api<Location> = Api::all(self.client.clone());
        api.delete(name, &DeleteParams::default())
            .await
            .expect("location deleted");
    }

    pub async fn create_workload(&self, workload: serde_json::Value) -> Workload {
        let workload: Workload = serde_json::from_value(workload).expect("a Workload");
        self.api::<Workload>()
            .create(&PostParams::default(), &workload)
            .await
            .expect("workload created")
    }

    pub async fn deployments(&self) -> Vec<WorkloadDeployment> {
        let mut items = self
            .api::<WorkloadDeployment>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        items.retain(|d| d.metadata.deletion_timestamp.is_none());
        items.sort_by_key(|d| d.name_any());
        items
    }

    /// Instances not being deleted, sorted by name.
    pub async fn instances(&self) -> Vec<Instance> {
        let mut items = self
            .api::<Instance>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        items.retain(|i| i.metadata.deletion_timestamp.is_none());
        items.sort_by_key(|i| i.name_any());
        items
    }

    pub async fn instance_names(&self) -> Vec<String> {
        self.instances()
            .await
            .iter()
            .map(|i| i.name_any())
            .collect()
    }

    /// Plays the provider: waits out the Instance's scheduling gates (as a provider must),
    /// then reports `Programmed` and `Running` True and echoes the template hash.
    pub async fn provider_runs(&self, name: &str) {
        let api = self.api::<Instance>();
        let instance = eventually("the instance's scheduling gates lifted", || async {
            let instance = api.get(name).await.ok()?;
            (!gated(&instance)).then_some(instance)
        })
        .await;
        self.report_running(&instance)
            .await
            .expect("status patched");
    }

    /// Reports `Programmed` and `Running` True on `instance` (as read) and echoes its hash.
    async fn report_running(&self, instance: &Instance) -> Result<(), kube::Error> {
        let api = self.api::<Instance>();
        let name = instance.name_any();
        let hash = instance
            .spec
            .controller
            .as_ref()
            .map(|c| c.template_hash.clone())
            .unwrap_or_default();
        let mut status = instance.status.clone().unwrap_or_default();
        let mut list = status.conditions.take().unwrap_or_default();
        let generation = instance.metadata.generation.unwrap_or_default();
        conditions::set(
            &mut list,
            conditions::new(
                PROGRAMMED,
                ConditionStatus::True,
                reasons::PROGRAMMED,
                "programmed",
                generation,
            ),
        );
        conditions::set(
            &mut list,
            conditions::new(
                RUNNING,
                ConditionStatus::True,
                reasons::RUNNING,
                "running",
                generation,
            ),
        );
        status.conditions = Some(list);
        status.controller = Some(InstanceControllerStatus {
            observed_template_hash: hash,
        });
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// Plays the provider for every Instance that exists and does not yet run its template.
    pub async fn provider_runs_all(&self) {
        for instance in self.instances().await {
            if gated(&instance) {
                continue;
            }
            let spec_hash = instance
                .spec
                .controller
                .as_ref()
                .map(|c| c.template_hash.clone());
            let observed = instance
                .status
                .as_ref()
                .and_then(|s| s.controller.as_ref())
                .map(|c| c.observed_template_hash.clone());
            if spec_hash != observed {
                match self.report_running(&instance).await {
                    // Deleted (scaled down) since it was listed.
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    result => result.expect("status patched"),
                }
            }
        }
    }

    /// Runs kubectl against this control plane as admin, in this test's namespace.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.cp.kubeconfig_path())
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// Deletes the test's Locations (cluster-scoped, so the namespace does not take them).
    pub async fn cleanup(&self) {
        let api: Api<Location> = Api::all(self.client.clone());
        for name in &self.locations {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

/// Whether the Instance still has scheduling gates (a provider leaves it alone then).
pub fn gated(instance: &Instance) -> bool {
    instance
        .spec
        .controller
        .as_ref()
        .and_then(|c| c.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty())
}

/// Polls `check` until it returns `Some`, failing the test after a generous deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `../shared/upstream/<relative>` — upstream data is read in place, never copied.
pub fn upstream(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/upstream")
        .join(relative)
}

/// A container Workload named `name` with the given placements (JSON).
pub fn workload(name: &str, placements: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Workload",
        "metadata": { "name": name },
        "spec": {
            "template": { "spec": {
                "runtime": { "resources": { "instanceType": "datumcloud/d1-standard-2" },
                             "sandbox": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } },
                "networkInterfaces": [{ "network": { "name": "default" } }]
            }},
            "placements": placements
        }
    })
}
