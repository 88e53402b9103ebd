//! Watch streams for the controllers: objects cached without `managedFields`, and primary
//! streams optionally filtered to generation changes.
//!
//! ```no_run
//! # fn demo(api: kube::Api<datum_api::compute::Workload>) {
//! let controller = datum_control::watch::controller(api, datum_control::watch::Filter::Generation, 16);
//! # let _ = controller;
//! # }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Which changes of the primary object trigger a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Only spec changes (a new `metadata.generation`) and deletion.
    Generation,
    /// Every change, status included.
    Everything,
}

/// A controller over `api` whose cache drops `managedFields`, running at most
/// `concurrency` reconciles at once.
pub fn controller<K>(api: Api<K>, filter: Filter, concurrency: u16) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Clone + Eq + Hash + Debug + Unpin,
{
    let (reader, writer) = reflector::store();
    // Listed objects trigger only once the store has them (see `datum_runtime::relist`).
    let stream = datum_runtime::relist::applied_after_list(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(strip_managed_fields::<K>)
            .reflect(writer),
    );
    let controller = match filter {
        Filter::Generation => Controller::for_stream(
            stream
                .predicate_filter(predicates::generation, Default::default())
                .boxed(),
            reader,
        ),
        Filter::Everything => Controller::for_stream(stream.boxed(), reader),
    };
    controller.with_config(config(concurrency))
}

/// Reconciles in flight bounded: unbounded, a burst (thousands of Instances created at
/// once) ran a reconcile per object at the same time, each with its request buffers, which
/// set the process's peak memory.
fn config(concurrency: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(concurrency)
}

/// A controller over a [`Shared`](crate::cache::Shared) cache: its trigger is a
/// subscription, its store the cache's (so no second copy of the objects is kept). At most
/// `concurrency` reconciles run at once.
pub fn shared_controller<K>(
    shared: &crate::cache::Shared<K>,
    filter: Filter,
    concurrency: u16,
) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Clone + Eq + Hash + Debug + Unpin + Send + Sync,
{
    let stream = shared.subscribe();
    let controller = match filter {
        Filter::Generation => Controller::for_shared_stream(
            generation_changes(stream, shared.store()).boxed(),
            shared.store(),
        ),
        Filter::Everything => Controller::for_shared_stream(stream.boxed(), shared.store()),
    };
    controller.with_config(config(concurrency))
}

/// The objects of `stream` whose `metadata.generation` changed since the stream last
/// passed them (the first sight of each passes), plus every object `store` no longer holds
/// (a deletion; its entry is forgotten then). Objects without a generation always pass.
/// kube's `predicate_filter` does this for owned objects; subscriptions share `Arc`s.
fn generation_changes<K>(
    stream: impl futures::Stream<Item = Arc<K>> + Send + 'static,
    store: Store<K>,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Clone + Eq + Hash + Send + Sync,
{
    let mut seen: std::collections::HashMap<String, i64> = Default::default();
    stream.filter(move |object| {
        let meta = object.meta();
        let uid = meta.uid.clone().unwrap_or_default();
        let pass = match meta.generation {
            _ if store.get(&ObjectRef::from_obj(object.as_ref())).is_none() => {
                seen.remove(&uid);
                true
            }
            None => true,
            Some(generation) => seen.insert(uid, generation) != Some(generation),
        };
        std::future::ready(pass)
    })
}

/// A stream of `K` (without `managedFields`) for `Controller::watches_stream`/`owns_stream`.
pub fn objects<K>(
    api: Api<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields::<K>)
        .applied_objects()
}

fn strip_managed_fields<K: Resource>(object: &mut K) {
    object.managed_fields_mut().clear();
}

