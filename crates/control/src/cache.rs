//! One watch per kind, shared by every controller that reads it.
//!
//! Controllers used to open their own watches (each holding its own copy of every Instance)
//! and to GET or LIST what they needed on every reconcile; at thousands of Instances those
//! reads were most of the API server's load. A [`Shared`] watches a kind once, keeps one
//! [`Store`] without `managedFields`, an index by a key the kind chooses (its owner's UID,
//! say), and hands every subscriber each object that changed — the store's own `Arc`, so
//! subscribers share one copy rather than each getting a clone.
//!
//! A subscriber's pending changes are coalesced per object: while a controller is busy (its
//! reconciles wait on a saturated API server and kube stops pulling its trigger stream),
//! an object that changes again replaces its pending entry instead of queueing another
//! version. What waits is bounded by the number of objects, not of changes — at 10,000
//! Instances an unbounded queue of versions took the controllers past 380 MiB.
//!
//! Reads from a cache may lag the API server. Everything written from them is safe against
//! that: creates use deterministic names (a duplicate is a `409 AlreadyExists`), updates
//! carry the `resourceVersion` they read (a stale one is a `409 Conflict` and a retry).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) {
//! use datum_api::compute::Instance;
//! fn deployment(instance: &Instance) -> Option<String> {
//!     instance.metadata.labels.as_ref()?.get("compute.datumapis.com/workload-deployment-uid").cloned()
//! }
//! let instances = datum_control::cache::Shared::start(kube::Api::<Instance>::all(client), Some(deployment));
//! instances.ready().await;
//! let of_one_deployment = instances.indexed("some-uid");
//! # let _ = of_one_deployment;
//! # }
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::warn;

/// What the index of a kind is keyed by; `None` leaves an object out of the index.
pub type KeyOf<K> = fn(&K) -> Option<String>;

/// A kind watched once: its store, its index and its subscribers.
pub struct Shared<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    state: Arc<Mutex<State<K>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl<K> Clone for Shared<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            state: self.state.clone(),
            task: self.task.clone(),
        }
    }
}

struct State<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    writer: Writer<K>,
    subscribers: Vec<Weak<Mutex<Pending<K>>>>,
    key_of: Option<KeyOf<K>>,
    index: Index<K>,
    /// The index being rebuilt while the watch (re-)lists, and the objects listed so far:
    /// the store takes the list only when it is complete, so subscribers hear of them only
    /// then (a controller told of an object its store lacks drops the reconcile).
    relisting: Option<(Index<K>, Vec<K>)>,
}

struct Index<K>
where
    K: Resource + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    key_of_object: HashMap<ObjectRef<K>, String>,
}

impl<K> Default for Index<K>
where
    K: Resource + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            key_of_object: HashMap::new(),
        }
    }
}

impl<K> Index<K>
where
    K: Resource + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    fn remove(&mut self, reference: &ObjectRef<K>) {
        if let Some(key) = self.key_of_object.remove(reference)
            && let Some(set) = self.by_key.get_mut(&key)
        {
            set.remove(reference);
            if set.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    fn insert(&mut self, reference: ObjectRef<K>, key: Option<String>) {
        self.remove(&reference);
        if let Some(key) = key {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(reference.clone());
            self.key_of_object.insert(reference, key);
        }
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    /// Starts watching `api`, indexing by `key_of` when given.
    pub fn start(api: Api<K>, key_of: Option<KeyOf<K>>) -> Self {
        let writer = Writer::default();
        let store = writer.as_reader();
        let state = Arc::new(Mutex::new(State {
            writer,
            subscribers: Vec::new(),
            key_of,
            index: Index::default(),
            relisting: None,
        }));
        let task = tokio::spawn(watch(api, state.clone(), store.clone()));
        Self {
            store,
            state,
            task: Arc::new(task),
        }
    }

    /// The cached objects.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Waits until the first list has been loaded.
    pub async fn ready(&self) {
        // The writer lives as long as the watch task, which outlives every caller.
        let _ = self.store.wait_until_ready().await;
    }

    /// The cached object `name` in `namespace` (`None` for cluster-scoped kinds).
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut reference = ObjectRef::new(name);
        if let Some(namespace) = namespace {
            reference = reference.within(namespace);
        }
        self.store.get(&reference)
    }

    /// The cached objects whose index key is `key`.
    pub fn indexed(&self, key: &str) -> Vec<Arc<K>> {
        let references: Vec<ObjectRef<K>> = lock(&self.state)
            .index
            .by_key
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        references
            .iter()
            .filter_map(|reference| self.store.get(reference))
            .collect()
    }

    /// Every object that changes (created, updated or deleted) from now on, after every
    /// object already cached: a trigger stream for `Controller::for_stream`,
    /// `Controller::for_shared_stream`, `owns_shared_stream` or `watches_shared_stream`.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let mut state = lock(&self.state);
        // Under the lock the watch task cannot apply an event, so nothing falls between
        // the replay and the subscription.
        {
            let mut p = lock(&pending);
            for object in self.store.state() {
                p.push(object);
            }
        }
        state.subscribers.push(Arc::downgrade(&pending));
        futures::stream::poll_fn(move |cx| lock(&pending).poll(cx))
    }

    /// Stops the watch; subscriber streams end.
    pub fn stop(&self) {
        self.task.abort();
        for subscriber in lock(&self.state).subscribers.drain(..) {
            if let Some(pending) = subscriber.upgrade() {
                lock(&pending).close();
            }
        }
    }
}

