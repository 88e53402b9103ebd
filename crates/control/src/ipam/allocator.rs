//! Allocating host addresses and subnet blocks as [`IpAddress`] objects.
//!
//! The object's name is derived from what it allocates ([`IpAddress::host_name`],
//! [`IpAddress::block_name`]), so the API server's atomic create is the lock: of two
//! allocators (two workers, two processes, a restarted one) trying the same address, one
//! create succeeds and the other gets `409 AlreadyExists` and moves on. An allocator keeps
//! a per-subnet hint of the addresses it has seen taken so it does not retry them one by
//! one; the hint may be stale in both directions — a create that fails tells it an address
//! is taken, and an apparently full subnet is re-listed once before it reports exhaustion.
//!
//! Allocation is idempotent per holder: an address already held by the same Instance (UID),
//! interface and subnet — or a block held by the same Subnet — is returned instead of a new
//! one, so a restart never allocates twice.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), datum_control::ipam::allocator::AllocatorError> {
//! use datum_control::ipam::allocator::{Allocator, Holder, HostRequest};
//! use datum_api::networking::IpFamily;
//!
//! let allocator = Allocator::new(client);
//! let holder = Holder { instance_name: "web-0".into(), instance_uid: "1234".into(), interface_index: 0, owner: None };
//! let request = HostRequest { namespace: "ns", network: "default", subnet: "default-iad-ipv4",
//!     cidr: "10.128.0.0/20".parse().expect("a CIDR"), family: IpFamily::Ipv4, holder: &holder };
//! let address = allocator.allocate_host(&request).await?;
//! println!("{}", address.spec.address);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datum_api::networking::{
    IpAddress, IpAddressInstanceRef, IpAddressSpec, IpFamily, LocalNetworkRef, LocalSubnetReference,
};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};

use super::pool::{self, Pool, PoolError};
use crate::cache::Shared;

