//! The reconcile checklist every managed kind shares, in the order it runs:
//!
//! 1. **serve?** — act only on objects in a Location this provider serves (or that already
//!    carry its finalizer);
//! 2. **delete** — if deleting: delete the external resource, confirm it is gone, drop the
//!    finalizer;
//! 3. **gates** — wait while scheduling gates remain (nothing is written meanwhile);
//! 4. **finalizer** — added with the create-pending mark (or the adopted ID), in one
//!    write, before anything exists outside;
//! 5. **connect** — a bad ProviderConfig is a condition, not a crash;
//! 6. **observe** — then create (mark pending → create → record ID), adopt, update, or
//!    report the live state, and come back after `resync` to catch drift.
//!
//! Every metadata and status write carries the object's `resourceVersion`, so a write based
//! on a stale read fails with a conflict and is retried rather than clobbering another
//! writer (the control plane writes `Ready` into the same conditions list).

use std::sync::Arc;
use std::time::Duration;

use datum_api::networking::Location;
use datum_runtime::backoff::Backoff;
use datum_runtime::metrics::Metrics;
use datum_runtime::rate_limit::TokenBucket;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::connection::Connection;
use crate::external::{ExternalClient, ExternalResource, Observation, PlatformError, Provider};
use crate::managed::{ManagedKind, Outcome, runtime_reasons};
use crate::names::Names;

/// Errors of one reconcile; each is retried with the object's backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no namespace, name or UID (the API server always sets them).
    #[error("the object lacks a namespace, name or uid")]
    MissingMetadata,
    /// Writing metadata or status failed (a conflict means another writer was first).
    #[error("failed to write {what}: {source}")]
    Write {
        what: &'static str,
        source: kube::Error,
    },
    /// A platform call failed.
    #[error("the platform call to {verb} failed: {source}")]
    Platform {
        verb: &'static str,
        source: PlatformError,
    },
}

/// What reconciles share.
pub struct Context<P: Provider> {
    /// The provider.
    pub provider: Arc<P>,
    /// The API client.
    pub kube: Client,
    /// Finalizer and annotation names.
    pub names: Names,
    /// The platform connection.
    pub connection: Arc<Connection<P>>,
    /// Every Location.
    pub locations: Store<Location>,
    /// Serve only Locations of this class, if set.
    pub location_class: Option<String>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Per-object backoff.
    pub backoff: Backoff,
    /// Limits platform calls.
    pub bucket: TokenBucket,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// How often a synced object is observed again (drift detection).
    pub resync: Duration,
    /// How soon an object is observed again after a create or update.
    pub progress_requeue: Duration,
    /// NetworkPolicies, if the provider enforces them.
    pub network_policies: Option<crate::network_policy::PolicyIndex>,
    /// Cached copies known to be outdated (written over, or conflicted on).
    pub freshness: datum_runtime::freshness::Freshness,
}

/// Where the object's Location stands for this provider.
enum Served {
    /// Served, with the Location's settings for the provider.
    Yes(Value),
    /// The Location exists and is another provider's or class's.
    No,
    /// The Location is not (yet) known.
    Unknown,
}

impl<P: Provider> Context<P> {
    fn served<K: ManagedKind>(&self, obj: &K) -> Served {
        let Some(name) = obj.location_name() else {
            return Served::No;
        };
        let Some(location) = self.locations.get(&ObjectRef::new(name)) else {
            return Served::Unknown;
        };
        if let Some(class) = &self.location_class
            && &location.spec.location_class_name != class
        {
            return Served::No;
        }
        let settings = serde_json::to_value(&location.spec.provider)
            .ok()
            .and_then(|v| v.get(self.provider.name()).cloned());
        match settings {
            Some(settings) => Served::Yes(settings),
            None => Served::No,
        }
    }

    async fn event<K: ManagedKind>(&self, obj: &K, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::debug!(%error, "failed to publish an event");
        }
    }
}

/// Reconciles one object; the entry point given to the controller.
pub async fn reconcile<P, K>(obj: Arc<K>, ctx: Arc<Context<P>>) -> Result<Action, Error>
where
    P: Provider,
    P::Client: ExternalClient<K>,
    K: ManagedKind,
{
    let timer = ctx.metrics.reconcile.start(K::CONTROLLER);
    let result = match Reconcile::<P, K>::new(obj.as_ref(), &ctx) {
        Ok(run) => run.run().await,
        Err(e) => Err(e),
    };
    timer.finish(result.is_ok());
    if result.is_ok()
        && let Some(uid) = obj.meta().uid.as_deref()
    {
        ctx.backoff.reset(uid);
    }
    result
}

