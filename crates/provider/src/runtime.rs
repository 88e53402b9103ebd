//! Wiring: one controller per managed kind (Instance, NetworkContext, Subnet), the Location
//! cache that decides what this provider serves, the platform connection, and the process
//! plumbing from `datum-runtime` — leader election, `/metrics` `/healthz` `/readyz`, and
//! graceful shutdown.
//!
//! ```no_run
//! # async fn demo<P: datum_provider::Provider + Clone>(provider: P) -> Result<(), datum_provider::runtime::Error> {
//! let client = kube::Client::try_default().await.map_err(datum_provider::runtime::Error::Kube)?;
//! let shutdown = datum_runtime::shutdown::on_signal();
//! datum_provider::run(provider, client, datum_provider::Options::new("default"), shutdown).await
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::networking::{Location, NetworkContext, NetworkPolicy, Subnet};
use datum_runtime::backoff::Backoff;
use datum_runtime::health::{self, Health};
use datum_runtime::leader::{self, Leadership, LeaseOptions};
use datum_runtime::metrics::Metrics;
use datum_runtime::rate_limit::TokenBucket;
use datum_runtime::shutdown::CancellationToken;
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use crate::connection::Connection;
use crate::external::{ExternalClient, Provider};
use crate::managed::ManagedKind;
use crate::names::Names;
use crate::network_policy::PolicyIndex;
use crate::reconciler::{self, Context};

