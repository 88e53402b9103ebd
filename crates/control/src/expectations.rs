//! Objects a controller created that its cache does not show yet.
//!
//! A reconcile triggered by the first of several creates runs before the cache has the
//! others, and would create them again (each a wasted `409 AlreadyExists`). The controller
//! records each create here, clears it once the cache shows the object, and skips creates
//! still expected. An expectation lapses after [`EXPECTED_FOR`], so an object deleted before
//! the cache ever saw it is made again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a create is expected to show up in the cache. A watch normally lags by far
/// less, but an API server saturated by thousands of Instances was seen lagging past 30 s.
pub const EXPECTED_FOR: Duration = Duration::from_secs(120);

/// Creates awaiting their watch event, by `<namespace>/<name>`.
#[derive(Default)]
pub struct Expectations {
    created: Mutex<HashMap<String, Instant>>,
}

impl Expectations {
    /// Records a successful create.
    pub fn created(&self, namespace: &str, name: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.insert(format!("{namespace}/{name}"), Instant::now());
        }
    }

    /// Records that the cache shows the object (or that it no longer matters).
    pub fn seen(&self, namespace: &str, name: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.remove(&format!("{namespace}/{name}"));
        }
    }

    /// Whether a create of the object is still expected to show up.
    pub fn pending(&self, namespace: &str, name: &str) -> bool {
        let Ok(mut created) = self.created.lock() else {
            return false;
        };
        created.retain(|_, at| at.elapsed() < EXPECTED_FOR);
        created.contains_key(&format!("{namespace}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_pending_until_seen() {
        let expectations = Expectations::default();
        assert!(!expectations.pending("ns", "web-0"));
        expectations.created("ns", "web-0");
        assert!(expectations.pending("ns", "web-0"));
        assert!(!expectations.pending("other", "web-0"));
        expectations.seen("ns", "web-0");
        assert!(!expectations.pending("ns", "web-0"));
    }
}
