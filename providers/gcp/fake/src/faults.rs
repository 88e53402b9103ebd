//! Faults a test injects into one listener of the fake: a failure for every compute call,
//! a lasting failure of the calls to one API (e.g. a Cloud Monitoring outage), one-shot errors for the next matching request, errors carried by the next operation, and
//! inserts that take effect and then never answer.
//!
//! ```
//! use datum_gcp_fake::{Faults, InjectedError};
//!
//! let faults = Faults::default();
//! faults.fail_next("POST", "/instances", InjectedError::quota_exceeded("Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1."));
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// An error in Google's JSON error format: HTTP status, `errors[].reason`, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedError {
    /// The HTTP status code.
    pub code: u16,
    /// The `errors[].reason` (e.g. `quotaExceeded`, `rateLimitExceeded`).
    pub reason: String,
    /// The human message.
    pub message: String,
}

impl InjectedError {
    /// Any error.
    pub fn new(code: u16, reason: &str, message: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }

    /// `403 quotaExceeded`, as Compute Engine answers when a quota would be exceeded.
    pub fn quota_exceeded(message: &str) -> Self {
        Self::new(403, "quotaExceeded", message)
    }

    /// `429 rateLimitExceeded`.
    pub fn rate_limited() -> Self {
        Self::new(
            429,
            "rateLimitExceeded",
            "Rate Limit Exceeded: too many requests for project",
        )
    }

    /// `503 backendError`.
    pub fn backend_error() -> Self {
        Self::new(503, "backendError", "Internal error. Please try again.")
    }
}

/// One-shot failure for the next request whose method and path match.
#[derive(Clone, Debug)]
struct OneShot {
    method: String,
    path_contains: String,
    error: InjectedError,
}

#[derive(Debug, Default)]
struct State {
    fail_all: Option<InjectedError>,
    /// Lasting failures of every request whose path contains the key.
    fail_paths: Vec<(String, InjectedError)>,
    hang_after_insert: bool,
    one_shots: VecDeque<OneShot>,
    operation_errors: VecDeque<(String, InjectedError)>,
    /// Authenticated API requests this listener received.
    requests: u64,
}

/// The faults of one listener; cheap to clone, shared with the server.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    /// Every compute call fails with `error` (the token endpoint keeps working); `None`
    /// heals.
    pub fn fail_all(&self, error: Option<InjectedError>) {
        self.with(|s| s.fail_all = error);
    }

    /// Every request whose path contains `path_contains` (e.g. `/v3/` for Cloud
    /// Monitoring) fails with `error` until called again with `None`.
    pub fn fail_path(&self, path_contains: &str, error: Option<InjectedError>) {
        self.with(|s| {
            s.fail_paths.retain(|(p, _)| p != path_contains);
            if let Some(error) = error {
                s.fail_paths.push((path_contains.to_owned(), error));
            }
        });
    }

    /// Inserts of instances, networks and subnetworks take effect, then the response is
    /// never sent (helpers inserted before them — instance templates, firewall rules —
    /// answer normally).
    pub fn hang_after_insert(&self, hang: bool) {
        self.with(|s| s.hang_after_insert = hang);
    }

    /// The next request with `method` whose path contains `path_contains` fails with
    /// `error` without taking effect.
    pub fn fail_next(&self, method: &str, path_contains: &str, error: InjectedError) {
        self.with(|s| {
            s.one_shots.push_back(OneShot {
                method: method.to_owned(),
                path_contains: path_contains.to_owned(),
                error,
            });
        });
    }

    /// The next insert whose path contains `path_contains` is accepted (an operation is
    /// returned) but the operation ends `DONE` with `error` and nothing is created — how
    /// Compute Engine reports most quota failures.
    pub fn fail_next_operation(&self, path_contains: &str, error: InjectedError) {
        self.with(|s| {
            s.operation_errors
                .push_back((path_contains.to_owned(), error));
        });
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.with(|s| *s = State::default());
    }

    /// How many authenticated Compute Engine and Secret Manager requests this listener
    /// received (since it opened or was last [`Faults::clear`]ed).
    pub fn requests(&self) -> u64 {
        self.with(|s| s.requests)
    }

    pub(crate) fn request_error(&self, method: &str, path: &str) -> Option<InjectedError> {
        self.with(|s| {
            s.requests += 1;
            if let Some(error) = &s.fail_all {
                return Some(error.clone());
            }
            if let Some((_, error)) = s.fail_paths.iter().find(|(p, _)| path.contains(p.as_str())) {
                return Some(error.clone());
            }
            let index = s
                .one_shots
                .iter()
                .position(|o| o.method == method && path.contains(&o.path_contains))?;
            s.one_shots.remove(index).map(|o| o.error)
        })
    }

    pub(crate) fn operation_error(&self, path: &str) -> Option<InjectedError> {
        self.with(|s| {
            let index = s
                .operation_errors
                .iter()
                .position(|(p, _)| path.contains(p.as_str()))?;
            s.operation_errors.remove(index).map(|(_, e)| e)
        })
    }

    pub(crate) fn hangs_after_insert(&self) -> bool {
        self.with(|s| s.hang_after_insert)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}
