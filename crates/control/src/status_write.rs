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
///
/// The interval is the base one (2 s) while few objects are changing, and grows with their
/// number so that roll-ups together stay within a budget of writes per second: with 300
/// deployments and Workloads rolling out at once and a budget of 10/s, each is written at
/// most every 30 s. Without the budget, roll-up writes grow with the rollout's length times
/// the number of objects — at 5,000 Instances they were a third of all writes.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    budget: f64,
    last: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// At most one write per object per `interval`, and about `budget` writes per second
    /// across all objects (no budget when it is not a positive number).
    pub fn new(interval: Duration, budget: f64) -> Self {
        Self {
            interval,
            budget,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The interval for `active` objects written recently.
    fn interval_for(&self, active: usize) -> Duration {
        if !(self.budget.is_finite() && self.budget > 0.0) {
            return self.interval;
        }
        let shared = Duration::try_from_secs_f64(active as f64 / self.budget)
            .unwrap_or(Duration::from_secs(3600));
        self.interval.max(shared)
    }

    /// How long to hold a write of `key` back, or `None` to write now (which is recorded).
    pub fn hold(&self, key: &str) -> Option<Duration> {
        let Ok(mut last) = self.last.lock() else {
            return None;
        };
        // Objects written within the current interval are the ones sharing the budget.
        let interval = self.interval_for(last.len());
        last.retain(|_, at| at.elapsed() < interval);
        let interval = self.interval_for(last.len());
        if let Some(at) = last.get(key) {
            let wait = interval.saturating_sub(at.elapsed());
            if !wait.is_zero() {
                return Some(wait);
            }
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
        let pacer = Pacer::new(Duration::from_secs(60), 0.0);
        assert_eq!(pacer.hold("a"), None);
        let held = pacer.hold("a");
        assert!(
            held.is_some_and(|d| d > Duration::from_secs(50)),
            "{held:?}"
        );
        assert_eq!(pacer.hold("b"), None, "other objects are not held");
        let free = Pacer::new(Duration::ZERO, 0.0);
        assert_eq!(free.hold("a"), None);
        assert_eq!(free.hold("a"), None, "a zero interval never holds");
    }

    #[test]
    fn many_changing_objects_share_the_budget() {
        // 2 s alone; 100 objects within a budget of 10 writes/s: 10 s each.
        let pacer = Pacer::new(Duration::from_secs(2), 10.0);
        assert_eq!(pacer.hold("a"), None);
        let alone = pacer.hold("a").expect("held");
        assert!(alone <= Duration::from_secs(2), "{alone:?}");
        for i in 0..99 {
            assert_eq!(
                pacer.hold(&format!("o{i}")),
                None,
                "first writes are not held"
            );
        }
        let shared = pacer.hold("a").expect("held");
        assert!(
            shared > Duration::from_secs(9) && shared <= Duration::from_secs(10),
            "{shared:?}"
        );
        assert_eq!(
            Pacer::new(Duration::from_secs(2), f64::NAN).interval_for(1_000_000),
            Duration::from_secs(2),
            "no budget, no growth"
        );
        assert_eq!(
            Pacer::new(Duration::from_secs(2), 1e-300).interval_for(usize::MAX),
            Duration::from_secs(3600),
            "never overflows"
        );
    }
}
