//! Shared fixture for the API tests: the test binary's control plane with every Datum CRD
//! installed, a fresh namespace per test, and helpers that send manifests the way
//! `kubectl create` / `kubectl apply --server-side` do (strict field validation).
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use datum_testenv::ControlPlane;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use kube::{Api, Client};

pub struct Env {
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub namespace: String,
    /// Discovery answers by `apiVersion/kind`, so repeated requests skip the round trip.
    resources: std::sync::Mutex<std::collections::HashMap<String, (ApiResource, ApiCapabilities)>>,
}

/// The control plane (CRDs installed once per test binary) and a fresh namespace named
/// after `test`.
pub async fn env_named(test: &str) -> Env {
    let cp = ControlPlane::shared_with(datum_api::crds::all)
        .await
        .expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    let namespace = cp.fresh_namespace(&client, test).await.expect("namespace");
    Env {
        cp,
        client,
        namespace,
        resources: Default::default(),
    }
}

/// Like [`env_named`], with the namespace named after the calling thread (the test name).
pub async fn env() -> Env {
    let name = std::thread::current()
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .to_owned();
    env_named(&name).await
}

/// `../shared/upstream/<relative>` — upstream data is read in place, never copied.
pub fn upstream(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/upstream")
        .join(relative)
}

/// Splits a multi-document YAML string into objects (empty documents are skipped).
pub fn documents(yaml: &str) -> Vec<DynamicObject> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value = serde_json::Value::deserialize(doc).expect("valid YAML");
            (!value.is_null()).then(|| serde_json::from_value(value).expect("a Kubernetes object"))
        })
        .collect()
}

impl Env {
    async fn resource(&self, obj: &DynamicObject) -> (ApiResource, ApiCapabilities) {
        let types = obj.types.as_ref().expect("apiVersion and kind");
        let key = format!("{}/{}", types.api_version, types.kind);
        if let Some(found) = self.resources.lock().expect("not poisoned").get(&key) {
            return found.clone();
        }
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let found = pinned_kind(&self.client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("{gvk:?} is served: {e}"));
        self.resources
            .lock()
            .expect("not poisoned")
            .insert(key, found.clone());
        found
    }

    fn path(&self, resource: &ApiResource, caps: &ApiCapabilities) -> String {
        let root = if resource.group.is_empty() {
            "/api".to_owned()
        } else {
            format!("/apis/{}", resource.group)
        };
        match caps.scope {
            Scope::Namespaced => {
                format!(
                    "{root}/{}/namespaces/{}/{}",
                    resource.version, self.namespace, resource.plural
                )
            }
            Scope::Cluster => format!("{root}/{}/{}", resource.version, resource.plural),
        }
    }

    /// Creates every object in `yaml` (in this test's namespace when namespaced), with
    /// strict field validation as `kubectl create` does. Stops at the first failure.
    pub async fn create(&self, yaml: &str) -> Result<Vec<serde_json::Value>, kube::Error> {
        let mut created = Vec::new();
        for obj in documents(yaml) {
            let value = serde_json::to_value(&obj).expect("serializable");
            created.push(self.post(value, false).await?);
        }
        Ok(created)
    }

    /// Validates one raw object — possibly malformed on purpose — exactly as a create would
    /// (`dryRun=All`: admission and CEL run, nothing is stored).
    pub async fn create_dry_run(
        &self,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value, kube::Error> {
        self.post(obj.clone(), true).await
    }

    /// Creates one raw object as [`create_dry_run`](Self::create_dry_run) validates it, for
    /// real.
    pub async fn create_object(
        &self,
        obj: &serde_json::Value,
    ) -> Result<serde_json::Value, kube::Error> {
        self.post(obj.clone(), false).await
    }

    /// Deletes one raw object (in the background: dependents go through the garbage
    /// collector). An object already gone is not an error.
    pub async fn delete_object(&self, obj: &serde_json::Value) -> Result<(), kube::Error> {
        let typed: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {}
        }))
        .expect("apiVersion and kind are strings");
        let (resource, caps) = self.resource(&typed).await;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        match api
            .delete(name, &kube::api::DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn post(
        &self,
        mut obj: serde_json::Value,
        dry_run: bool,
    ) -> Result<serde_json::Value, kube::Error> {
        let types: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {}
        }))
        .expect("apiVersion and kind are strings");
        let (resource, caps) = self.resource(&types).await;
        if caps.scope == Scope::Namespaced {
            obj["metadata"]["namespace"] = self.namespace.clone().into();
        }
        let dry_run = if dry_run { "&dryRun=All" } else { "" };
        let uri = format!(
            "{}?fieldValidation=Strict&fieldManager=datum-test{dry_run}",
            self.path(&resource, &caps)
        );
        let body = serde_json::to_vec(&obj).expect("serializable");
        let request = http::Request::post(uri)
            .header("content-type", "application/json")
            .body(body)
            .expect("valid request");
        self.client.request::<serde_json::Value>(request).await
    }

    /// Server-side applies every object in `yaml`, strict, as `kubectl apply --server-side`.
    pub async fn apply(&self, yaml: &str) -> Result<Vec<DynamicObject>, kube::Error> {
        let mut applied = Vec::new();
        let mut params = PatchParams::apply("datum-test").force();
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        for mut obj in documents(yaml) {
            let (resource, caps) = self.resource(&obj).await;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => {
                    obj.metadata.namespace = Some(self.namespace.clone());
                    Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
                }
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            };
            let name = obj
                .metadata
                .name
                .clone()
                .expect("objects in tests have names");
            applied.push(api.patch(&name, &params, &Patch::Apply(&obj)).await?);
        }
        Ok(applied)
    }

    /// Asserts that creating `yaml` fails with a validation error (400/422) whose message
    /// contains every one of `expected`. Returns the message.
    pub async fn assert_rejected(&self, yaml: &str, expected: &[&str]) -> String {
        let message = match self.create(yaml).await {
            Ok(created) => {
                panic!("expected the API server to reject the manifest, but it created {created:?}")
            }
            Err(kube::Error::Api(status)) => {
                assert!(
                    status.code == 422 || status.code == 400,
                    "expected a validation error, got {} {}",
                    status.code,
                    status.message
                );
                status.message
            }
            Err(other) => panic!("expected a validation error, got {other}"),
        };
        for needle in expected {
            assert!(
                message.contains(needle),
                "message does not contain {needle:?}:\n{message}"
            );
        }
        message
    }

    /// Asserts that applying `yaml` (an update of existing objects) fails with every one of
    /// `expected` in the message.
    pub async fn assert_update_rejected(&self, yaml: &str, expected: &[&str]) -> String {
        let message = match self.apply(yaml).await {
            Ok(applied) => panic!("expected the update to be rejected, but it applied {applied:?}"),
            Err(kube::Error::Api(status)) => status.message,
            Err(other) => panic!("expected a validation error, got {other}"),
        };
        for needle in expected {
            assert!(
                message.contains(needle),
                "message does not contain {needle:?}:\n{message}"
            );
        }
        message
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
}
