//! Applying YAML manifests of any kind (RBAC files, Deployments, Datum objects) the way
//! `kubectl apply --server-side --force-conflicts` does, for tests that install what
//! `config/` ships.

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};

use crate::Error;

/// Server-side applies every object in `yaml` (documents separated by `---`; empty ones are
/// skipped) as field manager `manager`, taking over conflicting fields. Namespaced objects
/// must name their namespace. Returns `Kind namespace/name` of each, in order.
pub async fn apply_manifests(
    client: &Client,
    yaml: &str,
    manager: &str,
) -> Result<Vec<String>, Error> {
    let params = PatchParams::apply(manager).force();
    let mut applied = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)
            .map_err(|e| Error::Manifest(format!("not YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value)
            .map_err(|e| Error::Manifest(format!("not a Kubernetes object: {e}")))?;
        let types = object
            .types
            .clone()
            .ok_or_else(|| Error::Manifest("an object without apiVersion and kind".into()))?;
        let name =
            object.metadata.name.clone().ok_or_else(|| {
                Error::Manifest(format!("a {} without metadata.name", types.kind))
            })?;
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, caps) = pinned_kind(client, &gvk).await?;
        let (api, at): (Api<DynamicObject>, String) = match caps.scope {
            Scope::Namespaced => {
                let namespace = object.metadata.namespace.as_deref().ok_or_else(|| {
                    Error::Manifest(format!("{} {name} names no namespace", types.kind))
                })?;
                (
                    Api::namespaced_with(client.clone(), namespace, &resource),
                    format!("{namespace}/{name}"),
                )
            }
            Scope::Cluster => (Api::all_with(client.clone(), &resource), name.clone()),
        };
        let applied_as = format!("{} {at}", types.kind);
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|e| Error::Manifest(format!("{applied_as}: {e}")))?;
        applied.push(applied_as);
    }
    Ok(applied)
}
