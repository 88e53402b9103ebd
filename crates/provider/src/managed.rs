//! How the runtime reads and writes each Datum kind a provider manages: where its Location
//! is named, whether scheduling gates hold it back, and the status it gets for each
//! [`Outcome`] of a reconcile.
//!
//! | kind | conditions written | other status |
//! |---|---|---|
//! | `Instance` | `Programmed`, `Running` | `providerID`, addresses, usage, `controller.observedTemplateHash` |
//! | `NetworkContext` | `Programmed` | — |
//! | `Subnet` | `Programmed` | — |
//!
//! Conditions carry the object's `metadata.generation` as `observedGeneration` and go
//! through [`datum_api::conditions::set`], so an unchanged outcome yields no status write.

use std::fmt::Debug;

use datum_api::compute::conditions::{self as compute_conditions, reasons};
use datum_api::compute::{
    Instance, InstanceControllerStatus, InstanceNetworkInterfaceAssignments,
    InstanceNetworkInterfaceStatus, InstanceSpec, InstanceStatus, InstanceUsage,
};
use datum_api::conditions::{self, ConditionStatus};
use datum_api::networking::{NetworkContext, NetworkContextSpec, Subnet, SubnetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::external::{InstanceLive, NetworkLive, PowerState};

/// The `Programmed` condition type (the same string on every kind).
pub const PROGRAMMED: &str = compute_conditions::PROGRAMMED;

/// Reasons the runtime writes besides the API's own.
pub mod runtime_reasons {
    /// The ProviderConfig or its credentials are missing or wrong.
    pub const PROVIDER_CONFIG_INVALID: &str = "ProviderConfigInvalid";
    /// The resource is being deleted.
    pub const DELETING: &str = "Deleting";
    /// `Running`'s reason for a machine that runs but fails its health check
    /// ([`PowerState::Unhealthy`](crate::PowerState::Unhealthy)).
    pub const UNHEALTHY: &str = "Unhealthy";
}

/// Where a reconcile left an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<L> {
    /// Not acted on yet (scheduling gates).
    Waiting { reason: String, message: String },
    /// A create or update was issued; the next observe confirms it.
    Progressing { message: String },
    /// Acting failed (bad config, platform error).
    Failed { reason: String, message: String },
    /// The resource exists and matches the spec.
    Synced { id: String, live: L },
}

/// A Datum kind a provider manages.
pub trait ManagedKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// What the provider is given as desired state.
    type Spec: Debug + Send + Sync;
    /// What observe reports.
    type Live: Clone + Debug + Default + PartialEq + Send + Sync;
    /// The controller name, for logs and metrics: `instance`, `network_context`, `subnet`.
    const CONTROLLER: &'static str;

    /// The desired state.
    fn desired(&self) -> &Self::Spec;

    /// The name of the Location the object is in, if set.
    fn location_name(&self) -> Option<&str>;

    /// Names of the scheduling gates still holding the object back.
    fn scheduling_gates(&self) -> Vec<String> {
        Vec::new()
    }

    /// Addresses the control plane allocated, per interface (Instances only).
    fn assigned(&self) -> Vec<crate::external::AssignedAddresses> {
        Vec::new()
    }

    /// The NetworkPolicies that select the object, resolved (Instances only).
    fn network_policies(
        &self,
        index: &crate::network_policy::PolicyIndex,
    ) -> Vec<crate::network_policy::SelectedNetworkPolicy> {
        let _ = index;
        Vec::new()
    }

    /// The `status` to write for `outcome`, or `None` when the current status already says
    /// it.
    fn status_for(&self, outcome: &Outcome<Self::Live>) -> Option<serde_json::Value>;
}

/// Sets `Programmed` for `outcome` in `list`; returns whether it changed.
fn set_programmed<L>(list: &mut Vec<Condition>, outcome: &Outcome<L>, generation: i64) -> bool {
    let (status, reason, message) = match outcome {
        Outcome::Waiting { reason, message } => {
            (ConditionStatus::False, reason.as_str(), message.clone())
        }
        Outcome::Progressing { message } => (
            ConditionStatus::False,
            reasons::PROGRAMMING_IN_PROGRESS,
            message.clone(),
        ),
        Outcome::Failed { reason, message } => {
            (ConditionStatus::False, reason.as_str(), message.clone())
        }
        Outcome::Synced { .. } => (
            ConditionStatus::True,
            reasons::PROGRAMMED,
            "The resource matches its spec".to_owned(),
        ),
    };
    conditions::set(
        list,
        conditions::new(PROGRAMMED, status, reason, message, generation),
    )
}

