//! The network-context controller: gives each NetworkContext one Subnet per family, cut
//! from its Network's range, and derives the context's `IPAMAllocated` and `Ready`.
//!
//! Reconcile checklist ([`reconcile`]): fetch (cached) → skip if deleting (its Subnets and
//! their blocks go with it through owner references) → refuse a context without families
//! (readers must not default them) → read the Network → for each family, [`ensure_subnet`]
//! → write the context status.
//!
//! A Subnet is named `<context>-ipv4` / `<context>-ipv6`, created unallocated (empty
//! `startAddress`) with a controller owner reference to the context; its block is then
//! allocated as an [`IpAddress`](datum_api::networking::IpAddress) owned by the Subnet
//! ([`Allocator::allocate_block`]) and written into the Subnet's spec, and the Subnet's
//! status gets the range, `Allocated=True/PrefixAllocated` and `Ready` following the
//! provider's `Programmed`. A crash between any two steps is repaired by the next pass: the
//! block is found by its holder, never allocated twice.
//!
//! | situation | IPAMAllocated | Ready |
//! |---|---|---|
//! | `ipam.mode: Policy` | absent | True/`Ready` |
//! | every family has a subnet | True/`Allocated` | True/`Ready` |
//! | the Network's range is full | False/`AddressPoolExhausted` | mirrors it |
//! | a range that is not a CIDR of its family | False/`RangeUnsupported` | mirrors it |
//! | Network missing | — | False/`NetworkNotFound` |
//! | `spec.ipFamilies` missing | — | False/`AddressFamiliesUnknown` |

use std::future::Future;
use std::sync::Arc;

use datum_api::conditions::{self, ConditionStatus};
use datum_api::networking::well_known::{condition_types, defaults, labels, reasons};
use datum_api::networking::{
    IpFamily, IpamMode, LocalNetworkContextRef, LocalSubnetReference, Network, NetworkContext,
    NetworkContextStatus, NetworkContextStatusIpam, Subnet, SubnetSpec, SubnetStatus, names,
};
use ipnet::IpNet;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::Networks;
use super::ranges::{self, RangeError};
use crate::ipam::{AllocatorError, BlockRequest};
use crate::label_values::insert_name;
use crate::status_write::{self, StatusWriteError};
use crate::watch::{self, Drive};

/// `Ready=False` on a context whose `spec.ipFamilies` is missing.
pub const ADDRESS_FAMILIES_UNKNOWN: &str = "AddressFamiliesUnknown";

