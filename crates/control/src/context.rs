//! What every controller shares: the client, the [`Settings`], the event reporter and the
//! [`Caches`].
//!
//! A [`Context`] is cheap to clone (an `Arc` inside) and is handed to each reconcile.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datum_runtime::metrics::Metrics;
use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::cache::Caches;

/// How the controllers behave; the defaults suit production, tests shorten the windows.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch and manage namespaced objects in this namespace only (all when `None`).
    /// Locations are cluster-scoped and always watched cluster-wide.
    pub namespace: Option<String>,
    /// How often an object is reconciled even when nothing about it changed.
    pub resync: Duration,
    /// How long after the last error a failed reconcile is retried.
    pub retry: Duration,
    /// The least time between two status writes of one roll-up (a deployment's or a
    /// Workload's status); see [`Pacer`](crate::status_write::Pacer).
    pub rollup_interval: Duration,
    /// Roll-up status writes per second across all objects: with many roll-ups changing at
    /// once, each one's interval grows to keep within it (see
    /// [`Pacer`](crate::status_write::Pacer)); zero for no budget.
    pub rollup_budget: f64,
    /// Reconciles each controller runs at once. Bounded, a burst of thousands of changed
    /// objects does not become thousands of reconciles (and their request buffers) in
    /// memory together; the API server is the bottleneck well before this.
    pub concurrency: u16,
    /// The autoscaler's knobs.
    pub autoscaler: crate::autoscaler::AutoscalerSettings,
    /// The field manager and event reporter name.
    pub manager: String,
    /// Default Network ranges and subnet sizes.
    pub networks: crate::network::NetworkSettings,
    /// Where reconciles are counted and timed (served on `/metrics` by the binary).
    pub metrics: Arc<Metrics>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(5),
            rollup_interval: Duration::from_secs(2),
            rollup_budget: 10.0,
            concurrency: 16,
            autoscaler: crate::autoscaler::AutoscalerSettings::default(),
            manager: "datum-control".to_owned(),
            networks: crate::network::NetworkSettings::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// The shared state of the controllers.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    settings: Settings,
    recorder: Recorder,
    caches: OnceLock<Caches>,
    expectations: crate::expectations::Expectations,
    pacer: crate::status_write::Pacer,
    freshness: datum_runtime::freshness::Freshness,
}

/// What [`crate::watch::Drive`] reads a controller's settings and metrics from.
impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}

impl Context {
    pub fn new(client: Client, settings: Settings) -> Self {
        let reporter = Reporter {
            controller: settings.manager.clone(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        let pacer =
            crate::status_write::Pacer::new(settings.rollup_interval, settings.rollup_budget);
        let context = Self {
            inner: Arc::new(Inner {
                client,
                settings,
                recorder,
                caches: OnceLock::new(),
                expectations: Default::default(),
                pacer,
                freshness: Default::default(),
            }),
        };
        let caches = Caches::start(&context);
        let _ = context.inner.caches.set(caches);
        context
    }

    /// Versions of objects known to be outdated in the caches.
    pub fn freshness(&self) -> &datum_runtime::freshness::Freshness {
        &self.inner.freshness
    }

    /// Spaces roll-up status writes.
    pub fn pacer(&self) -> &crate::status_write::Pacer {
        &self.inner.pacer
    }

    /// Objects this process created that the caches do not show yet.
    pub fn expectations(&self) -> &crate::expectations::Expectations {
        &self.inner.expectations
    }

    /// The shared caches (one watch per kind), started with the context.
    pub fn caches(&self) -> &Caches {
        // Set in `new` before the context is handed out.
        self.inner.caches.get_or_init(|| Caches::start(self))
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// An API for a namespaced kind, scoped to [`Settings::namespace`] (all namespaces when unset).
    pub fn scoped_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match &self.inner.settings.namespace {
            Some(namespace) => Api::namespaced(self.client().clone(), namespace),
            None => Api::all(self.client().clone()),
        }
    }

    /// An API for a namespaced kind in `namespace`.
    pub fn api_in<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client().clone(), namespace)
    }

    /// An API for a cluster-scoped kind.
    pub fn cluster_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::all(self.client().clone())
    }
}

/// Wraps a reconcile function so every run is counted and timed under `controller` in
/// [`Settings::metrics`]: `datum_reconcile_total`, `datum_reconcile_errors_total`,
/// `datum_reconcile_duration_seconds`.
pub fn timed<K, C, E, F, Fut>(
    controller: &'static str,
    metrics: Arc<Metrics>,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
where
    F: Fn(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    move |object, context| {
        let timer = metrics.reconcile.start(controller);
        let pending = reconcile(object, context);
        Box::pin(async move {
            let result = pending.await;
            timer.finish(result.is_ok());
            result
        })
    }
}
