//! The instance-network controller: gives every interface of an Instance an address per
//! family of its network, shows them in `status.networkInterfaces[i].assignments`, and
//! lifts the `Network` scheduling gate once every interface has them.
//!
//! Every read is from the shared [`caches`](crate::cache) (Networks, NetworkContexts,
//! Subnets, the addresses an Instance holds); only allocations and Instance writes reach
//! the API server.
//!
//! Reconcile checklist ([`reconcile`]): fetch (cached) → skip if deleting (its addresses
//! go with it through owner references) → wait for a location → resolve each interface
//! (Network → NetworkContext `<network>-<location>` Ready → its Subnets → an address from
//! each, [`Allocator::allocate_host`](crate::ipam::Allocator::allocate_host)) → release
//! addresses the Instance no longer needs → write the status → lift the gate.
//!
//! `networkIP` is the interface's IPv4 address, or its IPv6 address on an IPv6-only
//! network (the IPv6 address of a dual-stack interface is in its IPAddress object, found by
//! the selectable field `spec.instanceRef.uid`). The condition [`ADDRESSES_ALLOCATED`] says
//! how far allocation got; while it is False the instance controller copies its reason into
//! `Ready`, so an Instance waiting for a full subnet reads `AddressPoolExhausted` with a
//! message naming the subnet. A waiting Instance is retried every `retry` and whenever a
//! NetworkContext of its location changes; an exhausted subnet is re-listed before it is
//! declared full again, so freed addresses are found.
//!
//! An interface naming a Network in another namespace is refused: `AddressesAllocated` (and
//! so `Ready`) stays False with reason `CrossNamespaceNetwork` and a message naming
//! `spec.networkInterfaces[i].network.namespace`, no address is allocated and the gate stays,
//! so no provider ever attaches the Instance to another namespace's Network. (CRD validation
//! cannot see an object's namespace, so admission cannot refuse it.)
//!
//! Addresses live in the Network's namespace, which is the Instance's own; addresses held
//! from elsewhere (an Instance written before this rule) are released explicitly when it no
//! longer needs them.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use datum_api::compute::scheduling_gates;
use datum_api::compute::{
    Instance, InstanceNetworkInterface, InstanceNetworkInterfaceAssignments,
    InstanceNetworkInterfaceStatus, InstanceStatus,
};
use datum_api::conditions::{self, ConditionStatus};
use datum_api::networking::well_known::{condition_types, reasons};
use datum_api::networking::{IpAddress, IpFamily, IpamMode, NetworkContext, names};
use ipnet::IpNet;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, warn};

use super::Networks;
use crate::ipam::{AllocatorError, Holder, HostRequest};
use crate::watch::{self, Drive};

/// Instance condition: every interface has its addresses.
pub const ADDRESSES_ALLOCATED: &str = "AddressesAllocated";

