//! The seam between the SDK and a provider, in Crossplane's shape: [`Provider::connect`]
//! returns a client, and the client implements [`ExternalClient`] once per managed kind
//! (`Instance`, `NetworkContext`, `Subnet`) with four verbs.
//!
//! Nothing here touches the Kubernetes API: a provider sees the desired spec (Datum API
//! types), a deterministic external name, the recorded external ID and the Location's
//! settings for it, and answers with platform facts.
//!
//! The contract each verb must keep:
//! - **observe** finds the resource by the recorded ID when there is one, else by the
//!   deterministic [`ExternalResource::external_name`] (this is how a resource created just
//!   before a crash is adopted rather than duplicated). It says whether the resource exists,
//!   whether it matches the spec, and its live state.
//! - **create** makes the resource, named `external_name`, and returns its ID.
//! - **update** makes an existing resource match the spec.
//! - **delete** removes it; deleting something already gone is success.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use datum_api::compute::Instance;
use datum_api::networking::{NetworkContext, Subnet};
use datum_api::provider_config::SecretKeyRef;
use kube::Resource;
use kube::core::ClusterResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::managed::ManagedKind;
use crate::network_policy::SelectedNetworkPolicy;

/// A provider: its name, its ProviderConfig kind, and how to connect.
pub trait Provider: Send + Sync + 'static {
    /// The provider's ProviderConfig kind (`<name>.provider.datum.net/v1alpha1`).
    type Config: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + DeserializeOwned
        + Serialize
        + Clone
        + fmt::Debug
        + Send
        + Sync
        + 'static;

    /// The connected platform client.
    type Client: ExternalClient<Instance>
        + ExternalClient<NetworkContext>
        + ExternalClient<Subnet>
        + Send
        + Sync
        + 'static;

    /// The provider's name: the key of `Location.spec.provider` it serves, and the prefix of
    /// its finalizer and annotations.
    fn name(&self) -> &str;

    /// The Secret keys `config` refers to; the runtime reads them and passes their values to
    /// [`Provider::connect`].
    fn secret_refs(&self, config: &Self::Config) -> Vec<SecretKeyRef> {
        let _ = config;
        Vec::new()
    }

    /// Whether the provider enforces NetworkPolicy objects. If so, the runtime watches them
    /// (RBAC: `list` and `watch` on `networkpolicies`), passes each Instance the policies
    /// that select it ([`ExternalResource::network_policies`]) and re-reconciles an
    /// Instance when they change. Off by default: a provider that ignores them needs no
    /// extra watch or permission.
    fn enforces_network_policies(&self) -> bool {
        false
    }

    /// Connects to the platform. An error becomes `Programmed=False` with reason
    /// `ProviderConfigInvalid` and the error's message on every affected object, so say
    /// exactly what is wrong — and never include a credential.
    fn connect(
        &self,
        config: &Self::Config,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<Self::Client, ConnectError>> + Send;
}

/// The four verbs for one managed kind.
pub trait ExternalClient<K: ManagedKind>: Send + Sync {
    /// Whether the resource exists, whether it is up to date, and its live state.
    fn observe(
        &self,
        resource: &ExternalResource<'_, K>,
    ) -> impl Future<Output = Result<Observation<K::Live>, PlatformError>> + Send;

    /// Creates the resource named `resource.external_name`; returns its ID.
    fn create(
        &self,
        resource: &ExternalResource<'_, K>,
    ) -> impl Future<Output = Result<String, PlatformError>> + Send;