#[derive(Debug, thiserror::Error)]
pub enum NetworkContextError {
    #[error("failed to read subnet {0}")]
    GetSubnet(String, #[source] kube::Error),
    #[error("failed to create subnet {0}")]
    CreateSubnet(String, #[source] kube::Error),
    #[error("failed to record the range of subnet {0}")]
    PatchSubnet(String, #[source] kube::Error),
    #[error("failed to allocate a subnet block")]
    Allocate(#[from] AllocatorError),
    #[error("failed to write a status")]
    Status(#[from] StatusWriteError),
    #[error("context has no namespace")]
    NoNamespace,
}

/// Runs the network-context controller until `shutdown` completes.
pub async fn run(networks: Networks, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let context = &networks.context;
    let caches = context.caches();
    watch::shared_controller(
        &caches.network_contexts,
        watch::Filter::Generation,
        context.settings().concurrency,
    )
    .owns_shared_stream(caches.subnets.subscribe())
    .drive(
        "network_context",
        reconcile,
        error_policy,
        Arc::new(networks.clone()),
        shutdown,
    )
    .await;
}

fn error_policy(
    network_context: Arc<NetworkContext>,
    error: &NetworkContextError,
    networks: Arc<Networks>,
) -> Action {
    if watch::is_conflict(error) {
        debug!(context = %network_context.name_any(), %error, "another writer was first (409); retrying");
    } else {
        warn!(context = %network_context.name_any(), error = %error, source = ?std::error::Error::source(error), "reconciling network context failed");
    }
    Action::requeue(networks.context.settings().retry)
}

/// What became of one family's subnet.
enum Outcome {
    Allocated(String, IpNet),
    Failed(&'static str, String),
}

/// One pass over a NetworkContext, as a checklist.
pub async fn reconcile(
    network_context: Arc<NetworkContext>,
    networks: Arc<Networks>,
) -> Result<Action, NetworkContextError> {
    let settings = networks.context.settings();
    if network_context.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = network_context
        .namespace()
        .ok_or(NetworkContextError::NoNamespace)?;
    let Some(families) = network_context
        .spec
        .ip_families
        .clone()
        .filter(|f| !f.is_empty())
    else {
        let message = "spec.ipFamilies is missing; the context was not made from its Network";
        write_status(
            &networks,
            &network_context,
            None,
            None,
            Some((ADDRESS_FAMILIES_UNKNOWN, message.to_owned())),
        )
        .await?;
        return Ok(Action::await_change());
    };
    let network_name = network_context.spec.network.name.clone();
    let Some(network) = networks
        .context
        .caches()
        .networks
        .get(Some(&namespace), &network_name)
    else {
        let message = format!("Network {network_name} was not found");
        write_status(
            &networks,
            &network_context,
            None,
            None,
            Some((reasons::NETWORK_NOT_FOUND, message)),
        )
        .await?;
        return Ok(Action::requeue(settings.retry));
    };
    if network.spec.ipam.mode == IpamMode::Policy {
        write_status(&networks, &network_context, None, None, None).await?;
        return Ok(Action::await_change());
    }
    let mut ipv6_subnet = None;
    let mut failure = None;
    let mut allocated = Vec::new();
    for family in families {
        match ensure_subnet(&networks, &network_context, &network, family).await? {
            Outcome::Allocated(name, cidr) => {
                if family == IpFamily::Ipv6 {
                    ipv6_subnet = Some(name.clone());
                }
                allocated.push(format!("{cidr}"));
            }
            Outcome::Failed(reason, message) => failure = failure.or(Some((reason, message))),
        }
    }
    let ipam = match &failure {
        Some((reason, message)) => (ConditionStatus::False, *reason, message.clone()),
        None => (
            ConditionStatus::True,
            reasons::ALLOCATED,
            format!("Subnets allocated: {}", allocated.join(", ")),
        ),
    };
    let waiting = failure.is_some();
    write_status(&networks, &network_context, Some(ipam), ipv6_subnet, None).await?;
    Ok(if waiting {
        Action::requeue(settings.retry)
    } else {
        Action::requeue(settings.resync)
    })
}

/// The Subnet of `family` for the context, created and allocated if need be.
async fn ensure_subnet(
    networks: &Networks,
    network_context: &NetworkContext,
    network: &Network,
    family: IpFamily,
) -> Result<Outcome, NetworkContextError> {
    let settings = &networks.context.settings().networks;
    let context_name = network_context.name_any();
    let namespace = network_context.namespace().unwrap_or_default();
    let name = match family {
        IpFamily::Ipv4 => names::context_ipv4_subnet(&context_name),
        IpFamily::Ipv6 => names::context_ipv6_subnet(&context_name),
    };
    let api: Api<Subnet> = networks.context.api_in(&namespace);
    let cached = networks
        .context
        .caches()
        .subnets
        .get(Some(&namespace), &name);
    let mut subnet = match cached {
        Some(subnet) => subnet.as_ref().clone(),
        None => create_subnet(&api, network_context, &name, family).await?,
    };
    let cidr = match subnet.spec.cidr().and_then(|c| c.parse::<IpNet>().ok()) {
        Some(cidr) => cidr,
        None => {
            let range = match ranges::range(network, family, settings) {
                Ok(range) => range,
                Err(error @ RangeError::Invalid { .. }) => {
                    return Ok(Outcome::Failed(
                        reasons::RANGE_UNSUPPORTED,
                        error.to_string(),
                    ));
                }
                Err(error) => {
                    return Ok(Outcome::Failed(
                        reasons::ALLOCATION_FAILED,
                        error.to_string(),
                    ));
                }
            };
            let Some(owner) = crate::ownership::controller_reference(&subnet) else {
                return Ok(Outcome::Failed(
                    reasons::ALLOCATION_FAILED,
                    format!("Subnet {name} has no UID yet"),
                ));
            };
            let request = BlockRequest {
                namespace: &namespace,
                network: &network.name_any(),
                range,
                length: settings.subnet_length(family),
                family,
                subnet: &name,
                owner,
            };
            let block = match networks.allocator.allocate_block(&request).await {
                Ok(block) => block,
                Err(error) if error.is_exhausted() => {
                    return Ok(Outcome::Failed(
                        reasons::ADDRESS_POOL_EXHAUSTED,
                        error.to_string(),
                    ));
                }
                Err(error) => return Err(error.into()),
            };
            let patch = serde_json::json!({
                "spec": { "startAddress": block.network().to_string(), "prefixLength": block.prefix_len() }
            });
            subnet = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| NetworkContextError::PatchSubnet(name.clone(), e))?;
            info!(subnet = %name, %block, "allocated subnet");
            block
        }
    };
    write_subnet_status(&api, &subnet, cidr).await?;
    Ok(Outcome::Allocated(name, cidr))
}

async fn create_subnet(
    api: &Api<Subnet>,
    network_context: &NetworkContext,
    name: &str,
    family: IpFamily,
) -> Result<Subnet, NetworkContextError> {
    let mut subnet_labels = std::collections::BTreeMap::new();
    insert_name(
        &mut subnet_labels,
        labels::NETWORK,
        &network_context.spec.network.name,
    );
    insert_name(
        &mut subnet_labels,
        labels::LOCATION,
        &network_context.spec.location.name,
    );
    let subnet = Subnet {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: network_context.namespace(),
            labels: Some(subnet_labels),
            owner_references: crate::ownership::controller_reference(network_context)
                .map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: SubnetSpec {
            subnet_class: defaults::SUBNET_CLASS.to_owned(),
            network_context: LocalNetworkContextRef::new(network_context.name_any()),
            location: network_context.spec.location.clone(),
            ip_family: family,
            start_address: String::new(),
            prefix_length: 0,
        },
        status: None,
    };
    match api.create(&PostParams::default(), &subnet).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => api
            .get(name)
            .await
            .map_err(|e| NetworkContextError::GetSubnet(name.to_owned(), e)),
        Err(e) => Err(NetworkContextError::CreateSubnet(name.to_owned(), e)),
    }
}

/// The Subnet's status: its range, `Allocated=True`, and `Ready` following `Programmed`
/// (which only the provider writes).
async fn write_subnet_status(
    api: &Api<Subnet>,
    subnet: &Subnet,
    cidr: IpNet,
) -> Result<(), NetworkContextError> {
    let generation = subnet.metadata.generation.unwrap_or_default();
    let mut status: SubnetStatus = subnet.status.clone().unwrap_or_default();
    status.start_address = Some(cidr.network().to_string());
    status.prefix_length = Some(i32::from(cidr.prefix_len()));
    status.observed_generation = Some(generation);
    conditions::set(
        &mut status.conditions,
        conditions::new(
            condition_types::ALLOCATED,
            ConditionStatus::True,
            reasons::PREFIX_ALLOCATED,
            format!("Allocated {cidr}"),
            generation,
        ),
    );
    let ready = if conditions::is_true(&status.conditions, condition_types::PROGRAMMED) {
        conditions::new(
            condition_types::READY,
            ConditionStatus::True,
            reasons::READY,
            "Subnet is programmed",
            generation,
        )
    } else {
        conditions::new(
            condition_types::READY,
            ConditionStatus::False,
            reasons::NOT_PROGRAMMED,
            "Subnet is not programmed yet",
            generation,
        )
    };
    conditions::set(&mut status.conditions, ready);
    status_write::write_if_changed(api, subnet, subnet.status.as_ref(), &status).await?;
    Ok(())
}

/// Writes `IPAMAllocated` (when given), `Ready` (mirroring it, or `refusal`) and the IPv6
/// subnet reference.
async fn write_status(
    networks: &Networks,
    network_context: &NetworkContext,
    ipam: Option<(ConditionStatus, &str, String)>,
    ipv6_subnet: Option<String>,
    refusal: Option<(&str, String)>,
) -> Result<(), NetworkContextError> {
    let generation = network_context.metadata.generation.unwrap_or_default();
    let mut status: NetworkContextStatus = network_context.status.clone().unwrap_or_default();
    let ready = match (&refusal, &ipam) {
        (Some((reason, message)), _) => conditions::new(
            condition_types::READY,
            ConditionStatus::False,
            reason,
            message.clone(),
            generation,
        ),
        (None, Some((state, reason, message))) if *state != ConditionStatus::True => {
            conditions::new(
                condition_types::READY,
                *state,
                reason,
                message.clone(),
                generation,
            )
        }
        (None, Some((_, _, message))) => conditions::new(
            condition_types::READY,
            ConditionStatus::True,
            reasons::READY,
            message.clone(),
            generation,
        ),
        (None, None) => conditions::new(
            condition_types::READY,
            ConditionStatus::True,
            reasons::READY,
            "Nothing to allocate",
            generation,
        ),
    };
    if let Some((state, reason, message)) = ipam {
        conditions::set(
            &mut status.conditions,
            conditions::new(
                condition_types::IPAM_ALLOCATED,
                state,
                reason,
                message,
                generation,
            ),
        );
    }
    conditions::set(&mut status.conditions, ready);
    if let Some(name) = ipv6_subnet {
        let mut ipam = status.ipam.clone().unwrap_or_default();
        ipam.ipv6_subnet_ref = Some(LocalSubnetReference { name });
        status.ipam = Some(NetworkContextStatusIpam { ..ipam });
    }
    status.observed_generation = Some(generation);
    let api: Api<NetworkContext> = networks
        .context
        .api_in(&network_context.namespace().unwrap_or_default());
    status_write::write_if_changed(
        &api,
        network_context,
        network_context.status.as_ref(),
        &status,
    )
    .await?;
    Ok(())
}
