//! The provider SDK: what a provider author writes is small — [`Provider::connect`] with a
//! ProviderConfig and its credentials, then observe / create / update / delete for each
//! external kind ([`ExternalClient`] for Instances, NetworkContexts and Subnets). The
//! runtime ([`run`]) does everything else: watching the objects of the Locations this
//! provider serves, finalizers, scheduling gates, conditions, status, Events, the
//! create-pending mark that makes crashes safe, drift repair, backoff, rate limits,
//! reconnecting on config changes, leader election, metrics, health and shutdown.
//!
//! | module | what it holds |
//! |---|---|
//! | [`external`] | the seam: the traits a provider implements and the types they exchange |
//! | [`managed`] | how the runtime reads and writes each Datum kind a provider manages |
//! | [`names`] | the finalizer and annotations the runtime puts on objects |
//! | [`network_policy`] | NetworkPolicies that select an Instance, peers resolved; the re-reconcile trigger |
//! | [`connection`] | connecting with the ProviderConfig and its Secrets, reconnecting on change |
//! | [`reconciler`] | the reconcile checklist shared by every kind |
//! | [`runtime`] | wiring: controllers, Location filtering, leader election, metrics, health |
//! | [`volume_source`] | a ConfigMap's or Secret's keys as a volume gets them |
//! | [`cli`] | the flags and `main` every provider binary shares |
//! | [`conformance`] | the suite every provider runs against itself on a real control plane |

pub mod cli;
pub mod conformance;
pub mod connection;
pub mod external;
pub mod managed;
pub mod names;
pub mod network_policy;
pub mod reconciler;
pub mod runtime;
pub mod volume_source;

pub use external::{
    AssignedAddresses, ConnectError, Credentials, ExternalClient, ExternalResource, InstanceLive,
    InterfaceAddresses, NetworkLive, Observation, PlatformError, PowerState, Provider, Usage,
};
pub use network_policy::{PeerInstance, ResolvedPeer, ResolvedRule, SelectedNetworkPolicy};
pub use runtime::{Options, run};
