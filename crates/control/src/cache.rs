//! One watch per kind, shared by every controller that reads it.
//!
//! Controllers used to open their own watches (each holding its own copy of every Instance)
//! and to GET or LIST what they needed on every reconcile; at thousands of Instances those
//! reads were most of the API server's load. A [`Shared`] watches a kind once, keeps one
//! [`Store`] without `managedFields`, an index by a key the kind chooses (its owner's UID,
//! say), and hands every subscriber each object that changed — the store's own `Arc`, so
//! subscribers share one copy rather than each getting a clone.
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

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
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
    subscribers: Vec<mpsc::UnboundedSender<Arc<K>>>,
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
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = lock(&self.state);
        // Under the lock the watch task cannot apply an event, so nothing falls between
        // the replay and the subscription.
        for object in self.store.state() {
            let _ = sender.send(object);
        }
        state.subscribers.push(sender);
        tokio_stream_from(receiver)
    }

    /// Stops the watch; subscriber streams end.
    pub fn stop(&self) {
        self.task.abort();
        lock(&self.state).subscribers.clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that
    // matters more than stopping would; keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
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
            state
                .subscribers
                .retain(|subscriber| subscriber.send(shared.clone()).is_ok());
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