/// Requeues a failed object after its backoff delay.
pub fn error_policy<P: Provider, K: ManagedKind>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context<P>>,
) -> Action {
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let delay = ctx.backoff.next_delay(&uid);
    if is_conflict(error) {
        // Another writer changed the object first: routine. The retry waits for the cache
        // to show the newer copy rather than conflicting again on this one.
        ctx.freshness.outdated(obj.as_ref());
        tracing::debug!(
            controller = K::CONTROLLER,
            name = obj.name_any(),
            "object changed meanwhile; retrying"
        );
    } else {
        tracing::info!(
            controller = K::CONTROLLER,
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            %error,
            retry_in_ms = delay.as_millis() as u64,
            "reconcile failed"
        );
    }
    Action::requeue(delay)
}

/// Whether `error`, or a cause of it, is the API server's `409 Conflict`.
fn is_conflict(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>()
            && status.code == 409
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// One reconcile of one object.
struct Reconcile<'a, P: Provider, K: ManagedKind> {
    ctx: &'a Context<P>,
    api: Api<K>,
    obj: K,
    namespace: String,
    name: String,
    uid: String,
}

impl<'a, P, K> Reconcile<'a, P, K>
where
    P: Provider,
    P::Client: ExternalClient<K>,
    K: ManagedKind,
{
    fn new(obj: &K, ctx: &'a Context<P>) -> Result<Self, Error> {
        let meta = obj.meta();
        let (Some(namespace), Some(name), Some(uid)) =
            (meta.namespace.clone(), meta.name.clone(), meta.uid.clone())
        else {
            return Err(Error::MissingMetadata);
        };
        Ok(Self {
            ctx,
            api: Api::namespaced(ctx.kube.clone(), &namespace),
            obj: obj.clone(),
            namespace,
            name,
            uid,
        })
    }

    async fn run(mut self) -> Result<Action, Error> {
        if self.ctx.freshness.is_outdated(&self.obj) {
            return Ok(Action::requeue(datum_runtime::freshness::RECHECK));
        }
        let ours = self.has_finalizer();
        let settings = match self.ctx.served(&self.obj) {
            Served::Yes(settings) => settings,
            // Already ours: finish what was started even if the Location went away.
            _ if ours => Value::Null,
            Served::No => return Ok(Action::await_change()),
            Served::Unknown => return Ok(Action::requeue(Duration::from_secs(5))),
        };
        if self.obj.meta().deletion_timestamp.is_some() {
            return if ours {
                self.cleanup(&settings).await
            } else {
                Ok(Action::await_change())
            };
        }
        if !self.obj.scheduling_gates().is_empty() {
            // Nothing exists outside yet, so no finalizer either; the control plane's
            // `Ready` already says which gates it waits for. Lifting a gate is a change,
            // which brings the object back.
            return Ok(Action::await_change());
        }
        let client = match self.ctx.connection.current() {
            Ok(client) => client,
            Err(problem) => {
                self.write_status(Outcome::Failed {
                    reason: runtime_reasons::PROVIDER_CONFIG_INVALID.to_owned(),
                    message: problem.to_string(),
                })
                .await?;
                // A config change re-reconciles everything; this is only a safety net.
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
        };
        self.sync(&client, &settings).await
    }

    async fn sync(&mut self, client: &P::Client, settings: &Value) -> Result<Action, Error> {
        let recorded = self.annotation(&self.ctx.names.external_id);
        let pending = self.annotation(&self.ctx.names.create_pending).is_some();
        self.ctx.bucket.acquire().await;
        let observed = client
            .observe(&self.resource(recorded.as_deref(), settings))
            .await;
        let observation = self.or_fail("observe", observed).await?;
        match observation {
            Observation::Absent => {
                if let Some(id) = &recorded {
                    self.ctx
                        .event(
                            &self.obj,
                            EventType::Warning,
                            "ExternalResourceMissing",
                            format!("The external resource {id} is gone; creating it again"),
                        )
                        .await;
                }
                // Mark (with the finalizer, in one write), create, record: a crash in
                // between leaves the mark, and the next reconcile adopts what observe finds
                // by the deterministic name.
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                self.patch_owned_annotations(json!({
                    (self.ctx.names.create_pending.clone()): now,
                    (self.ctx.names.external_id.clone()): null,
                }))
                .await?;
                self.ctx.bucket.acquire().await;
                let created = client.create(&self.resource(None, settings)).await;
                let id = self.or_fail("create", created).await?;
                self.patch_annotations(json!({
                    (self.ctx.names.external_id.clone()): id,
                    (self.ctx.names.create_pending.clone()): null,
                }))
                .await?;
                self.ctx
                    .event(
                        &self.obj,
                        EventType::Normal,
                        "Created",
                        format!("Created external resource {id}"),
                    )
                    .await;
                // No "created, waiting" status: recording the ID is a change, which brings
                // the object straight back to observe and report what the platform says.
                Ok(Action::requeue(self.ctx.progress_requeue))
            }
            Observation::Exists {
                id,
                up_to_date,
                live,
            } => {
                if recorded.as_deref() != Some(id.as_str()) || pending || !self.has_finalizer() {
                    self.patch_owned_annotations(json!({
                        (self.ctx.names.external_id.clone()): id,
                        (self.ctx.names.create_pending.clone()): null,
                    }))
                    .await?;
                    if recorded.is_none() {
                        self.ctx
                            .event(
                                &self.obj,
                                EventType::Normal,
                                "Adopted",
                                format!("Adopted external resource {id}, found by its name"),
                            )
                            .await;
                    }
                }
                if !up_to_date {
                    self.ctx.bucket.acquire().await;
                    let updated = client
                        .update(&id, &self.resource(Some(&id), settings))
                        .await;
                    self.or_fail("update", updated).await?;
                    self.ctx
                        .event(
                            &self.obj,
                            EventType::Normal,
                            "Updated",
                            format!("Updated external resource {id}"),
                        )
                        .await;
                    self.write_status(Outcome::Progressing {
                        message: format!("Updated {id}; waiting for it to match"),
                    })
                    .await?;
                    return Ok(Action::requeue(self.ctx.progress_requeue));
                }
                self.write_status(Outcome::Synced { id, live }).await?;
                Ok(Action::requeue(jitter(self.ctx.resync)))
            }
        }
    }

    async fn cleanup(&mut self, settings: &Value) -> Result<Action, Error> {
        let client = match self.ctx.connection.current() {
            Ok(client) => client,
            Err(problem) => {
                self.write_status(Outcome::Failed {
                    reason: runtime_reasons::PROVIDER_CONFIG_INVALID.to_owned(),
                    message: format!("Cannot delete the external resource: {problem}"),
                })
                .await?;
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
        };
        let recorded = self.annotation(&self.ctx.names.external_id);
        // Observe first: by recorded ID, or by name when a create was pending or never
        // recorded. Loop until observe says nothing is left.
        for _ in 0..3 {
            self.ctx.bucket.acquire().await;
            let observed = client
                .observe(&self.resource(recorded.as_deref(), settings))
                .await;
            match self.or_fail("observe", observed).await? {
                Observation::Absent => {
                    self.remove_finalizer().await?;
                    return Ok(Action::await_change());
                }
                Observation::Exists { id, .. } => {
                    self.ctx.bucket.acquire().await;
                    let deleted = client
                        .delete(&id, &self.resource(Some(&id), settings))
                        .await;
                    self.or_fail("delete", deleted).await?;
                    self.ctx
                        .event(
                            &self.obj,
                            EventType::Normal,
                            "Deleted",
                            format!("Deleted external resource {id}"),
                        )
                        .await;
                }
            }
        }
        Ok(Action::requeue(self.ctx.progress_requeue))
    }

    fn resource<'r>(&'r self, id: Option<&'r str>, settings: &'r Value) -> ExternalResource<'r, K> {
        ExternalResource {
            namespace: &self.namespace,
            name: &self.name,
            uid: &self.uid,
            external_name: format!("datum-{}", self.uid),
            id,
            spec: self.obj.desired(),
            location_settings: settings,
            assigned: self.obj.assigned(),
            annotations: self.obj.annotations(),
            labels: self.obj.labels(),
            network_policies: self
                .ctx
                .network_policies
                .as_ref()
                .map(|index| self.obj.network_policies(index))
                .unwrap_or_default(),
        }
    }

    /// Passes a success through; on failure writes the condition and an Event.
    async fn or_fail<T>(
        &self,
        verb: &'static str,
        result: Result<T, PlatformError>,
    ) -> Result<T, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(source) => {
                self.ctx
                    .event(
                        &self.obj,
                        EventType::Warning,
                        &source.reason,
                        format!("{verb} failed: {}", source.message),
                    )
                    .await;
                let outcome = Outcome::Failed {
                    reason: source.reason.clone(),
                    message: format!("{verb} failed: {}", source.message),
                };
                if let Some(status) = self.obj.status_for(&outcome) {
                    // Best effort: the platform error is what gets retried.
                    let _ = self.patch_status(status).await;
                }
                Err(Error::Platform { verb, source })
            }
        }
    }

    fn has_finalizer(&self) -> bool {
        self.obj
            .finalizers()
            .iter()
            .any(|f| f == &self.ctx.names.finalizer)
    }

    fn annotation(&self, key: &str) -> Option<String> {
        self.obj.annotations().get(key).cloned()
    }

    async fn remove_finalizer(&mut self) -> Result<(), Error> {
        let finalizers: Vec<_> = self
            .obj
            .finalizers()
            .iter()
            .filter(|f| *f != &self.ctx.names.finalizer)
            .cloned()
            .collect();
        self.patch_metadata("finalizer", json!({ "finalizers": finalizers }))
            .await
    }

    /// Writes `annotations` and, if the object does not carry it yet, the finalizer — in
    /// one write, so the finalizer is on before anything is created outside.
    async fn patch_owned_annotations(&mut self, annotations: Value) -> Result<(), Error> {
        if self.has_finalizer() {
            return self.patch_annotations(annotations).await;
        }
        // Server-side apply: there `finalizers` is a set, so ours joins whatever else is on
        // the list with no resourceVersion guard. (A guarded merge patch, which must replace
        // the whole list, conflicted with the control plane's Ready write racing it after
        // every gate lift.) Annotations to drop are not applied; the merge patch after
        // removes any still there.
        let (set, dropped): (serde_json::Map<String, Value>, Vec<String>) = match annotations {
            Value::Object(map) => {
                let dropped = map
                    .iter()
                    .filter(|(key, value)| value.is_null() && self.annotation(key).is_some())
                    .map(|(key, _)| key.clone())
                    .collect();
                (
                    map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
                    dropped,
                )
            }
            _ => (serde_json::Map::new(), Vec::new()),
        };
        let body = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {
                "name": self.name,
                "finalizers": [self.ctx.names.finalizer],
                "annotations": set,
            },
        });
        let params = PatchParams::apply(&self.ctx.names.field_manager).force();
        let patched = self
            .api
            .patch(&self.name, &params, &Patch::Apply(body))
            .await
            .map_err(|source| Error::Write {
                what: "finalizer",
                source,
            })?;
        self.ctx.freshness.wrote(&self.obj, &patched);
        self.obj = patched;
        if dropped.is_empty() {
            return Ok(());
        }
        let nulls: serde_json::Map<String, Value> =
            dropped.into_iter().map(|key| (key, Value::Null)).collect();
        self.patch_annotations(Value::Object(nulls)).await
    }

    /// A merge patch of some annotations. Unguarded: a merge patch touches only the keys
    /// it names, so it cannot undo another writer's change (and so cannot conflict).
    async fn patch_annotations(&mut self, annotations: Value) -> Result<(), Error> {
        let patched = self
            .api
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": annotations } })),
            )
            .await
            .map_err(|source| Error::Write {
                what: "annotations",
                source,
            })?;
        self.ctx.freshness.wrote(&self.obj, &patched);
        self.obj = patched;
        Ok(())
    }

    /// A merge patch of `metadata`, guarded by the current resourceVersion (the finalizer
    /// list is replaced whole, so a stale copy must not write it).
    async fn patch_metadata(
        &mut self,
        what: &'static str,
        mut metadata: Value,
    ) -> Result<(), Error> {
        metadata["resourceVersion"] = json!(self.obj.resource_version());
        let params = PatchParams::default();
        let patched = self
            .api
            .patch(
                &self.name,
                &params,
                &Patch::Merge(json!({ "metadata": metadata })),
            )
            .await
            .map_err(|source| Error::Write { what, source })?;
        self.ctx.freshness.wrote(&self.obj, &patched);
        self.obj = patched;
        Ok(())
    }

    async fn write_status(&mut self, outcome: Outcome<K::Live>) -> Result<(), Error> {
        match self.obj.status_for(&outcome) {
            Some(status) => {
                let written = self.patch_status(status).await?;
                self.ctx.freshness.wrote(&self.obj, &written);
                self.obj = written;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn patch_status(&self, status: Value) -> Result<K, Error> {
        let patch = json!({
            "metadata": { "resourceVersion": self.obj.resource_version() },
            "status": status,
        });
        self.api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| Error::Write {
                what: "status",
                source,
            })
    }
}

/// `period` stretched by up to a tenth, so objects synced together drift apart.
fn jitter(period: Duration) -> Duration {
    let spread = (period.as_millis() / 10).min(u128::from(u64::MAX)) as u64;
    period + Duration::from_millis(rand::random_range(0..=spread))
}
