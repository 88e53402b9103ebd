//! Waiting for the cache to catch up with a write, instead of writing from a stale copy.
//!
//! Controllers read objects from watch caches, which lag the API server (by seconds when
//! it is busy). A write based on a stale copy fails with `409 Conflict`; retried from the
//! same stale copy it fails again, and under load a controller can burn dozens of writes
//! that way. [`Freshness`] remembers the `resourceVersion` that is known to be outdated —
//! the one a write conflicted on, or the one this process just replaced with its own
//! write — and a reconcile that finds the cache still there skips its writes and looks
//! again shortly ([`RECHECK`]), which costs nothing on the server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

/// How soon a reconcile that found a stale copy looks again.
pub const RECHECK: Duration = Duration::from_millis(100);

/// How long a version is remembered as outdated; a watch that lags more than this has
/// bigger problems (and the write conflicting again just costs one request).
const REMEMBERED: Duration = Duration::from_secs(60);

/// Outdated versions, by object UID.
#[derive(Default)]
pub struct Freshness {
    outdated: Mutex<HashMap<String, (String, Instant)>>,
}

impl Freshness {
    /// Records that `object` (as read) was written over by this process with `written`
    /// (the API server's answer). A write that changed nothing keeps the version, and then
    /// the copy is not outdated: no newer one is coming.
    pub fn wrote<K: Resource>(&self, object: &K, written: &K) {
        if written.resource_version() != object.resource_version() {
            self.outdated(object);
        }
    }

    /// Records that `object` (as read) is outdated: a write on it conflicted.
    pub fn outdated<K: Resource>(&self, object: &K) {
        let (Some(uid), Some(version)) = (object.uid(), object.resource_version()) else {
            return;
        };
        if let Ok(mut outdated) = self.outdated.lock() {
            outdated.insert(uid, (version, Instant::now()));
        }
    }

    /// Whether `object` is a copy known to be outdated (so writing from it would conflict).
    pub fn is_outdated<K: Resource>(&self, object: &K) -> bool {
        let (Some(uid), Some(version)) = (object.uid(), object.resource_version()) else {
            return false;
        };
        let Ok(mut outdated) = self.outdated.lock() else {
            return false;
        };
        match outdated.get(&uid) {
            Some((known, at)) if *known == version && at.elapsed() < REMEMBERED => true,
            Some(_) => {
                outdated.remove(&uid);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn object(version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("web".into()),
                uid: Some("u1".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn a_copy_is_outdated_until_the_cache_shows_a_newer_version() {
        let freshness = Freshness::default();
        assert!(!freshness.is_outdated(&object("1")));
        freshness.outdated(&object("1"));
        assert!(freshness.is_outdated(&object("1")));
        assert!(
            !freshness.is_outdated(&object("2")),
            "a newer copy is fresh"
        );
        assert!(
            !freshness.is_outdated(&object("1")),
            "forgotten once a newer version was seen"
        );
        freshness.wrote(&object("3"), &object("3"));
        assert!(
            !freshness.is_outdated(&object("3")),
            "a write that changed nothing leaves the copy current"
        );
        freshness.wrote(&object("3"), &object("4"));
        assert!(freshness.is_outdated(&object("3")));
    }
}
