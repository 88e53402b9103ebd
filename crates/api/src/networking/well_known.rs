//! The strings the networking API agrees on with the outside world: its group and version,
//! topology keys, labels, annotations, finalizers, condition types and reasons.
//!
//! They are byte-for-byte those of Datum's network-services-operator, because other parts
//! of a Datum deployment (cells, propagation policies, providers) find objects by them.
//! Controllers use these constants rather than literals so a typo is a compile error.
//!
//! ```
//! use datum_api::networking::{Location, well_known::topology};
//!
//! fn city(location: &Location) -> Option<&str> {
//!     location.spec.topology.get(topology::CITY_CODE).map(String::as_str)
//! }
//! # let _ = city;
//! ```

/// The API group of every kind in [`crate::networking`].
pub const GROUP: &str = "networking.datumapis.com";

/// The one served version of every kind in [`crate::networking`].
pub const VERSION: &str = "v1alpha";

/// Well-known keys of `Location.spec.topology`.
pub mod topology {
    /// The city a Location serves, as an IATA-style code (`IAD`, `DFW`, `LHR`…).
    /// Workload placements select Locations by it; a Location without one is never published.
    pub const CITY_CODE: &str = "topology.datum.net/city-code";
    /// The region a Location belongs to, for example `us-east-1`.
    pub const REGION: &str = "topology.datum.net/region";
    /// Label on a member cluster naming the Location it serves.
    pub const LOCATION: &str = "topology.datum.net/location";
}

/// Documented values of `Location.spec.locationClassName`. The field is free text; nothing
/// branches on it except a provider that is configured to serve only one class.
pub mod location_class {
    /// Locations whose infrastructure Datum operates.
    pub const DATUM_MANAGED: &str = "datum-managed";
    /// Locations whose infrastructure their owner operates.
    pub const SELF_MANAGED: &str = "self-managed";
}

/// Provider keys of `Location.spec.provider` that this project knows by name. Any other key
/// names a custom provider.
pub mod provider {
    /// Google Compute Engine.
    pub const GCP: &str = "gcp";
    /// The local provider: containers and VMs on one Linux host.
    pub const LOCAL: &str = "local";
    /// The simulated in-memory cloud used for scale and chaos tests.
    pub const SIM: &str = "sim";
}

/// Labels.
pub mod labels {
    /// The Network an object belongs to (NetworkBinding, NetworkContext, Subnet).
    pub const NETWORK: &str = "networking.datumapis.com/network";
    /// The Location an object belongs to. Routes NetworkContexts and Subnets to cells.
    pub const LOCATION: &str = "networking.datumapis.com/location";
    /// The UID of the Network a presence-created NetworkContext was made for; teardown deletes
    /// only contexts that carry it.
    pub const NETWORK_UID: &str = "networking.datumapis.com/network-uid";
    /// Marks a published copy of a NetworkInterface (value `true`).
    pub const NETWORK_INTERFACE_PROJECTION: &str =
        "networking.datumapis.com/network-interface-projection";
    /// On an interface copy: the claim holding it.
    pub const HELD_BY: &str = "networking.datumapis.com/held-by";
    /// On an interface copy: the namespace it was copied from.
    pub const SOURCE_NAMESPACE: &str = "networking.datumapis.com/source-namespace";
    /// The publisher owns only objects carrying this label (value [`PUBLISHED_BY_LOCATION_PUBLISHER`]).
    pub const PUBLISHED_BY: &str = "networking.datumapis.com/published-by";
    /// The value of [`PUBLISHED_BY`] on objects the location publisher wrote.
    pub const PUBLISHED_BY_LOCATION_PUBLISHER: &str = "location-publisher";
    /// On a hub or cell namespace: the project, encoded (see
    /// [`crate::networking::names::decode_upstream_cluster_name`]).
    pub const UPSTREAM_CLUSTER_NAME: &str = "meta.datumapis.com/upstream-cluster-name";
    /// On a hub or cell namespace: the namespace inside the project.
    pub const UPSTREAM_NAMESPACE: &str = "meta.datumapis.com/upstream-namespace";
    /// The API group of the project object an object was copied from.
    pub const UPSTREAM_GROUP: &str = "meta.datumapis.com/upstream-group";
    /// The kind of the project object an object was copied from.
    pub const UPSTREAM_KIND: &str = "meta.datumapis.com/upstream-kind";
    /// The name of the project object an object was copied from.
    pub const UPSTREAM_NAME: &str = "meta.datumapis.com/upstream-name";
}

/// Annotations.
pub mod annotations {
    /// On a NetworkInterface: the claim its address claims were minted under.
    pub const ALLOCATION_CLAIM: &str = "networking.datumapis.com/allocation-claim";
    /// On a published ServingLocation: `"true"` lets it be removed while clusters still serve it.
    pub const REMOVAL_OVERRIDE: &str = "networking.datumapis.com/removal-override";
    /// On a published ServingLocation: why its removal is blocked (`<reason>: <message>`).
    pub const REMOVAL_BLOCKED: &str = "networking.datumapis.com/removal-blocked";
    /// On an IPAM IPClass: `"true"` marks the default class for its family.
    pub const IPAM_IS_DEFAULT_CLASS: &str = "ipam.miloapis.com/is-default-class";
}

