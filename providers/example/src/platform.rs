//! The stand-in platform — REPLACE THIS with your platform's API client.
//!
//! It plays the part of a cloud API so that the generated provider compiles, runs and passes
//! the SDK's conformance suite before any real platform code exists: an in-memory store of
//! resources, each with a platform-assigned ID and the name it was created under, reached
//! through a [`Session`] opened with an API token.
//!
//! When you replace it, keep what the provider relies on: resources can be found by ID and
//! by name (the SDK's deterministic external name), and deleting something already gone is
//! not an error.
//!
//! The conformance suite needs a platform that can misbehave on demand; here that is
//! [`Platform::set_mode`], per API token. With a real platform, run the suite against a fake
//! of its API that can do the same, and keep the provider code free of test hooks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How the platform treats the calls made with one API token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Every call works.
    #[default]
    Healthy,
    /// Every call fails, without taking effect.
    Failing,
    /// A create takes effect, then the call never returns.
    HangAfterCreate,
}

/// A platform call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

/// One resource on the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// The ID the platform gave it.
    pub id: String,
    /// What it is: `instance`, `network_context` or `subnet`.
    pub kind: String,
    /// The name it was created under. Names are not unique on this platform, so a
    /// duplicate create shows up as a second resource.
    pub name: String,
    /// The settings it was created or last updated with.
    pub spec: serde_json::Value,
}

/// The whole platform: every resource, and how each token's calls behave.
#[derive(Clone, Debug, Default)]
pub struct Platform {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    last_id: u64,
    resources: Vec<Resource>,
    modes: BTreeMap<String, Mode>,
}

impl Platform {
    /// An empty platform.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session with an API token.
    pub fn session(&self, token: &str) -> Session {
        Session {
            platform: self.clone(),
            token: token.to_owned(),
        }
    }

    /// Makes the calls made with `token` behave as `mode` (tests only).
    pub fn set_mode(&self, token: &str, mode: Mode) {
        self.lock().modes.insert(token.to_owned(), mode);
    }

    /// The names of every resource, one entry per resource.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .resources
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Calls made with one API token.
#[derive(Clone, Debug)]
pub struct Session {
    platform: Platform,
    token: String,
}

impl Session {
    /// The resource of `kind` with ID `id`, if it exists.
    pub async fn get(&self, kind: &str, id: &str) -> Result<Option<Resource>, Error> {
        self.admit("get")?;
        Ok(self.find(|r| r.kind == kind && r.id == id))
    }

    /// The resource of `kind` named `name`, if one exists.
    pub async fn find_by_name(&self, kind: &str, name: &str) -> Result<Option<Resource>, Error> {
        self.admit("list")?;
        Ok(self.find(|r| r.kind == kind && r.name == name))
    }

    /// Creates a resource; returns its ID.
    pub async fn create(
        &self,
        kind: &str,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<String, Error> {
        let mode = self.admit("create")?;
        let id = {
            let mut state = self.platform.lock();
            state.last_id += 1;
            let id = format!("{kind}-{}", state.last_id);
            state.resources.push(Resource {
                id: id.clone(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                spec,
            });
            id
        };
        if mode == Mode::HangAfterCreate {
            std::future::pending::<()>().await;
        }
        Ok(id)
    }

    /// Replaces the settings of the resource with ID `id`.
    pub async fn update(&self, id: &str, spec: serde_json::Value) -> Result<(), Error> {
        self.admit("update")?;
        let mut state = self.platform.lock();
        let resource = state
            .resources
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| Error(format!("resource {id} does not exist")))?;
        resource.spec = spec;
        Ok(())
    }

    /// Deletes the resource with ID `id`; deleting what is gone succeeds.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.admit("delete")?;
        self.platform.lock().resources.retain(|r| r.id != id);
        Ok(())
    }

    /// The mode of this session's token, or the error a failing platform answers with.
    fn admit(&self, call: &str) -> Result<Mode, Error> {
        let mode = self
            .platform
            .lock()
            .modes
            .get(&self.token)
            .copied()
            .unwrap_or_default();
        match mode {
            Mode::Failing => Err(Error(format!("the platform failed the {call} call"))),
            mode => Ok(mode),
        }
    }

    fn find(&self, matches: impl Fn(&Resource) -> bool) -> Option<Resource> {
        self.platform
            .lock()
            .resources
            .iter()
            .find(|r| matches(r))
            .cloned()
    }
}