fn to_json<T: Serialize>(status: &T) -> Option<serde_json::Value> {
    serde_json::to_value(status).ok()
}

impl ManagedKind for Instance {
    type Spec = InstanceSpec;
    type Live = InstanceLive;
    const CONTROLLER: &'static str = "instance";

    fn desired(&self) -> &InstanceSpec {
        &self.spec
    }

    fn location_name(&self) -> Option<&str> {
        self.spec.location.as_ref().map(|l| l.name.as_str())
    }

    fn scheduling_gates(&self) -> Vec<String> {
        self.spec
            .controller
            .as_ref()
            .and_then(|c| c.scheduling_gates.as_ref())
            .map(|gates| gates.iter().map(|g| g.name.clone()).collect())
            .unwrap_or_default()
    }

    fn assigned(&self) -> Vec<crate::external::AssignedAddresses> {
        let interfaces = self
            .status
            .as_ref()
            .and_then(|s| s.network_interfaces.as_ref());
        interfaces
            .into_iter()
            .flatten()
            .map(|interface| {
                let assignments = interface.assignments.clone().unwrap_or_default();
                crate::external::AssignedAddresses {
                    network_ip: assignments.network_ip,
                    network_ipv6: assignments.network_ipv6,
                }
            })
            .collect()
    }

    fn network_policies(
        &self,
        index: &crate::network_policy::PolicyIndex,
    ) -> Vec<crate::network_policy::SelectedNetworkPolicy> {
        index.selecting(self)
    }

    fn status_for(&self, outcome: &Outcome<InstanceLive>) -> Option<serde_json::Value> {
        let generation = self.metadata.generation.unwrap_or(0);
        let current = self.status.clone().unwrap_or_default();
        let mut status = current.clone();
        let mut list = status.conditions.take().unwrap_or_default();
        set_programmed(&mut list, outcome, generation);
        let unhealthy: String;
        let (running, reason, message) = match outcome {
            Outcome::Synced { live, .. } => match live.power {
                PowerState::Running => (
                    ConditionStatus::True,
                    reasons::RUNNING,
                    "The machine is running",
                ),
                PowerState::Starting => (
                    ConditionStatus::False,
                    reasons::STARTING,
                    "The machine is starting",
                ),
                PowerState::Stopping => (
                    ConditionStatus::False,
                    reasons::STOPPING,
                    "The machine is stopping",
                ),
                PowerState::Stopped => (
                    ConditionStatus::False,
                    reasons::STOPPED,
                    "The machine is stopped",
                ),
                PowerState::Unhealthy(state) => {
                    unhealthy = format!("The machine runs but its health check reports {state}");
                    (
                        ConditionStatus::False,
                        runtime_reasons::UNHEALTHY,
                        unhealthy.as_str(),
                    )
                }
            },
            _ if conditions::is_true(&list, compute_conditions::RUNNING) => (
                ConditionStatus::True,
                reasons::RUNNING,
                "The machine is running",
            ),
            _ => (
                ConditionStatus::False,
                reasons::STOPPED,
                "The machine does not run yet",
            ),
        };
        conditions::set(
            &mut list,
            conditions::new(
                compute_conditions::RUNNING,
                running,
                reason,
                message,
                generation,
            ),
        );
        status.conditions = Some(list);
        if let Outcome::Synced { live, .. } = outcome {
            if let Some(hash) = self
                .spec
                .controller
                .as_ref()
                .map(|c| c.template_hash.clone())
            {
                status.controller = Some(InstanceControllerStatus {
                    observed_template_hash: hash,
                });
            }
            status.provider_id = live.provider_id.clone();
            status.network_interfaces = merge_addresses(
                current.network_interfaces.as_deref().unwrap_or_default(),
                &live.addresses,
            );
            status.usage = usage_status(current.usage.as_ref(), live);
        }
        (!same_instance_status(&current, &status))
            .then(|| to_json(&status))
            .flatten()
    }
}

