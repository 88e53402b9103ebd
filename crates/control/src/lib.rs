//! The Datum control plane: the controllers that turn what users declare into the
//! per-location objects providers act on.
//!
//! | module | controller | turns | into |
//! |---|---|---|---|
//! | [`placement`] | workload | a compute `Workload` | one `WorkloadDeployment` per placement × selected Location, and the Workload's status |
//! | [`instance_control`] | workload deployment | a `WorkloadDeployment` | its `Instance`s (ordinals, rollouts, scale-down) and the deployment's status |
//! | [`instance_readiness`] | instance | an Instance's provider-set `Programmed`/`Running` | its `Ready` condition |
//! | [`short_form`] | short form | a `workload.datum.net` Workload | the canonical Workload it owns, status mirrored back |
//! | [`autoscaler`] | autoscaler | Instance `status.usage` | WorkloadDeployment `spec.replicas`, through `/scale` |
//! | [`network`] | networks | Network, NetworkBinding, NetworkContext, Instance interfaces | NetworkContexts, Subnets, addresses ([`ipam`]), the `Network` gate lifted |
//!
//! [`context`] holds what every controller shares (client, [`Settings`], event reporter,
//! the [`cache`]s: one watch per kind, read by every controller instead of the API server);
//! [`watch`] builds their watch streams; [`status_write`] writes status subresources only
//! when something changed. [`run`] starts them all, the way the `datum-control` binary and
//! the tests do:
//!
//! ```no_run
//! # async fn demo(client: kube::Client) {
//! let settings = datum_control::Settings::default();
//! datum_control::run(client, settings, std::future::pending()).await;
//! # }
//! ```
//!
//! Cleanup is the garbage collector's: every object a controller creates carries a
//! controller owner reference (`blockOwnerDeletion: true`) to the object it came from, so
//! deleting a Workload removes its deployments and their Instances. No finalizer is added:
//! nothing outside the API server has to be released first.

pub mod autoscaler;
pub mod cache;
pub mod context;
pub mod expectations;
pub mod instance_control;
pub mod instance_readiness;
pub mod ipam;
pub mod label_values;
pub mod network;
pub mod ownership;
pub mod placement;
pub mod short_form;
pub mod status_write;
pub mod watch;

use std::future::Future;

pub use context::{Context, Settings};

/// Runs every controller until `shutdown` completes; each controller then finishes the
/// reconciles it has started and returns.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let context = Context::new(client, settings);
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let signal = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let stopped_early = signal(&tx);
    let controllers = futures::future::join5(
        placement::run(context.clone(), signal(&tx)),
        instance_control::run(context.clone(), signal(&tx)),
        instance_readiness::run(context.clone(), signal(&tx)),
        short_form::run(context.clone(), signal(&tx)),
        autoscaler::run(context.clone(), signal(&tx)),
    );
    let controllers =
        futures::future::join(controllers, network::run(context.clone(), signal(&tx)));
    let caches = context.caches().clone();
    // Controllers start once every cache holds its first list, so no reconcile reads a
    // half-loaded cache (and, say, takes a missing Network for a deleted one).
    let work = async move {
        tokio::select! {
            () = caches.ready() => {
                tracing::debug!("caches loaded; starting the controllers");
                controllers.await;
            }
            () = stopped_early => {}
        }
        caches.stop();
    };
    let trigger = async move {
        shutdown.await;
        tracing::info!("shutting down controllers");
        let _ = tx.send(());
    };
    let ((), ()) = futures::future::join(work, trigger).await;
}