/// The reference of every object in `store` (used to fan one event out to all primaries).
pub fn all_in<K>(store: &reflector::Store<K>) -> Vec<ObjectRef<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Clone + Eq + Hash,
{
    store
        .state()
        .iter()
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

/// How every controller here runs: until `shutdown` completes, each reconcile timed under
/// `name` into the metrics of the controllers' [`Context`](crate::context::Context),
/// failures handed to `error_policy` (which logs what matters) and otherwise noted at debug
/// level only.
pub(crate) trait Drive {
    type Object;

    async fn drive<C, E, F, Fut, P>(
        self,
        name: &'static str,
        reconcile: F,
        error_policy: P,
        context: Arc<C>,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) where
        C: AsRef<crate::context::Context> + Send + Sync + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Arc<Self::Object>, Arc<C>) -> Fut,
        Fut: Future<Output = Result<kube::runtime::controller::Action, E>> + Send + 'static,
        P: Fn(Arc<Self::Object>, &E, Arc<C>) -> kube::runtime::controller::Action;
}

impl<K> Drive for Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Debug + Unpin,
{
    type Object = K;

    async fn drive<C, E, F, Fut, P>(
        self,
        name: &'static str,
        reconcile: F,
        error_policy: P,
        context: Arc<C>,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) where
        C: AsRef<crate::context::Context> + Send + Sync + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Arc<K>, Arc<C>) -> Fut,
        Fut: Future<Output = Result<kube::runtime::controller::Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<C>) -> kube::runtime::controller::Action,
    {
        let metrics = (*context).as_ref().settings().metrics.clone();
        self.graceful_shutdown_on(shutdown)
            .run(
                crate::context::timed(name, metrics, reconcile),
                error_policy,
                context,
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(controller = name, %error, "reconcile failed");
                }
            })
            .await;
    }
}

/// Whether `error`, or one of its causes, is the API server's `409 Conflict`: another writer
/// changed the object first. That is routine with several controllers writing one object's
/// status, so it is retried soon and logged at debug level only.
pub fn is_conflict(error: &(dyn std::error::Error + 'static)) -> bool {
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

/// How long after a failed reconcile to try again: conflicts at once (the retry reads the
/// newer object), anything else after `retry`.
pub fn retry_after(
    error: &(dyn std::error::Error + 'static),
    retry: std::time::Duration,
) -> kube::runtime::controller::Action {
    if is_conflict(error) {
        kube::runtime::controller::Action::requeue(std::time::Duration::from_millis(100))
    } else {
        kube::runtime::controller::Action::requeue(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::networking::Network;
    use futures::FutureExt;

    fn network(generation: i64, version: &str) -> Network {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
            "metadata": { "name": "n", "namespace": "ns", "uid": "u",
                          "generation": generation, "resourceVersion": version },
            "spec": { "ipam": { "mode": "Auto" } },
        }))
        .expect("a Network")
    }

    #[test]
    fn only_new_generations_and_deletions_pass() {
        let (store, mut writer) = reflector::store::<Network>();
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Arc<Network>>();
        let mut receiver = receiver;
        let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        let mut passed = generation_changes(stream, store).boxed();
        // As the cache does: the store takes the object, then subscribers hear of it.
        let mut step = |object: Network, deleted: bool| {
            let event = if deleted {
                watcher::Event::Delete(object.clone())
            } else {
                watcher::Event::Apply(object.clone())
            };
            writer.apply_watcher_event(&event);
            sender.send(Arc::new(object)).expect("sent");
            passed
                .next()
                .now_or_never()
                .flatten()
                .map(|o| o.resource_version().unwrap_or_default())
        };
        assert_eq!(
            step(network(1, "1"), false).as_deref(),
            Some("1"),
            "first sight"
        );
        assert_eq!(step(network(1, "2"), false), None, "a status change");
        assert_eq!(
            step(network(2, "3"), false).as_deref(),
            Some("3"),
            "a spec change"
        );
        assert_eq!(step(network(2, "4"), true).as_deref(), Some("4"), "deleted");
        assert_eq!(
            step(network(2, "5"), false).as_deref(),
            Some("5"),
            "forgotten once deleted: a new one with the same UID is new"
        );
    }
}
