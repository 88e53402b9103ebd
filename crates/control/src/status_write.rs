//! Writing a status subresource only when it changed, with optimistic concurrency.
//!
//! The patch carries the `resourceVersion` the controller read, so a status another writer
//! (a provider) changed in between is never overwritten: the API server answers `409
//! Conflict` and the reconcile runs again on fresh data.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    #[error("failed to serialize the status of {name}")]
    Serialize {
        name: String,
        source: serde_json::Error,
    },
    #[error("failed to patch the status of {name}")]
    Patch { name: String, source: kube::Error },
}

/// Patches `status` onto `object` when it differs from `current`; returns whether it wrote.
pub async fn write_if_changed<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool, StatusWriteError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let name = object.name_any();
    let status_value =
        serde_json::to_value(status).map_err(|source| StatusWriteError::Serialize {
            name: name.clone(),
            source,
        })?;
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": object.resource_version() },
        "status": status_value,
    });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| StatusWriteError::Patch { name, source })?;
    Ok(true)
}