/// The interfaces' addresses: the internal ones the control plane's IPAM allocated stay
/// as they are (IPAM is their source of truth); the provider fills in what IPAM has not
/// set — an internal address on a platform that picks its own, and external addresses.
fn merge_addresses(
    current: &[InstanceNetworkInterfaceStatus],
    live: &[crate::external::InterfaceAddresses],
) -> Option<Vec<InstanceNetworkInterfaceStatus>> {
    let count = current.len().max(live.len());
    let merged: Vec<_> = (0..count)
        .map(|index| {
            let allocated = current
                .get(index)
                .and_then(|i| i.assignments.clone())
                .unwrap_or_default();
            let observed = live.get(index);
            InstanceNetworkInterfaceStatus {
                assignments: Some(InstanceNetworkInterfaceAssignments {
                    network_ip: allocated
                        .network_ip
                        .or_else(|| observed.and_then(|o| o.network_ip.clone())),
                    network_ipv6: allocated.network_ipv6,
                    external_ip: observed
                        .and_then(|o| o.external_ip.clone())
                        .or(allocated.external_ip),
                }),
            }
        })
        .collect();
    (!merged.is_empty()).then_some(merged)
}

/// New usage figures stamped now; the previous stamp kept when the figures are unchanged,
/// so steady usage does not cause a status write on every observe.
fn usage_status(current: Option<&InstanceUsage>, live: &InstanceLive) -> Option<InstanceUsage> {
    let usage = live.usage.as_ref()?;
    if let Some(current) = current
        && current.cpu_utilization == usage.cpu_utilization
        && current.memory_utilization == usage.memory_utilization
    {
        return Some(current.clone());
    }
    Some(InstanceUsage {
        cpu_utilization: usage.cpu_utilization,
        memory_utilization: usage.memory_utilization,
        cpu: None,
        memory: None,
        observed_at: Time(k8s_openapi::jiff::Timestamp::now()),
    })
}

/// Equal ignoring condition transition times.
fn same_instance_status(a: &InstanceStatus, b: &InstanceStatus) -> bool {
    let strip = |s: &InstanceStatus| {
        let mut s = s.clone();
        if let Some(list) = s.conditions.as_mut() {
            for c in list {
                c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            }
        }
        s
    };
    strip(a) == strip(b)
}

/// Status of the network kinds: only `Programmed` changes.
fn network_status<S: Clone + Default + Serialize>(
    status: Option<&S>,
    conditions_of: impl Fn(&mut S) -> &mut Vec<Condition>,
    generation: i64,
    outcome: &Outcome<NetworkLive>,
) -> Option<serde_json::Value> {
    let mut status = status.cloned().unwrap_or_default();
    let changed = set_programmed(conditions_of(&mut status), outcome, generation);
    changed.then(|| to_json(&status)).flatten()
}

impl ManagedKind for NetworkContext {
    type Spec = NetworkContextSpec;
    type Live = NetworkLive;
    const CONTROLLER: &'static str = "network_context";

    fn desired(&self) -> &NetworkContextSpec {
        &self.spec
    }

    fn location_name(&self) -> Option<&str> {
        Some(self.spec.location.name.as_str())
    }

    fn status_for(&self, outcome: &Outcome<NetworkLive>) -> Option<serde_json::Value> {
        network_status(
            self.status.as_ref(),
            |s| &mut s.conditions,
            self.metadata.generation.unwrap_or(0),
            outcome,
        )
    }
}

impl ManagedKind for Subnet {
    type Spec = SubnetSpec;
    type Live = NetworkLive;
    const CONTROLLER: &'static str = "subnet";

    fn desired(&self) -> &SubnetSpec {
        &self.spec
    }

    fn location_name(&self) -> Option<&str> {
        Some(self.spec.location.name.as_str())
    }