#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    #[error("no free {family} address is left in subnet {subnet} ({cidr})")]
    HostsExhausted {
        family: IpFamily,
        subnet: String,
        cidr: IpNet,
    },
    #[error("no free /{length} block is left in the {family} range {range} of network {network}")]
    BlocksExhausted {
        family: IpFamily,
        network: String,
        range: IpNet,
        length: u8,
    },
    #[error("failed to list the IP addresses of {0}")]
    List(String, #[source] kube::Error),
    #[error("failed to create IP address {0}")]
    Create(String, #[source] kube::Error),
    #[error("failed to read IP address {0}")]
    Get(String, #[source] kube::Error),
    #[error("failed to release IP address {0}")]
    Release(String, #[source] kube::Error),
    #[error("cannot cut subnets from the network's range")]
    Pool(#[from] PoolError),
}

impl AllocatorError {
    /// Whether the error means "the pool is full" (a condition to report and wait out).
    pub fn is_exhausted(&self) -> bool {
        matches!(
            self,
            Self::HostsExhausted { .. } | Self::BlocksExhausted { .. }
        )
    }
}

/// Who an address is for: one interface of one Instance.
#[derive(Clone, Debug)]
pub struct Holder {
    pub instance_name: String,
    pub instance_uid: String,
    pub interface_index: u32,
    /// The owner reference the allocation carries (the Instance, when in its namespace),
    /// so the garbage collector releases it with the Instance.
    pub owner: Option<OwnerReference>,
}

/// A host address wanted from a subnet.
#[derive(Clone, Debug)]
pub struct HostRequest<'a> {
    pub namespace: &'a str,
    pub network: &'a str,
    pub subnet: &'a str,
    pub cidr: IpNet,
    pub family: IpFamily,
    pub holder: &'a Holder,
}

/// A block of a network's range wanted for a subnet.
#[derive(Clone, Debug)]
pub struct BlockRequest<'a> {
    pub namespace: &'a str,
    pub network: &'a str,
    pub range: IpNet,
    pub length: u8,
    pub family: IpFamily,
    pub subnet: &'a str,
    /// The owner reference to the Subnet; its UID identifies the holder.
    pub owner: OwnerReference,
}

/// How long an allocation this process created counts as held while the cache does not
/// show it; a watch lags by far less.
const CREATED_KEPT: Duration = Duration::from_secs(120);

/// Allocates addresses and blocks; cheap to share (one per process).
pub struct Allocator {
    client: Client,
    /// Addresses seen taken, per `<namespace>/<subnet>`.
    hints: Mutex<HashMap<String, HashSet<IpAddr>>>,
    /// Where existing allocations are read from, when set; otherwise they are listed.
    cache: Option<Shared<IpAddress>>,
    /// Allocations this allocator created that the cache may not show yet, by
    /// `<namespace>/<name>`: without them a reconcile running before the watch delivers
    /// its own create would allocate the same holder a second address. Entries go when the
    /// cache shows them, or after [`CREATED_KEPT`] (one deleted before the watch saw it).
    created: Mutex<HashMap<String, (Instant, IpAddress)>>,
}

impl Allocator {
    /// An allocator that lists allocations from the API server each time it needs them.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            hints: Mutex::new(HashMap::new()),
            cache: None,
            created: Mutex::new(HashMap::new()),
        }
    }

    /// An allocator that reads allocations from `cache` (the controllers' shared watch);
    /// creates and deletes still go to the API server, whose atomic create stays the lock.
    pub fn with_cache(client: Client, cache: Shared<IpAddress>) -> Self {
        Self {
            cache: Some(cache),
            ..Self::new(client)
        }
    }

    /// The allocations in `namespace` matching `wanted`, from the cache plus what this
    /// allocator created since; `None` without a cache.
    fn cached(
        &self,
        namespace: &str,
        candidates: Option<Vec<std::sync::Arc<IpAddress>>>,
        wanted: impl Fn(&IpAddress) -> bool,
    ) -> Option<Vec<IpAddress>> {
        let cache = self.cache.as_ref()?;
        let candidates = candidates.unwrap_or_else(|| cache.store().state());
        let mut found: HashMap<String, IpAddress> = candidates
            .iter()
            .filter(|a| a.namespace().as_deref() == Some(namespace) && wanted(a))
            .map(|a| (a.name_any(), a.as_ref().clone()))
            .collect();
        if let Ok(mut created) = self.created.lock() {
            // Forget what the cache shows now (or shows deleted: gone from both).
            created.retain(|key, (at, _)| {
                let (ns, name) = key.split_once('/').unwrap_or_default();
                at.elapsed() < CREATED_KEPT && cache.get(Some(ns), name).is_none()
            });
            for (_, allocation) in created.values() {
                if allocation.namespace().as_deref() == Some(namespace) && wanted(allocation) {
                    found
                        .entry(allocation.name_any())
                        .or_insert_with(|| allocation.clone());
                }
            }
        }
        Some(found.into_values().collect())
    }

    fn remember(&self, allocation: &IpAddress) {
        if self.cache.is_some()
            && let Ok(mut created) = self.created.lock()
        {
            created.insert(
                format!(
                    "{}/{}",
                    allocation.namespace().unwrap_or_default(),
                    allocation.name_any()
                ),
                (Instant::now(), allocation.clone()),
            );
        }
    }

    fn api(&self, namespace: &str) -> Api<IpAddress> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The allocations in `namespace` whose `field` (a selectable field) is `value`.
    pub async fn list_by(
        &self,
        namespace: &str,
        field: &str,
        value: &str,
    ) -> Result<Vec<IpAddress>, AllocatorError> {
        let params = ListParams::default().fields(&format!("{field}={value}"));
        self.api(namespace)
            .list(&params)
            .await
            .map(|list| list.items)
            .map_err(|e| AllocatorError::List(format!("{namespace}/{value}"), e))
    }

    /// The host addresses held by the Instance of `uid` in `namespace`.
    pub async fn held_by_instance(
        &self,
        namespace: &str,
        uid: &str,
    ) -> Result<Vec<IpAddress>, AllocatorError> {
        let indexed = self.cache.as_ref().map(|cache| cache.indexed(uid));
        if let Some(held) = self.cached(namespace, indexed, |a| {
            a.spec.instance_ref.as_ref().is_some_and(|i| i.uid == uid)
        }) {
            return Ok(held);
        }
        self.list_by(namespace, "spec.instanceRef.uid", uid).await
    }

    /// The address `request.holder` holds in the subnet, allocating the first free one if
    /// it holds none.
    pub async fn allocate_host(
        &self,
        request: &HostRequest<'_>,
    ) -> Result<IpAddress, AllocatorError> {
        let held = self
            .held_by_instance(request.namespace, &request.holder.instance_uid)
            .await?;
        if let Some(existing) = held
            .into_iter()
            .filter(|a| holds(a, request))
            .min_by_key(|a| a.spec.address.parse::<IpAddr>().ok())
        {
            return Ok(existing);
        }
        let key = format!("{}/{}", request.namespace, request.subnet);
        let pool = Pool::hosts(request.cidr);
        let mut refreshed = false;
        if !self.has_hint(&key) {
            self.refresh(&key, request.namespace, request.subnet)
                .await?;
            refreshed = true;
        }
        loop {
            while let Some(candidate) = self.reserve(&key, &pool) {
                if let Some(address) = self.try_host(request, candidate).await? {
                    return Ok(address);
                }
            }
            if refreshed {
                return Err(AllocatorError::HostsExhausted {
                    family: request.family,
                    subnet: request.subnet.to_owned(),
                    cidr: request.cidr,
                });
            }
            self.refresh(&key, request.namespace, request.subnet)
                .await?;
            refreshed = true;
        }
    }

    /// Tries to create the allocation of `candidate`; `None` when someone else holds it.
    async fn try_host(
        &self,
        request: &HostRequest<'_>,
        candidate: IpAddr,
    ) -> Result<Option<IpAddress>, AllocatorError> {
        let address = candidate.to_string();
        let name = IpAddress::host_name(request.subnet, &address);
        let holder = request.holder;
        let object = IpAddress {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(request.namespace.to_owned()),
                owner_references: holder.owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: IpAddressSpec {
                network: LocalNetworkRef::new(request.network),
                subnet_ref: LocalSubnetReference {
                    name: request.subnet.to_owned(),
                },
                ip_family: request.family,
                address,
                prefix_length: None,
                instance_ref: Some(IpAddressInstanceRef {
                    name: holder.instance_name.clone(),
                    uid: holder.instance_uid.clone(),
                }),
                interface_index: i32::try_from(holder.interface_index).ok(),
            },
            status: None,
        };
        let api = self.api(request.namespace);
        match api.create(&PostParams::default(), &object).await {
            Ok(created) => {
                self.remember(&created);
                Ok(Some(created))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => match api.get_opt(&name).await {
                Ok(Some(existing)) if holds(&existing, request) => Ok(Some(existing)),
                Ok(_) => Ok(None),
                Err(e) => Err(AllocatorError::Get(name, e)),
            },
            Err(e) => {
                self.forget(
                    &format!("{}/{}", request.namespace, request.subnet),
                    candidate,
                );
                Err(AllocatorError::Create(name, e))
            }
        }
    }

    /// The block `request.subnet` holds, allocating the first free one if it holds none.
    pub async fn allocate_block(
        &self,
        request: &BlockRequest<'_>,
    ) -> Result<IpNet, AllocatorError> {
        let pool = Pool::blocks(request.range, request.length)?;
        let existing = match self.cached(request.namespace, None, |a| {
            a.spec.network.name == request.network
        }) {
            Some(existing) => existing,
            None => {
                self.list_by(request.namespace, "spec.network.name", request.network)
                    .await?
            }
        };
        let mut taken: Vec<IpNet> = Vec::new();
        for allocation in existing.iter().filter(|a| a.spec.prefix_length.is_some()) {
            let Some(block) = block_of(allocation) else {
                continue;
            };
            if holds_block(allocation, request) {
                return Ok(block);
            }
            taken.push(block);
        }
        for start in pool.candidates() {
            let block = pool.allocation(start);
            if taken.iter().any(|t| pool::overlaps(t, &block)) {
                continue;
            }
            let name = IpAddress::block_name(request.network, &start.to_string(), pool.length());
            let object = IpAddress {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(request.namespace.to_owned()),
                    owner_references: Some(vec![request.owner.clone()]),
                    ..ObjectMeta::default()
                },
                spec: IpAddressSpec {
                    network: LocalNetworkRef::new(request.network),
                    subnet_ref: LocalSubnetReference {
                        name: request.subnet.to_owned(),
                    },
                    ip_family: request.family,
                    address: start.to_string(),
                    prefix_length: Some(i32::from(pool.length())),
                    instance_ref: None,
                    interface_index: None,
                },
                status: None,
            };
            let api = self.api(request.namespace);
            match api.create(&PostParams::default(), &object).await {
                Ok(created) => {
                    self.remember(&created);
                    return Ok(block);
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    match api.get_opt(&name).await {
                        Ok(Some(found)) if holds_block(&found, request) => return Ok(block),
                        Ok(_) => taken.push(block),
                        Err(e) => return Err(AllocatorError::Get(name, e)),
                    }
                }
                Err(e) => return Err(AllocatorError::Create(name, e)),
            }
        }
        Err(AllocatorError::BlocksExhausted {
            family: request.family,
            network: request.network.to_owned(),
            range: pool.range(),
            length: pool.length(),
        })
    }

    /// Deletes an allocation (a missing one counts as released).
    pub async fn release(&self, allocation: &IpAddress) -> Result<(), AllocatorError> {
        let namespace = allocation.namespace().unwrap_or_default();
        let name = allocation.name_any();
        match self
            .api(&namespace)
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(AllocatorError::Release(name, e)),
        }
        if let Ok(mut created) = self.created.lock() {
            created.remove(&format!("{namespace}/{name}"));
        }
        if let Ok(address) = allocation.spec.address.parse() {
            self.forget(
                &format!("{namespace}/{}", allocation.spec.subnet_ref.name),
                address,
            );
        }
        Ok(())
    }

    fn has_hint(&self, key: &str) -> bool {
        self.hints
            .lock()
            .map(|hints| hints.contains_key(key))
            .unwrap_or(false)
    }

    /// Picks the first address not seen taken and marks it taken (so concurrent
    /// reconciles in this process try different ones).
    fn reserve(&self, key: &str, pool: &Pool) -> Option<IpAddr> {
        let mut hints = self.hints.lock().ok()?;
        let taken = hints.entry(key.to_owned()).or_default();
        let candidate = pool.candidates().find(|c| !taken.contains(c))?;
        taken.insert(candidate);
        Some(candidate)
    }

    fn forget(&self, key: &str, address: IpAddr) {
        if let Ok(mut hints) = self.hints.lock()
            && let Some(taken) = hints.get_mut(key)
        {
            taken.remove(&address);
        }
    }

    /// Replaces the hint of `key` with the addresses the API server holds now.
    async fn refresh(
        &self,
        key: &str,
        namespace: &str,
        subnet: &str,
    ) -> Result<(), AllocatorError> {
        let allocations = match self.cached(namespace, None, |a| a.spec.subnet_ref.name == subnet) {
            Some(allocations) => allocations,
            None => {
                self.list_by(namespace, "spec.subnetRef.name", subnet)
                    .await?
            }
        };
        let taken: HashSet<IpAddr> = allocations
            .iter()
            .filter(|a| a.spec.prefix_length.is_none())
            .filter_map(|a| a.spec.address.parse().ok())
            .collect();
        if let Ok(mut hints) = self.hints.lock() {
            hints.insert(key.to_owned(), taken);
        }
        Ok(())
    }
}

