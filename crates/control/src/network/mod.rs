//! The networks controllers: a Network becomes present in a Location, gets a subnet there
//! per family, and gives every Instance interface on it an address.
//!
//! | module | controller | turns | into |
//! |---|---|---|---|
//! | [`network_status`] | network | a Network | its ranges (`status.ipam.ipv6Prefix`) and `Ready` |
//! | [`binding`] | network binding | a NetworkBinding | the NetworkContext of its (network, location), and the binding's `Ready` |
//! | [`network_context`] | network context | a NetworkContext | one Subnet per family, cut from the Network's range, and the context's `Ready` |
//! | [`instance_network`] | instance network | an Instance | an address per interface and family, `status.networkInterfaces`, and the `Network` scheduling gate lifted |
//!
//! [`ranges`] says where a Network's ranges come from; the allocation itself is
//! [`crate::ipam`]'s. Cleanup is the garbage collector's: Network → NetworkContext →
//! Subnet → its block, and Instance → its addresses, all by owner references. No finalizer
//! is needed: nothing outside the API server holds an allocation.
//!
//! A namespace's objects attach only to its own Networks: a NetworkBinding or an Instance
//! interface naming a Network in another namespace is refused with reason
//! `CrossNamespaceNetwork` ([`cross_namespace_message`] names the field), and nothing is
//! created or allocated for it.

pub mod binding;
pub mod instance_network;
pub mod network_context;
pub mod network_status;
pub mod ranges;

use std::future::Future;
use std::sync::Arc;

pub use ranges::NetworkSettings;

use crate::context::Context;
use crate::ipam::Allocator;

/// What the networks controllers share: the controller context and one allocator (its
/// hints are per process; correctness never depends on them).
#[derive(Clone)]
pub struct Networks {
    pub context: Context,
    pub allocator: Arc<Allocator>,
}

impl AsRef<Context> for Networks {
    fn as_ref(&self) -> &Context {
        &self.context
    }
}

impl Networks {
    pub fn new(context: Context) -> Self {
        let allocator = Arc::new(Allocator::with_cache(
            context.client().clone(),
            context.caches().ip_addresses.clone(),
        ));
        Self { context, allocator }
    }
}

/// Runs every networks controller until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let networks = Networks::new(context.clone());
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let signal = |tx: &tokio::sync::broadcast::Sender<()>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.recv().await;
        }
    };
    let controllers = futures::future::join4(
        network_status::run(context.clone(), signal(&tx)),
        binding::run(context.clone(), signal(&tx)),
        network_context::run(networks.clone(), signal(&tx)),
        instance_network::run(networks, signal(&tx)),
    );
    let trigger = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    let (_, _) = futures::future::join(controllers, trigger).await;
}

/// Why a reference to a Network in another namespace is refused, naming the field.
pub fn cross_namespace_message(
    field: &str,
    network_namespace: &str,
    network_name: &str,
    namespace: &str,
) -> String {
    format!(
        "{field}: Network {network_namespace}/{network_name} is in another namespace; \
         only Networks in namespace {namespace} may be attached"
    )
}