    fn status_for(&self, outcome: &Outcome<NetworkLive>) -> Option<serde_json::Value> {
        network_status(
            self.status.as_ref(),
            |s| &mut s.conditions,
            self.metadata.generation.unwrap_or(0),
            outcome,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external::InterfaceAddresses;

    fn instance() -> Instance {
        let mut instance: Instance = serde_json::from_value(serde_json::json!({
            "apiVersion": "compute.datumapis.com/v1alpha",
            "kind": "Instance",
            "metadata": { "name": "web-0", "namespace": "ns", "generation": 3 },
            "spec": {
                "runtime": { "resources": {}, "sandbox": { "containers": [{ "name": "web", "image": "nginx" }] } },
                "networkInterfaces": [{ "network": { "name": "default" } }],
                "location": { "name": "sim-1" },
                "controller": { "templateHash": "h1", "schedulingGates": [{ "name": "Network" }] },
            },
        }))
        .expect("a valid Instance");
        instance.status = Some(InstanceStatus::pending());
        instance
    }

    #[test]
    fn instance_reads_location_and_gates() {
        let i = instance();
        assert_eq!(i.location_name(), Some("sim-1"));
        assert_eq!(i.scheduling_gates(), vec!["Network".to_owned()]);
    }

    #[test]
    fn synced_instance_gets_conditions_addresses_and_template_hash_once() {
        let mut i = instance();
        let outcome = Outcome::Synced {
            id: "x".into(),
            live: InstanceLive {
                provider_id: Some("sim://x".into()),
                addresses: vec![InterfaceAddresses {
                    network_ip: Some("10.0.0.2".into()),
                    external_ip: None,
                }],
                power: PowerState::Running,
                usage: None,
            },
        };
        let status = i.status_for(&outcome).expect("a first write");
        assert_eq!(status["providerID"], "sim://x");
        assert_eq!(status["controller"]["observedTemplateHash"], "h1");
        assert_eq!(
            status["networkInterfaces"][0]["assignments"]["networkIP"],
            "10.0.0.2"
        );
        let written: InstanceStatus = serde_json::from_value(status).expect("a status");
        let list = written.conditions.clone().unwrap_or_default();
        assert!(conditions::is_true(&list, PROGRAMMED));
        assert!(conditions::is_true(&list, compute_conditions::RUNNING));
        assert_eq!(
            conditions::get(&list, PROGRAMMED).and_then(|c| c.observed_generation),
            Some(3)
        );
        // The control plane's Ready condition is kept as it was.
        assert!(conditions::get(&list, compute_conditions::READY).is_some());
        i.status = Some(written);
        assert_eq!(
            i.status_for(&outcome),
            None,
            "nothing changed, nothing to write"
        );
    }

    #[test]
    fn a_failing_health_check_makes_running_false_with_its_state() {
        let i = instance();
        let status = i
            .status_for(&Outcome::Synced {
                id: "x".into(),
                live: InstanceLive {
                    power: PowerState::Unhealthy("UNHEALTHY"),
                    ..InstanceLive::default()
                },
            })
            .expect("a write");
        let written: InstanceStatus = serde_json::from_value(status).expect("a status");
        let list = written.conditions.unwrap_or_default();
        let running = conditions::get(&list, compute_conditions::RUNNING).expect("Running");
        assert_eq!(running.status, "False");
        assert_eq!(running.reason, runtime_reasons::UNHEALTHY);
        assert!(running.message.contains("UNHEALTHY"), "{}", running.message);
        assert!(conditions::is_true(&list, PROGRAMMED));
    }

    #[test]
    fn failed_instance_says_why() {
        let i = instance();
        let status = i
            .status_for(&Outcome::Failed {
                reason: runtime_reasons::PROVIDER_CONFIG_INVALID.into(),
                message: "ProviderConfig \"x\" not found".into(),
            })
            .expect("a write");
        let written: InstanceStatus = serde_json::from_value(status).expect("a status");
        let list = written.conditions.unwrap_or_default();
        let programmed = conditions::get(&list, PROGRAMMED).expect("Programmed");
        assert_eq!(programmed.status, "False");
        assert_eq!(programmed.reason, "ProviderConfigInvalid");
        assert!(programmed.message.contains("not found"));
        assert!(conditions::has_status(
            &list,
            compute_conditions::RUNNING,
            ConditionStatus::False
        ));
    }
}