/// One subscriber's changes not yet taken: per object (namespace, name) the newest version,
/// in the order objects first changed.
struct Pending<K> {
    order: VecDeque<(Option<String>, String)>,
    newest: HashMap<(Option<String>, String), Arc<K>>,
    waker: Option<Waker>,
    closed: bool,
}

impl<K> Default for Pending<K> {
    fn default() -> Self {
        Self {
            order: VecDeque::new(),
            newest: HashMap::new(),
            waker: None,
            closed: false,
        }
    }
}

impl<K: Resource> Pending<K> {
    fn push(&mut self, object: Arc<K>) {
        let key = (object.meta().namespace.clone(), object.name_any());
        if self.newest.insert(key.clone(), object).is_none() {
            self.order.push_back(key);
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn close(&mut self) {
        self.closed = true;
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Arc<K>>> {
        while let Some(key) = self.order.pop_front() {
            if let Some(object) = self.newest.remove(&key) {
                return Poll::Ready(Some(object));
            }
        }
        if self.closed {
            return Poll::Ready(None);
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that
    // matters more than stopping would; keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn watch<K>(api: Api<K>, state: Arc<Mutex<State<K>>>, store: Store<K>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.managed_fields_mut().clear())
        .boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                warn!(kind = %K::kind(&Default::default()), %error, "watch failed; retrying");
                continue;
            }
        };
        let mut state = lock(&state);
        state.writer.apply_watcher_event(&event);
        let key_of = state.key_of;
        let changed: Vec<K> = match event {
            watcher::Event::Init => {
                state.relisting = Some((Index::default(), Vec::new()));
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some((index, listed)) = state.relisting.as_mut() {
                    if let Some(key_of) = key_of {
                        index.insert(ObjectRef::from_obj(&object), key_of(&object));
                    }
                    listed.push(object);
                }
                Vec::new()
            }
            watcher::Event::InitDone => match state.relisting.take() {
                Some((index, listed)) => {
                    state.index = index;
                    listed
                }
                None => Vec::new(),
            },
            watcher::Event::Apply(object) => {
                if let Some(key_of) = key_of {
                    state
                        .index
                        .insert(ObjectRef::from_obj(&object), key_of(&object));
                }
                vec![object]
            }
            watcher::Event::Delete(object) => {
                state.index.remove(&ObjectRef::from_obj(&object));
                vec![object]
            }
        };
        for object in changed {
            // The store's copy when it has one (a deleted object is no longer there).
            let shared = store
                .get(&ObjectRef::from_obj(&object))
                .unwrap_or_else(|| Arc::new(object));
            // A subscriber whose stream was dropped is forgotten.
            state
                .subscribers
                .retain(|subscriber| match subscriber.upgrade() {
                    Some(pending) => {
                        lock(&pending).push(shared.clone());
                        true
                    }
                    None => false,
                });
        }
    }
}

/// The kinds the controllers read, each watched once.
#[derive(Clone)]
pub struct Caches {
    /// Instances, indexed by their deployment's UID label.
    pub instances: Shared<datum_api::compute::Instance>,
    /// WorkloadDeployments, indexed by their Workload's UID label.
    pub deployments: Shared<datum_api::compute::WorkloadDeployment>,
    pub workloads: Shared<datum_api::compute::Workload>,
    pub locations: Shared<datum_api::networking::Location>,
    pub networks: Shared<datum_api::networking::Network>,
    pub network_bindings: Shared<datum_api::networking::NetworkBinding>,
    pub network_contexts: Shared<datum_api::networking::NetworkContext>,
    pub subnets: Shared<datum_api::networking::Subnet>,
    /// IPAddresses, indexed by the UID of the Instance holding them.
    pub ip_addresses: Shared<datum_api::networking::IpAddress>,
}

impl Caches {
    /// Starts every watch, in the namespace(s) the controllers manage.
    pub fn start(context: &crate::context::Context) -> Self {
        Self {
            instances: Shared::start(context.scoped_api(), Some(deployment_of_instance)),
            deployments: Shared::start(context.scoped_api(), Some(workload_of_deployment)),
            workloads: Shared::start(context.scoped_api(), None),
            locations: Shared::start(context.cluster_api(), None),
            networks: Shared::start(context.scoped_api(), None),
            network_bindings: Shared::start(context.scoped_api(), None),
            network_contexts: Shared::start(context.scoped_api(), None),
            subnets: Shared::start(context.scoped_api(), None),
            ip_addresses: Shared::start(context.scoped_api(), Some(holder_of_address)),
        }
    }

    /// Waits until every cache holds its first list.
    pub async fn ready(&self) {
        futures::join!(
            self.instances.ready(),
            self.deployments.ready(),
            self.workloads.ready(),
            self.locations.ready(),
            self.networks.ready(),
            self.network_bindings.ready(),
            self.network_contexts.ready(),
            self.subnets.ready(),
            self.ip_addresses.ready(),
        );
    }

    /// Stops every watch.
    pub fn stop(&self) {
        self.instances.stop();
        self.deployments.stop();
        self.workloads.stop();
        self.locations.stop();
        self.networks.stop();
        self.network_bindings.stop();
        self.network_contexts.stop();
        self.subnets.stop();
        self.ip_addresses.stop();
    }
}

fn deployment_of_instance(instance: &datum_api::compute::Instance) -> Option<String> {
    let labels = instance.labels();
    labels
        .get(datum_api::compute::labels::WORKLOAD_DEPLOYMENT_UID)
        .cloned()
}

fn workload_of_deployment(deployment: &datum_api::compute::WorkloadDeployment) -> Option<String> {
    let labels = deployment.labels();
    labels
        .get(datum_api::compute::labels::WORKLOAD_UID)
        .cloned()
}

fn holder_of_address(address: &datum_api::networking::IpAddress) -> Option<String> {
    address.spec.instance_ref.as_ref().map(|i| i.uid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::networking::Network;

    fn network(name: &str, version: &str) -> Arc<Network> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
                "metadata": { "name": name, "namespace": "ns", "resourceVersion": version },
                "spec": { "ipam": { "mode": "Auto" } },
            }))
            .expect("a Network"),
        )
    }

    #[test]
    fn pending_changes_coalesce_per_object_in_first_change_order() {
        let mut pending = Pending::default();
        pending.push(network("a", "1"));
        pending.push(network("b", "2"));
        pending.push(network("a", "3"));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut next = |pending: &mut Pending<Network>| match pending.poll(&mut cx) {
            Poll::Ready(Some(n)) => Some(format!(
                "{}@{}",
                n.name_any(),
                n.resource_version().unwrap_or_default()
            )),
            Poll::Ready(None) => Some("end".to_owned()),
            Poll::Pending => None,
        };
        assert_eq!(
            next(&mut pending).as_deref(),
            Some("a@3"),
            "a's newest, in a's place"
        );
        assert_eq!(next(&mut pending).as_deref(), Some("b@2"));
        assert_eq!(
            next(&mut pending),
            None,
            "nothing more: a@1 is not queued twice"
        );
        pending.close();
        assert_eq!(next(&mut pending).as_deref(), Some("end"));
    }
}