#[derive(Debug, thiserror::Error)]
pub enum InstanceNetworkError {
    #[error("failed to allocate an address")]
    Allocate(#[from] AllocatorError),
    #[error("failed to serialize the status of instance {0}")]
    Serialize(String, #[source] serde_json::Error),
    #[error("failed to write the status of instance {0}")]
    Status(String, #[source] kube::Error),
    #[error("failed to lift the Network scheduling gate of instance {0}")]
    Gate(String, #[source] kube::Error),
    #[error("instance has no namespace")]
    NoNamespace,
}

/// Runs the instance-network controller until `shutdown` completes.
pub async fn run(networks: Networks, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let caches = networks.context.caches();
    let controller = watch::shared_controller(
        &caches.instances,
        watch::Filter::Generation,
        networks.context.settings().concurrency,
    );
    let instances = controller.store();
    controller
        .watches_shared_stream(
            caches.network_contexts.subscribe(),
            move |network_context: Arc<NetworkContext>| {
                let location = network_context.spec.location.name.clone();
                instances
                    .state()
                    .iter()
                    .filter(|i| {
                        i.spec.location.as_ref().is_some_and(|l| l.name == location)
                            && !addresses_allocated(i)
                    })
                    .map(|i| ObjectRef::from_obj(i.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .drive(
            "instance_network",
            reconcile,
            error_policy,
            Arc::new(networks),
            shutdown,
        )
        .await;
}

fn error_policy(
    instance: Arc<Instance>,
    error: &InstanceNetworkError,
    networks: Arc<Networks>,
) -> Action {
    if watch::is_conflict(error) {
        networks.context.freshness().outdated(instance.as_ref());
        debug!(instance = %instance.name_any(), %error, "instance changed meanwhile; retrying");
    } else {
        warn!(instance = %instance.name_any(), error = %error, source = ?std::error::Error::source(error), "reconciling instance network failed");
    }
    watch::retry_after(error, networks.context.settings().retry)
}

fn has_network_gate(instance: &Instance) -> bool {
    instance
        .spec
        .controller
        .as_ref()
        .and_then(|c| c.scheduling_gates.as_ref())
        .is_some_and(|gates| gates.iter().any(|g| g.name == scheduling_gates::NETWORK))
}

fn addresses_allocated(instance: &Instance) -> bool {
    instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|c| conditions::is_true(c, ADDRESSES_ALLOCATED))
}

/// What became of one interface.
enum Resolved {
    /// Its addresses (none on a `Policy`-mode network), and the namespace they live in.
    Ready(String, Vec<IpAddress>),
    /// Waiting, with the reason and message to report.
    Waiting(&'static str, String),
}

/// One pass over an Instance, as a checklist.
pub async fn reconcile(
    instance: Arc<Instance>,
    networks: Arc<Networks>,
) -> Result<Action, InstanceNetworkError> {
    let settings = networks.context.settings();
    if instance.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if networks.context.freshness().is_outdated(instance.as_ref()) {
        return Ok(Action::requeue(datum_runtime::freshness::RECHECK));
    }
    let namespace = instance
        .namespace()
        .ok_or(InstanceNetworkError::NoNamespace)?;
    let Some(location) = instance.spec.location.as_ref().map(|l| l.name.clone()) else {
        return Ok(Action::await_change());
    };
    let mut resolved = Vec::new();
    for (index, interface) in instance.spec.network_interfaces.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        resolved.push(
            resolve(
                &networks, &instance, &namespace, &location, index, interface,
            )
            .await?,
        );
    }
    release_stale(&networks, &instance, &namespace, &resolved).await?;
    let waiting = resolved.iter().find_map(|r| match r {
        Resolved::Waiting(reason, message) => Some((*reason, message.clone())),
        Resolved::Ready(..) => None,
    });
    let written =
        write_status(&networks, &instance, &namespace, &resolved, waiting.clone()).await?;
    if waiting.is_some() {
        return Ok(Action::requeue(settings.retry));
    }
    let current = written.as_ref().unwrap_or(instance.as_ref());
    if let Some(lifted) = lift_gate(&networks, current, &namespace).await? {
        // The copy the gate was lifted from is outdated too.
        networks.context.freshness().wrote(current, &lifted);
    }
    Ok(Action::requeue(settings.resync))
}

async fn resolve(
    networks: &Networks,
    instance: &Instance,
    namespace: &str,
    location: &str,
    index: u32,
    interface: &InstanceNetworkInterface,
) -> Result<Resolved, InstanceNetworkError> {
    let context = &networks.context;
    let network_namespace = interface
        .network
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| namespace.to_owned());
    let network_name = &interface.network.name;
    if network_namespace != namespace {
        return Ok(Resolved::Waiting(
            reasons::CROSS_NAMESPACE_NETWORK,
            super::cross_namespace_message(
                &format!("spec.networkInterfaces[{index}].network.namespace"),
                &network_namespace,
                network_name,
                namespace,
            ),
        ));
    }
    let caches = context.caches();
    let Some(network) = caches.networks.get(Some(&network_namespace), network_name) else {
        return Ok(Resolved::Waiting(
            reasons::NETWORK_NOT_FOUND,
            format!("Network {network_namespace}/{network_name} was not found"),
        ));
    };
    let context_name = names::network_context(network_name, location);
    let network_context = caches
        .network_contexts
        .get(Some(&network_namespace), &context_name);
    let context_conditions = network_context
        .as_ref()
        .and_then(|c| c.status.as_ref())
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let Some(network_context) = network_context
        .filter(|_| conditions::is_true(&context_conditions, condition_types::READY))
    else {
        if let Some(ipam) = conditions::get(&context_conditions, condition_types::IPAM_ALLOCATED)
            .filter(|c| c.reason == reasons::ADDRESS_POOL_EXHAUSTED)
        {
            return Ok(Resolved::Waiting(
                reasons::ADDRESS_POOL_EXHAUSTED,
                ipam.message.clone(),
            ));
        }
        return Ok(Resolved::Waiting(
            reasons::NETWORK_CONTEXT_NOT_READY,
            format!("NetworkContext {context_name} is not ready yet"),
        ));
    };
    if network.spec.ipam.mode == IpamMode::Policy {
        return Ok(Resolved::Ready(network_namespace, Vec::new()));
    }
    let holder = Holder {
        instance_name: instance.name_any(),
        instance_uid: instance.uid().unwrap_or_default(),
        interface_index: index,
        owner: (network_namespace == namespace)
            .then(|| crate::ownership::controller_reference(instance))
            .flatten(),
    };
    let mut addresses = Vec::new();
    for family in network_context.spec.ip_families.clone().unwrap_or_default() {
        let subnet_name = match family {
            IpFamily::Ipv4 => names::context_ipv4_subnet(&context_name),
            IpFamily::Ipv6 => names::context_ipv6_subnet(&context_name),
        };
        let subnet = caches.subnets.get(Some(&network_namespace), &subnet_name);
        let Some(cidr) = subnet
            .and_then(|s| s.spec.cidr())
            .and_then(|c| c.parse::<IpNet>().ok())
        else {
            return Ok(Resolved::Waiting(
                reasons::NETWORK_CONTEXT_NOT_READY,
                format!("Subnet {subnet_name} is not allocated yet"),
            ));
        };
        let request = HostRequest {
            namespace: &network_namespace,
            network: network_name,
            subnet: &subnet_name,
            cidr,
            family,
            holder: &holder,
        };
        match networks.allocator.allocate_host(&request).await {
            Ok(address) => addresses.push(address),
            Err(error) if error.is_exhausted() => {
                return Ok(Resolved::Waiting(
                    reasons::ADDRESS_POOL_EXHAUSTED,
                    error.to_string(),
                ));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Resolved::Ready(network_namespace, addresses))
}

/// Releases addresses the Instance holds but no longer needs: those of interfaces it no
/// longer has, and those an interface with its addresses resolved does not use. An
/// interface still waiting keeps what it holds.
async fn release_stale(
    networks: &Networks,
    instance: &Instance,
    namespace: &str,
    resolved: &[Resolved],
) -> Result<(), InstanceNetworkError> {
    let uid = instance.uid().unwrap_or_default();
    let mut namespaces: HashSet<String> = HashSet::from([namespace.to_owned()]);
    let mut kept: HashSet<(String, String)> = HashSet::new();
    for r in resolved {
        if let Resolved::Ready(ns, addresses) = r {
            namespaces.insert(ns.clone());
            kept.extend(addresses.iter().map(|a| (ns.clone(), a.name_any())));
        }
    }
    for ns in namespaces {
        for held in networks.allocator.held_by_instance(&ns, &uid).await? {
            let index = held
                .spec
                .interface_index
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(usize::MAX);
            let stale = match resolved.get(index) {
                None => true,
                Some(Resolved::Ready(..)) => !kept.contains(&(ns.clone(), held.name_any())),
                Some(Resolved::Waiting(..)) => false,
            };
            if stale {
                networks.allocator.release(&held).await?;
                info!(instance = %instance.name_any(), address = %held.spec.address, "released address");
            }
        }
    }
    Ok(())
}

async fn write_status(
    networks: &Networks,
    instance: &Instance,
    namespace: &str,
    resolved: &[Resolved],
    waiting: Option<(&'static str, String)>,
) -> Result<Option<Instance>, InstanceNetworkError> {
    let generation = instance.metadata.generation.unwrap_or_default();
    let mut status = instance
        .status
        .clone()
        .unwrap_or_else(InstanceStatus::pending);
    let previous = status.network_interfaces.clone().unwrap_or_default();
    let interfaces: Vec<InstanceNetworkInterfaceStatus> = resolved
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let old = previous.get(index).cloned().unwrap_or_default();
            match r {
                Resolved::Waiting(..) => old,
                Resolved::Ready(_, addresses) => {
                    let by_family: BTreeMap<IpFamily, String> = addresses
                        .iter()
                        .map(|a| (a.spec.ip_family, a.spec.address.clone()))
                        .collect();
                    let primary = by_family
                        .get(&IpFamily::Ipv4)
                        .or_else(|| by_family.get(&IpFamily::Ipv6))
                        .cloned();
                    // Dual-stack: networkIP holds IPv4 and networkIPv6 the IPv6 address.
                    let ipv6 = by_family
                        .get(&IpFamily::Ipv4)
                        .and(by_family.get(&IpFamily::Ipv6))
                        .cloned();
                    let external = old.assignments.and_then(|a| a.external_ip);
                    InstanceNetworkInterfaceStatus {
                        assignments: (primary.is_some() || external.is_some()).then_some(
                            InstanceNetworkInterfaceAssignments {
                                network_ip: primary,
                                network_ipv6: ipv6,
                                external_ip: external,
                            },
                        ),
                    }
                }
            }
        })
        .collect();
    status.network_interfaces = (!interfaces.is_empty()).then_some(interfaces);
    let condition = match waiting {
        Some((reason, message)) => conditions::new(
            ADDRESSES_ALLOCATED,
            ConditionStatus::False,
            reason,
            message,
            generation,
        ),
        None => conditions::new(
            ADDRESSES_ALLOCATED,
            ConditionStatus::True,
            reasons::ALLOCATED,
            "Every interface has its addresses",
            generation,
        ),
    };
    let mut list = status.conditions.take().unwrap_or_default();
    // Allocation is judged on `spec.networkInterfaces`; a spec change that leaves the
    // verdict as it was (lifting the gate is one) does not rewrite the condition just to
    // move its observedGeneration — that would be a write per Instance for nothing.
    let unchanged = conditions::get(&list, ADDRESSES_ALLOCATED).is_some_and(|current| {
        current.status == condition.status
            && current.reason == condition.reason
            && current.message == condition.message
    });
    if !unchanged {
        conditions::set(&mut list, condition);
    }
    // While the gate is on, Ready follows from what is written here; saying it in the same
    // write saves the instance controller one. Once lifted, Ready is that controller's
    // alone (two writers of one condition only fight).
    if has_network_gate(instance) {
        let ready = crate::instance_readiness::ready_condition(instance, &list);
        conditions::set(&mut list, ready);
    }
    status.conditions = Some(list);
    if instance.status.as_ref() == Some(&status) {
        return Ok(None);
    }
    let name = instance.name_any();
    let value = serde_json::to_value(&status)
        .map_err(|e| InstanceNetworkError::Serialize(name.clone(), e))?;
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": instance.resource_version() },
        "status": value,
    });
    let written = networks
        .context
        .api_in::<Instance>(namespace)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| InstanceNetworkError::Status(name, e))?;
    networks.context.freshness().wrote(instance, &written);
    Ok(Some(written))
}

/// Removes the `Network` gate, other gates kept; returns the written Instance, if it wrote. The patch
/// carries the resourceVersion of `instance` (the copy last written or read), so a gate
/// added meanwhile is never dropped (the API server answers 409 and the next pass starts
/// from fresh data).
async fn lift_gate(
    networks: &Networks,
    instance: &Instance,
    namespace: &str,
) -> Result<Option<Instance>, InstanceNetworkError> {
    let resource_version = instance.resource_version();
    let Some(gates) = instance
        .spec
        .controller
        .as_ref()
        .and_then(|c| c.scheduling_gates.clone())
    else {
        return Ok(None);
    };
    if !gates.iter().any(|g| g.name == scheduling_gates::NETWORK) {
        return Ok(None);
    }
    let remaining: Vec<_> = gates
        .into_iter()
        .filter(|g| g.name != scheduling_gates::NETWORK)
        .collect();
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "spec": { "controller": { "schedulingGates": (!remaining.is_empty()).then_some(remaining) } },
    });
    let name = instance.name_any();
    let lifted = networks
        .context
        .api_in::<Instance>(namespace)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| InstanceNetworkError::Gate(name.clone(), e))?;
    info!(instance = %name, "lifted the Network scheduling gate");
    Ok(Some(lifted))
}