/// Whether `allocation` is the address `request.holder` holds in the requested subnet.
fn holds(allocation: &IpAddress, request: &HostRequest<'_>) -> bool {
    let spec = &allocation.spec;
    spec.prefix_length.is_none()
        && spec.subnet_ref.name == request.subnet
        && spec.ip_family == request.family
        && spec.interface_index == i32::try_from(request.holder.interface_index).ok()
        && spec
            .instance_ref
            .as_ref()
            .is_some_and(|i| i.uid == request.holder.instance_uid)
        && spec
            .address
            .parse::<IpAddr>()
            .is_ok_and(|a| request.cidr.contains(&a))
}

/// Whether `allocation` is the block held by the Subnet of `request` (same name and UID).
fn holds_block(allocation: &IpAddress, request: &BlockRequest<'_>) -> bool {
    allocation.spec.subnet_ref.name == request.subnet
        && allocation.spec.ip_family == request.family
        && allocation
            .owner_references()
            .iter()
            .any(|o| o.uid == request.owner.uid)
}

/// The block an allocation holds.
pub fn block_of(allocation: &IpAddress) -> Option<IpNet> {
    let start: IpAddr = allocation.spec.address.parse().ok()?;
    let length = u8::try_from(allocation.spec.prefix_length?).ok()?;
    IpNet::new(start, length).ok()
}
