//! Writing a status subresource only when it changed, with optimistic concurrency, and
//! [`Pacer`] for roll-ups that would otherwise be rewritten on every change of every child.
//!
//! The patch carries the `resourceVersion` the controller read, so a status another writer
//! (a provider) changed in between is never overwritten: the API server answers `409
//! Conflict` and the reconcile runs again on fresh data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Patches `status` onto `object` when it differs from `current`; returns what the API
/// server answered, if it wrote.
pub async fn write_if_changed<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    status: &S,
) -> Result<Option<K>, StatusWriteError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
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
    let written = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| StatusWriteError::Patch { name, source })?;
    Ok(Some(written))
}

/// Spaces the status writes of roll-ups (a deployment counting its Instances, a Workload
/// its deployments): at most one write per object per interval; a change inside the
/// interval is written when it ends (the reconcile requeues itself for then), so the last
/// state is always written. Without it a deployment of N Instances is rewritten about 3N
/// times as each Instance is created, programmed and becomes ready.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// How long to hold a write of `key` back, or `None` to write now (which is recorded).
    pub fn hold(&self, key: &str) -> Option<Duration> {
        let Ok(mut last) = self.last.lock() else {
            return None;
        };
        let interval = self.interval;
        last.retain(|_, at| at.elapsed() < interval);
        if let Some(at) = last.get(key) {
            return Some(interval.saturating_sub(at.elapsed()));
        }
        last.insert(key.to_owned(), Instant::now());
        None
    }
}

/// [`write_if_changed`], held back by `pacer` when `object` was written less than its
/// interval ago: returns the delay after which to try again, if any. A write marks the
/// copy it started from outdated in `freshness`.
pub async fn write_paced<K, S>(
    pacer: &Pacer,
    freshness: &datum_runtime::freshness::Freshness,
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    status: &S,
) -> Result<Option<Duration>, StatusWriteError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let key = object.uid().unwrap_or_else(|| object.name_any());
    if let Some(delay) = pacer.hold(&key) {
        return Ok(Some(delay));
    }
    if let Some(written) = write_if_changed(api, object, current, status).await? {
        freshness.wrote(object, &written);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_write_inside_the_interval_is_held_back() {
        let pacer = Pacer::new(Duration::from_secs(60));
        assert_eq!(pacer.hold("a"), None);
        let held = pacer.hold("a");
        assert!(
            held.is_some_and(|d| d > Duration::from_secs(50)),
            "{held:?}"
        );
        assert_eq!(pacer.hold("b"), None, "other objects are not held");
        let free = Pacer::new(Duration::ZERO);
        assert_eq!(free.hold("a"), None);
        assert_eq!(free.hold("a"), None, "a zero interval never holds");
    }
}