    /// Makes the resource with ID `id` match the spec.
    fn update(
        &self,
        id: &str,
        resource: &ExternalResource<'_, K>,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Deletes the resource with ID `id`; already gone is success.
    fn delete(
        &self,
        id: &str,
        resource: &ExternalResource<'_, K>,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// What the provider is asked to act on.
#[derive(Debug)]
pub struct ExternalResource<'a, K: ManagedKind> {
    /// The Kubernetes object's namespace.
    pub namespace: &'a str,
    /// The Kubernetes object's name.
    pub name: &'a str,
    /// The Kubernetes object's UID.
    pub uid: &'a str,
    /// The deterministic name to create the resource under and to find it by:
    /// `datum-<uid>`.
    pub external_name: String,
    /// The ID recorded after a create, if any.
    pub id: Option<&'a str>,
    /// The desired state.
    pub spec: &'a K::Spec,
    /// The Location's settings for this provider (`Location.spec.provider.<name>`).
    pub location_settings: &'a serde_json::Value,
    /// For Instances: the addresses the control plane's IPAM allocated, one entry per
    /// interface in `spec.networkInterfaces` order. The runtime waits out the `Network`
    /// gate, so they are set before the first create. Empty for other kinds.
    pub assigned: Vec<AssignedAddresses>,
    /// The object's annotations (for example `compute.datumapis.com/ssh-keys` on an
    /// Instance).
    pub annotations: &'a std::collections::BTreeMap<String, String>,
    /// The object's labels.
    pub labels: &'a std::collections::BTreeMap<String, String>,
    /// For Instances of a provider that [enforces network
    /// policies](Provider::enforces_network_policies): the NetworkPolicies that select the
    /// instance, in name order, peers resolved to addresses. Empty otherwise. An observe
    /// that finds them enforced differently reports the resource out of date.
    pub network_policies: Vec<SelectedNetworkPolicy>,
}

/// The addresses IPAM allocated to one interface; a provider configures these rather than
/// picking its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignedAddresses {
    /// IPv4, or IPv6 on an IPv6-only network.
    pub network_ip: Option<String>,
    /// IPv6 on a dual-stack network.
    pub network_ipv6: Option<String>,
}

/// What observe found.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation<L> {
    /// Nothing by that ID or name exists.
    Absent,
    /// The resource exists.
    Exists {
        /// Its platform ID.
        id: String,
        /// Whether it matches the spec.
        up_to_date: bool,
        /// Its live state.
        live: L,
    },
}

/// Live state of an instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceLive {
    /// The platform's identifier, written to `status.providerID` (e.g. `sim://<id>`).
    pub provider_id: Option<String>,
    /// Addresses per network interface, in the order of `spec.networkInterfaces`.
    pub addresses: Vec<InterfaceAddresses>,
    /// Whether the machine runs.
    pub power: PowerState,
    /// Resource usage, if the platform measures it.
    pub usage: Option<Usage>,
}

/// Addresses of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceAddresses {
    /// The address inside the network.
    pub network_ip: Option<String>,
    /// The public address.
    pub external_ip: Option<String>,
}

/// Power state of a machine; `Running` condition is True only for [`PowerState::Running`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PowerState {
    /// Booting.
    #[default]
    Starting,
    /// Running (and passing its health check, where the platform checks one).
    Running,
    /// Shutting down.
    Stopping,
    /// Stopped.
    Stopped,
    /// Running, but the platform's health check of the workload's ports does not pass; the
    /// value is the platform's word for the check's state (e.g. `UNHEALTHY`, `UNKNOWN`).
    /// `Running` is then False with reason `Unhealthy` and that word in its message, so the
    /// control plane keeps the Instance not Ready.
    Unhealthy(&'static str),
}

/// Resource usage figures, as percentages of what the instance type grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU in use, percent.
    pub cpu_utilization: Option<i32>,
    /// Memory in use, percent.
    pub memory_utilization: Option<i32>,
}

/// Live state of a network context or subnet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkLive {
    /// The platform's identifier, recorded in an annotation.
    pub provider_id: Option<String>,
}

/// A platform call failed. The message lands in the `Programmed` condition and an Event:
/// never put a credential in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlatformError {
    /// A condition reason, CamelCase (e.g. `QuotaExceeded`).
    pub reason: String,
    /// What went wrong.
    pub message: String,
}

impl PlatformError {
    /// An error with reason `PlatformError`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            reason: "PlatformError".to_owned(),
            message: message.into(),
        }
    }
}

/// Connecting with a ProviderConfig failed; the message says exactly what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// The values of the Secret keys a ProviderConfig names. `Debug` never shows a value.
#[derive(Clone, Default)]
pub struct Credentials {
    values: BTreeMap<(String, String, String), Vec<u8>>,
}

impl Credentials {
    /// Records the value of one key.
    pub fn insert(&mut self, reference: &SecretKeyRef, value: Vec<u8>) {
        self.values.insert(Self::key(reference), value);
    }

    /// The value of one key, if it was read.
    pub fn get(&self, reference: &SecretKeyRef) -> Option<&[u8]> {
        self.values.get(&Self::key(reference)).map(Vec::as_slice)
    }

    fn key(reference: &SecretKeyRef) -> (String, String, String) {
        (
            reference.namespace.clone(),
            reference.name.clone(),
            reference.key.clone(),
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.values
                    .keys()
                    .map(|(ns, name, key)| format!("{ns}/{name}[{key}]=<redacted>")),
            )
            .finish()
    }
}