/// Errors that stop the provider process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes client could not be made.
    #[error("failed to create a Kubernetes client: {0}")]
    Kube(#[source] kube::Error),
    /// The health server could not start.
    #[error("failed to start the health server: {0}")]
    Health(#[from] health::Error),
    /// Leader election failed.
    #[error("leader election failed: {0}")]
    Leader(#[from] leader::Error),
    /// The Location cache never synced.
    #[error("failed to list Locations: {0}")]
    Locations(String),
    /// The NetworkPolicy or Instance cache never synced.
    #[error("failed to list NetworkPolicies and Instances: {0}")]
    NetworkPolicies(String),
}

/// How the runtime behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The name of the (cluster-scoped) ProviderConfig to connect with.
    pub provider_config: String,
    /// Serve only Locations of this class (`spec.locationClassName`), if set.
    pub location_class_name: Option<String>,
    /// Watch only this namespace, if set (tests; one tenant per provider).
    pub namespace: Option<String>,
    /// Reconciles in flight at once, per kind.
    pub concurrency: u16,
    /// Platform calls per second, sustained.
    pub platform_rate: f64,
    /// Platform calls in a burst.
    pub platform_burst: u32,
    /// How often synced objects are observed again, to catch drift.
    pub resync: Duration,
    /// How soon an object is observed again after a create or update.
    pub progress_requeue: Duration,
    /// How often the ProviderConfig and its Secrets are re-read.
    pub config_poll: Duration,
    /// First retry delay after a failure.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Where to serve `/metrics`, `/healthz`, `/readyz`, if anywhere.
    pub health_address: Option<SocketAddr>,
    /// Lease to hold while acting, if leader election is on.
    pub leader_election: Option<LeaseOptions>,
    /// This process's identity in Events.
    pub identity: String,
    /// How long in-flight reconciles may run on after shutdown before they are abandoned.
    pub shutdown_grace: Duration,
}

impl Options {
    /// Defaults: all namespaces, 8 reconciles per kind, 20 platform calls/s (burst 40),
    /// resync 60 s, config poll 5 s, backoff 200 ms..60 s, no health server, no election,
    /// 30 s shutdown grace.
    pub fn new(provider_config: impl Into<String>) -> Self {
        Self {
            provider_config: provider_config.into(),
            location_class_name: None,
            namespace: None,
            concurrency: 8,
            platform_rate: 20.0,
            platform_burst: 40,
            resync: Duration::from_secs(60),
            progress_requeue: Duration::from_secs(2),
            config_poll: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            health_address: None,
            leader_election: None,
            identity: std::env::var("HOSTNAME").unwrap_or_else(|_| "provider".to_owned()),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Runs the provider until `shutdown` fires (or leadership is lost).
pub async fn run<P: Provider>(
    provider: P,
    kube: Client,
    options: Options,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let provider = Arc::new(provider);
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    if let Some(address) = options.health_address {
        let listener = health::bind(address).await?;
        tokio::spawn(health::serve(
            listener,
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        ));
    }

    let mut leadership = None;
    if let Some(lease) = options.leader_election.clone() {
        let mut candidate = Leadership::start(kube.clone(), lease).await?;
        tokio::select! {
            () = candidate.acquired() => {}
            () = shutdown.cancelled() => return Ok(candidate.release().await?),
        }
        tracing::info!("leading");
        metrics.leader.set(1);
        leadership = Some(candidate);
    }
    // Stop acting when shutting down or when leadership is lost.
    let stop = shutdown.child_token();

    let connection = Arc::new(Connection::new(
        provider.clone(),
        kube.clone(),
        &options.provider_config,
    ));
    connection.refresh().await;
    tokio::spawn(connection.clone().run(options.config_poll, stop.clone()));

    let (locations, writer) = reflector::store::<Location>();
    let location_stream = watcher(
        Api::<Location>::all(kube.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|l| l.managed_fields_mut().clear())
    .reflect(writer)
    .for_each(|_| futures::future::ready(()));
    let location_task = tokio::spawn(location_stream);
    locations
        .wait_until_ready()
        .await
        .map_err(|e| Error::Locations(e.to_string()))?;

    let (network_policies, instance_triggers, policy_task) = if provider.enforces_network_policies()
    {
        let (index, triggers, task) = watch_network_policies(&kube, &options).await?;
        (Some(index), Some(triggers), Some(task))
    } else {
        (None, None, None)
    };

    let context = Arc::new(Context {
        provider: provider.clone(),
        kube: kube.clone(),
        names: Names::new(provider.name()),
        connection: connection.clone(),
        locations,
        location_class: options.location_class_name.clone(),
        recorder: Recorder::new(
            kube.clone(),
            Reporter {
                controller: format!("{}-provider", provider.name()),
                instance: Some(options.identity.clone()),
            },
        ),
        backoff: Backoff::new(options.backoff_initial, options.backoff_max),
        bucket: TokenBucket::new(options.platform_rate, options.platform_burst),
        metrics,
        resync: options.resync,
        progress_requeue: options.progress_requeue,
        network_policies,
        freshness: Default::default(),
    });

    health.set_ready(true);
    let controllers = futures::future::join3(
        controller::<P, Instance>(context.clone(), &options, stop.clone(), instance_triggers),
        controller::<P, NetworkContext>(context.clone(), &options, stop.clone(), None),
        controller::<P, Subnet>(context.clone(), &options, stop.clone(), None),
    );
    tokio::pin!(controllers);
    // Once stopping, in-flight reconciles get `shutdown_grace` to finish; a platform call
    // that never returns must not keep the process alive. Abandoning one is safe: the
    // create-pending mark makes the next run adopt rather than duplicate.
    let grace = options.shutdown_grace;
    let abandon = {
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
        }
    };
    tokio::pin!(abandon);
    let lost = async {
        match leadership.as_mut() {
            Some(leadership) => leadership.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = &mut controllers => {}
        () = &mut abandon => tracing::warn!(?grace, "abandoning reconciles still running after the shutdown grace"),
        () = lost => {
            tracing::warn!("lost leadership; stopping");
            stop.cancel();
            tokio::select! {
                _ = &mut controllers => {}
                () = &mut abandon => tracing::warn!(?grace, "abandoning reconciles still running after the shutdown grace"),
            }
        }
    }
    stop.cancel();
    health.set_ready(false);
    location_task.abort();
    if let Some(task) = policy_task {
        task.abort();
    }
    if let Some(leadership) = leadership {
        leadership.release().await?;
    }
    Ok(())
}

/// Watches NetworkPolicies and Instances into a [`PolicyIndex`] and, on every event,
/// yields the Instances whose resolved policies changed. Returns once both caches are
/// filled, so no Instance is first reconciled without its policies.
async fn watch_network_policies(
    kube: &Client,
    options: &Options,
) -> Result<
    (
        PolicyIndex,
        BoxStream<'static, ObjectRef<Instance>>,
        tokio::task::JoinHandle<()>,
    ),
    Error,
> {
    let (policies, policy_writer) = reflector::store::<NetworkPolicy>();
    let (instances, instance_writer) = reflector::store::<Instance>();
    let (policy_api, instance_api): (Api<NetworkPolicy>, Api<Instance>) = match &options.namespace {
        Some(namespace) => (
            Api::namespaced(kube.clone(), namespace),
            Api::namespaced(kube.clone(), namespace),
        ),
        None => (Api::all(kube.clone()), Api::all(kube.clone())),
    };
    // Which namespace an event touched: `Some(None)` for a (re)listed cache, all of them.
    fn touched<K: kube::Resource>(
        event: Result<watcher::Event<K>, watcher::Error>,
    ) -> Option<Option<String>> {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => Some(o.namespace()),
            Ok(watcher::Event::InitDone) => Some(None),
            _ => None,
        }
    }
    let policy_events = watcher(policy_api, watcher::Config::default())
        .default_backoff()
        .modify(|p| p.managed_fields_mut().clear())
        .reflect(policy_writer)
        .filter_map(|e| futures::future::ready(touched(e)));
    let index = PolicyIndex::new(policies.clone(), instances.clone());
    // Most Instance events are status writes no policy can see: they recompute nothing.
    let peers = index.clone();
    let instance_events = watcher(instance_api, watcher::Config::default())
        .default_backoff()
        .modify(|i| i.managed_fields_mut().clear())
        .reflect(instance_writer)
        .filter_map(move |e| {
            futures::future::ready(match e {
                Ok(watcher::Event::Apply(i)) if !peers.peer_changed(&i) => None,
                Ok(watcher::Event::Delete(i)) => {
                    peers.forget(&i);
                    Some(i.namespace())
                }
                e => touched(e),
            })
        });
    let (sender, receiver) = futures::channel::mpsc::unbounded();
    let task = {
        let index = index.clone();
        tokio::spawn(async move {
            let mut events =
                futures::stream::select(policy_events.boxed(), instance_events.boxed());
            while let Some(namespace) = events.next().await {
                for instance in index.affected(namespace.as_deref()) {
                    tracing::debug!(
                        namespace = instance.namespace.as_deref().unwrap_or_default(),
                        name = instance.name,
                        "network policies changed; reconciling the instance"
                    );
                    if sender.unbounded_send(instance).is_err() {
                        return;
                    }
                }
            }
        })
    };
    let ready = async {
        policies.wait_until_ready().await?;
        instances.wait_until_ready().await
    };
    if let Err(e) = ready.await {
        task.abort();
        return Err(Error::NetworkPolicies(e.to_string()));
    }
    Ok((index, receiver.boxed(), task))
}

/// Runs the controller of kind `K` until `stop` fires; `triggers` names objects to
/// reconcile besides those whose own events or Location changed.
async fn controller<P, K>(
    context: Arc<Context<P>>,
    options: &Options,
    stop: CancellationToken,
    triggers: Option<BoxStream<'static, ObjectRef<K>>>,
) where
    P: Provider,
    P::Client: ExternalClient<K>,
    K: ManagedKind,
{
    let kube = context.kube.clone();
    let api: Api<K> = match &options.namespace {
        Some(namespace) => Api::namespaced(kube.clone(), namespace),
        None => Api::all(kube.clone()),
    };
    let (reader, writer) = reflector::store::<K>();
    // Listed objects trigger only once the store has them (see `datum_runtime::relist`).
    let objects = datum_runtime::relist::applied_after_list(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o| o.managed_fields_mut().clear())
            .reflect(writer),
    );
    let by_location = reader.clone();
    let reconnected = config_changes(context.connection.subscribe());
    let triggers = triggers.unwrap_or_else(|| futures::stream::pending().boxed());
    Controller::for_stream(objects, reader)
        .with_config(Config::default().concurrency(options.concurrency))
        .watches(
            Api::<Location>::all(kube),
            watcher::Config::default(),
            move |location: Location| {
                let name = location.name_any();
                by_location
                    .state()
                    .into_iter()
                    .filter(|o| o.location_name() == Some(name.as_str()))
                    .map(|o| ObjectRef::from_obj(&*o))
                    .collect::<Vec<_>>()
            },
        )
        .reconcile_all_on(reconnected)
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            reconciler::reconcile::<P, K>,
            reconciler::error_policy::<P, K>,
            context,
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(controller = K::CONTROLLER, %error, "controller event");
            }
            futures::future::ready(())
        })
        .await;
}

/// A stream that yields each time the connection is remade.
fn config_changes(receiver: watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        Some(((), receiver))
    })
}