/// Finalizers.
pub mod finalizers {
    /// Network: deletes the network's contexts and waits until they are gone.
    pub const NETWORK_CONTROLLER: &str = "networking.datumapis.com/network-controller";
    /// Network: held while the network's address range is claimed.
    pub const NETWORK_PREFIX_RELEASE: &str = "networking.datumapis.com/network-prefix-release";
    /// NetworkContext: held while the context's subnet range is claimed.
    pub const NETWORK_CONTEXT_SUBNET_RELEASE: &str =
        "networking.datumapis.com/networkcontext-subnet-release";
    /// NetworkContext (cell copy): held while any interface on that network exists.
    pub const NETWORK_CONTEXT_IN_USE: &str = "networking.datumapis.com/networkcontext-in-use";
    /// NetworkInterfaceClaim: held until its addresses are released.
    pub const NETWORK_INTERFACE_CLAIM_RELEASE: &str =
        "networking.datumapis.com/networkinterfaceclaim-release";
    /// NetworkInterface: held until its addresses are released.
    pub const NETWORK_INTERFACE_RELEASE: &str = "networking.datumapis.com/networkinterface-release";
}

/// Condition types.
pub mod condition_types {
    /// Every kind: the object is usable.
    pub const READY: &str = "Ready";
    /// Network and NetworkContext: the address range is held in IPAM.
    pub const IPAM_ALLOCATED: &str = "IPAMAllocated";
    /// Subnet and SubnetClaim: a prefix is allocated.
    pub const ALLOCATED: &str = "Allocated";
    /// Subnet and SubnetClaim: the provider created the real subnet. Only providers write it.
    pub const PROGRAMMED: &str = "Programmed";
}

/// Condition reasons.
pub mod reasons {
    /// The seed every condition starts with, before a controller has looked at the object.
    pub const PENDING: &str = "Pending";
    /// The message of the seeded [`PENDING`] conditions.
    pub const PENDING_MESSAGE: &str = "Waiting for controller";
    /// `Ready=True` on Network, NetworkContext and Subnet.
    pub const READY: &str = "Ready";

    /// `IPAMAllocated=True`.
    pub const ALLOCATED: &str = "Allocated";
    /// `IPAMAllocated=False`, and `NetworkBinding` `Ready=False`: the project could not be resolved.
    pub const PROJECT_UNRESOLVED: &str = "ProjectUnresolved";
    /// `IPAMAllocated=False`: the project's namespace in IPAM does not exist.
    pub const PROJECT_NAMESPACE_NOT_FOUND: &str = "ProjectNamespaceNotFound";
    /// `IPAMAllocated=False`: IPAM cannot serve the requested range.
    pub const RANGE_UNSUPPORTED: &str = "RangeUnsupported";
    /// `IPAMAllocated=False`: the range still has allocations inside it and cannot be released.
    pub const RANGE_OCCUPIED: &str = "RangeOccupied";
    /// `IPAMAllocated=False`: the pool has no room left.
    pub const ADDRESS_POOL_EXHAUSTED: &str = "AddressPoolExhausted";
    /// `IPAMAllocated=False`: a retained address collides with another allocation.
    pub const RETAINED_ADDRESS_CONFLICT: &str = "RetainedAddressConflict";
    /// `IPAMAllocated=False`: IPAM refused the allocation.
    pub const ADDRESS_ALLOCATION_REJECTED: &str = "AddressAllocationRejected";
    /// `IPAMAllocated=False`: any other failure.
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";

    /// NetworkBinding `Ready=False`: the Network does not exist.
    pub const NETWORK_NOT_FOUND: &str = "NetworkNotFound";
    /// NetworkBinding `Ready=False`: the Network is being deleted, so no NetworkContext is
    /// made for it (one made now would hold the deletion up).
    pub const NETWORK_DELETING: &str = "NetworkDeleting";
    /// NetworkBinding `Ready=False`, and Instance `AddressesAllocated=False`: the Network
    /// named is in another namespace, and a namespace's objects attach only to its own
    /// Networks.
    pub const CROSS_NAMESPACE_NETWORK: &str = "CrossNamespaceNetwork";
    /// NetworkBinding `Ready=False`: the project may not use the Location.
    pub const LOCATION_NOT_AVAILABLE: &str = "LocationNotAvailable";
    /// NetworkBinding `Ready=False`: the NetworkContext exists but is not ready.
    pub const NETWORK_CONTEXT_NOT_READY: &str = "NetworkContextNotReady";
    /// NetworkBinding `Ready=True`.
    pub const NETWORK_CONTEXT_READY: &str = "NetworkContextReady";

    /// Subnet `Allocated=True`.
    pub const PREFIX_ALLOCATED: &str = "PrefixAllocated";
    /// Subnet `Programmed=False` (and `Ready=False` until it is programmed).
    pub const NOT_PROGRAMMED: &str = "NotProgrammed";
    /// Subnet `Programmed=False` while the provider works on it.
    pub const PROGRAMMING_IN_PROGRESS: &str = "ProgrammingInProgress";
    /// Subnet `Programmed=True`.
    pub const PROGRAMMED: &str = "Programmed";

    /// SubnetClaim `Ready=False`: its Subnet is not ready yet.
    pub const SUBNET_NOT_READY: &str = "SubnetNotReady";
    /// SubnetClaim `Ready=True`.
    pub const SUBNET_READY: &str = "SubnetReady";
}

/// Defaults the API server fills in, for readers of objects that predate them.
pub mod defaults {
    /// `Network.spec.mtu` when unset.
    pub const MTU: i32 = 1460;
    /// Smallest MTU a Network or NetworkContext accepts.
    pub const MIN_MTU: i32 = 1300;
    /// Largest MTU a Network or NetworkContext accepts.
    pub const MAX_MTU: i32 = 8856;
    /// The subnet class of the subnet a NetworkContext publishes.
    pub const SUBNET_CLASS: &str = "private";
}
