//! Workload ports → a Compute Engine health check whose per-instance result feeds the
//! Instance's readiness.
//!
//! **Decision.** Compute Engine reports a health check's result per instance only through
//! a backend service (`backendServices.getHealth` / `regionBackendServices.getHealth`, per
//! instance group) or through a managed instance group's autohealing
//! (`instanceGroupManagers.listManagedInstances` → `instanceHealth`). Our instances are
//! inserted one by one from their revision's template with IPAM's addresses (a MIG would
//! own naming, addresses and rollout, and autohealing recreates VMs rather than report
//! readiness), so each WorkloadDeployment gets, all named `datum-hc-<deployment uid>`:
//! - a global **health check**, `type: TCP` on the first TCP port the workload declares.
//!   TCP, not HTTP: a Datum port says only that something listens there — no path, no
//!   expected status — so "the port accepts a connection" is all that can be checked
//!   without guessing; an HTTP check of `/` would fail every app that answers 404 there.
//!   UDP and SCTP ports cannot be health-checked by Compute Engine: a workload with only
//!   those keeps VM-status readiness;
//! - an ingress **firewall rule** in the VPC of the instances' first NIC admitting Google's
//!   probers (`35.191.0.0/16`, `130.211.0.0/22`) to that port on the network tag
//!   `datum-hc-<deployment uid>`, which the deployment's instances carry besides their own;
//! - an unmanaged zonal **instance group** holding the deployment's instances
//!   (`addInstances` after insert, `removeInstances` before delete);
//! - a regional **backend service** (`loadBalancingScheme: INTERNAL`, `protocol: TCP`, the
//!   instance group as a `CONNECTION` backend) tying check and group together: the internal
//!   passthrough kind accepts unmanaged zonal groups and TCP checks and exposes nothing
//!   (no forwarding rule is made). Its `getHealth` gives each instance's `healthState`.
//!
//! An Instance whose VM is `RUNNING` is Running (and so Ready) only when its `healthState`
//! is `HEALTHY`; otherwise it reports [`PowerState::Unhealthy`] with the state quoted.
//! When the deployment's last instance leaves the group, the backend service, instance
//! group, health check and firewall rule are deleted in that (dependency) order.
//!
//! Unverified against real GCP: whether probers check a backend service that no forwarding
//! rule uses. Should they not, health stays `UNKNOWN` and such Instances never become
//! Ready; the fake probes regardless.
//!
//! [`PowerState::Unhealthy`]: datum_provider::PowerState::Unhealthy

use std::collections::BTreeMap;

use datum_api::compute::InstanceSpec;
use datum_api::compute::labels::WORKLOAD_DEPLOYMENT_UID;
use serde_json::json;

use crate::compute::{ApiError, Compute};

/// Prefix of every health-checking resource and of the deployment's network tag.
pub const PREFIX: &str = "datum-hc-";

/// The source ranges of Google's health check probers.
pub const PROBER_RANGES: [&str; 2] = ["35.191.0.0/16", "130.211.0.0/22"];

/// The TCP port to health-check: the first one the workload's containers (or VM) declare
/// with protocol TCP (the default).
pub fn port(spec: &InstanceSpec) -> Option<i32> {
    let declared = match (&spec.runtime.sandbox, &spec.runtime.virtual_machine) {
        (Some(sandbox), _) => sandbox
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .collect::<Vec<_>>(),
        (None, Some(vm)) => vm.ports.iter().flatten().collect(),
        (None, None) => Vec::new(),
    };
    declared
        .into_iter()
        .find(|p| {
            p.protocol
                .as_deref()
                .is_none_or(|proto| proto.eq_ignore_ascii_case("TCP"))
        })
        .map(|p| p.port)
}

/// Where one deployment's health checking lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `datum-hc-<deployment uid>`: every resource's name and the network tag.
    pub name: String,
    /// The checked TCP port.
    pub port: i32,
    /// The project.
    pub project: String,
    /// The instances' zone (the instance group's).
    pub zone: String,
    /// The zone's region (the backend service's).
    pub region: String,
}

impl Plan {
    /// The plan for an Instance of `spec` with `labels`, or `None` when it declares no TCP
    /// port. The deployment is the Instance's `workload-deployment-uid` label; an Instance
    /// without one (made directly) is a deployment of its own.
    pub fn of(
        spec: &InstanceSpec,
        labels: &BTreeMap<String, String>,
        uid: &str,
        project: &str,
        zone: &str,
        region: &str,
    ) -> Option<Self> {
        let port = port(spec)?;
        Some(Self {
            port,
            ..Self::of_deployment(labels, uid, project, zone, region)
        })
    }

    /// The names of the Instance's deployment's health checking, whatever its ports (port
    /// 0): for leaving it when a revision drops its ports.
    pub fn of_deployment(
        labels: &BTreeMap<String, String>,
        uid: &str,
        project: &str,
        zone: &str,
        region: &str,
    ) -> Self {
        let deployment = labels
            .get(WORKLOAD_DEPLOYMENT_UID)
            .map_or(uid, String::as_str);
        let key: String = deployment
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .take(63 - PREFIX.len())
            .collect();
        let key = key.trim_end_matches('-');
        let key = if key.is_empty() { "x" } else { key };
        Self {
            name: format!("{PREFIX}{key}"),
            port: 0,
            project: project.to_owned(),
            zone: zone.to_owned(),
            region: region.to_owned(),
        }
    }

    /// The plan of the instance at `path` (`projects/<p>/zones/<z>/instances/<n>`).
    pub fn at(
        spec: &InstanceSpec,
        labels: &BTreeMap<String, String>,
        uid: &str,
        path: &str,
    ) -> Option<Self> {
        let (project, zone) = project_and_zone(path)?;
        let region = zone.rsplit_once('-').map(|(r, _)| r)?;
        Self::of(spec, labels, uid, project, zone, region)
    }

    fn health_check(&self) -> String {
        format!(
            "projects/{}/global/healthChecks/{}",
            self.project, self.name
        )
    }

    fn firewall(&self) -> String {
        format!("projects/{}/global/firewalls/{}", self.project, self.name)
    }

    fn group(&self) -> String {
        format!(
            "projects/{}/zones/{}/instanceGroups/{}",
            self.project, self.zone, self.name
        )
    }

    fn backend_service(&self) -> String {
        format!(
            "projects/{}/regions/{}/backendServices/{}",
            self.project, self.region, self.name
        )
    }
}

/// `projects/...` of a full or partial resource URL, for comparing links from different
/// hosts (`www.googleapis.com` in selfLinks, the configured endpoint in ours).
fn resource_path(link: &str) -> &str {
    link.find("projects/").map_or(link, |i| &link[i..])
}

/// Project and zone of `projects/<p>/zones/<z>/...`.
pub fn project_and_zone(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("projects"), Some(project), Some("zones"), Some(zone)) => Some((project, zone)),
        _ => None,
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(p, _)| p)
}

impl Compute {
    /// Makes the deployment's health check, firewall rule, instance group and backend
    /// service (adopting what exists); `network` is the selfLink of the instances' first
    /// NIC's VPC.
    pub async fn ensure_health_checking(&self, plan: &Plan, network: &str) -> Result<(), ApiError> {
        let description = format!("datum: health of WorkloadDeployment {}", plan.name);
        let port = json!({ "port": plan.port });
        self.insert(
            parent(&plan.health_check()),
            &json!({
                "name": plan.name,
                "description": description,
                "type": "TCP",
                "tcpHealthCheck": port,
                "checkIntervalSec": 5,
                "timeoutSec": 5,
                "healthyThreshold": 2,
                "unhealthyThreshold": 2,
            }),
        )
        .await?;
        let allowed = json!([{ "IPProtocol": "tcp", "ports": [plan.port.to_string()] }]);
        self.insert(
            parent(&plan.firewall()),
            &json!({
                "name": plan.name,
                "description": format!("Google's health check probers to {}", plan.name),
                "network": network,
                "direction": "INGRESS",
                "priority": 1000,
                "sourceRanges": PROBER_RANGES,
                "targetTags": [plan.name],
                "allowed": allowed,
            }),
        )
        .await?;
        // A revision with another port: the adopted check and rule follow it.
        self.patch_if_changed(&plan.health_check(), "tcpHealthCheck", &port)
            .await?;
        self.patch_if_changed(&plan.firewall(), "allowed", &allowed)
            .await?;
        self.insert(
            parent(&plan.group()),
            &json!({ "name": plan.name, "description": description }),
        )
        .await?;
        self.insert(
            parent(&plan.backend_service()),
            &json!({
                "name": plan.name,
                "description": description,
                "loadBalancingScheme": "INTERNAL",
                "protocol": "TCP",
                "network": network,
                "healthChecks": [self.url(&plan.health_check())],
                "backends": [{ "group": self.url(&plan.group()), "balancingMode": "CONNECTION" }],
            }),
        )
        .await
    }

    /// PATCHes `field` of the resource at `path` to `wanted` when it differs.
    async fn patch_if_changed(
        &self,
        path: &str,
        field: &str,
        wanted: &serde_json::Value,
    ) -> Result<(), ApiError> {
        let Some(current) = self.get(path).await? else {
            return Ok(());
        };
        if current[field] == *wanted {
            return Ok(());
        }
        let operation = self
            .call(
                http::Method::PATCH,
                path,
                &[],
                Some(&json!({ field: wanted })),
            )
            .await?;
        self.wait(operation).await.map(|_| ())
    }

    /// The instance paths in the deployment's group; `None` when there is no group.
    async fn members(&self, plan: &Plan) -> Result<Option<Vec<String>>, ApiError> {
        let items = match self
            .list_pages(
                http::Method::POST,
                &format!("{}/listInstances", plan.group()),
                Some(&json!({ "instanceState": "ALL" })),
            )
            .await
        {
            Ok(items) => items,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(
            items
                .iter()
                .filter_map(|i| i["instance"].as_str())
                .map(|link| resource_path(link).to_owned())
                .collect(),
        ))
    }

    /// Adds the instance at `instance` (a path) to the deployment's group, once.
    pub async fn join_group(&self, plan: &Plan, instance: &str) -> Result<(), ApiError> {
        let members = self.members(plan).await?.unwrap_or_default();
        if members.iter().any(|m| m == instance) {
            return Ok(());
        }
        let body = json!({ "instances": [{ "instance": self.url(instance) }] });
        match self.act(&plan.group(), "addInstances", &body).await {
            Err(e) if e.reason == "memberAlreadyExists" => Ok(()),
            other => other,
        }
    }

    /// Takes the instance at `instance` out of the deployment's group (before the instance
    /// is deleted).
    pub async fn leave_group(&self, plan: &Plan, instance: &str) -> Result<(), ApiError> {
        let members = self.members(plan).await?.unwrap_or_default();
        if !members.iter().any(|m| m == instance) {
            return Ok(());
        }
        let body = json!({ "instances": [{ "instance": self.url(instance) }] });
        match self.act(&plan.group(), "removeInstances", &body).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether the deployment's group is empty or gone. Asked after an instance left:
    /// when several leave at once, whichever leaves last sees the group empty.
    pub async fn group_is_empty(&self, plan: &Plan) -> Result<bool, ApiError> {
        Ok(self.members(plan).await?.is_none_or(|m| m.is_empty()))
    }

    /// Deletes the deployment's health checking in dependency order: the backend service
    /// (it names the check and the group), the group, the check, the firewall rule.
    /// Already gone is success.
    pub async fn remove_health_checking(&self, plan: &Plan) -> Result<(), ApiError> {
        for path in [
            plan.backend_service(),
            plan.group(),
            plan.health_check(),
            plan.firewall(),
        ] {
            Compute::delete(self, &path).await?;
        }
        tracing::info!(
            project = plan.project,
            name = plan.name,
            "deleted the health checking of a WorkloadDeployment without instances"
        );
        Ok(())
    }

    /// The instance's `healthState` as the backend service reports it (`HEALTHY`,
    /// `UNHEALTHY`, `DRAINING`, `TIMEOUT`, `UNKNOWN`); `None` when the backend service or
    /// group is gone or the instance is not in it (health checking needs repair).
    pub async fn health_of(
        &self,
        plan: &Plan,
        instance: &str,
    ) -> Result<Option<&'static str>, ApiError> {
        let reply = match self
            .call(
                http::Method::POST,
                &format!("{}/getHealth", plan.backend_service()),
                &[],
                Some(&json!({ "group": self.url(&plan.group()) })),
            )
            .await
        {
            Ok(reply) => reply,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let state = reply["healthStatus"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s["instance"]
                    .as_str()
                    .is_some_and(|link| resource_path(link) == instance)
            })
            .map(|s| match s["healthState"].as_str() {
                Some("HEALTHY") => "HEALTHY",
                Some("UNHEALTHY") => "UNHEALTHY",
                Some("DRAINING") => "DRAINING",
                Some("TIMEOUT") => "TIMEOUT",
                _ => "UNKNOWN",
            });
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn spec(ports: Value) -> InstanceSpec {
        serde_json::from_value(json!({
            "runtime": { "resources": {}, "sandbox": { "containers": [
                { "name": "a", "image": "x" },
                { "name": "b", "image": "y", "ports": ports },
            ]}},
            "networkInterfaces": [{ "network": { "name": "default" } }],
        }))
        .expect("a spec")
    }

    #[test]
    fn the_first_tcp_port_is_checked_per_deployment() {
        let s = spec(json!([
            { "name": "dns", "port": 53, "protocol": "UDP" },
            { "name": "http", "port": 8080 },
        ]));
        assert_eq!(port(&s), Some(8080));
        let labels: BTreeMap<String, String> = [(
            WORKLOAD_DEPLOYMENT_UID.to_owned(),
            "6F1C0D2E-aaaa-bbbb-cccc-0123456789ab".to_owned(),
        )]
        .into();
        let plan =
            Plan::of(&s, &labels, "i-uid", "p", "us-central1-a", "us-central1").expect("a plan");
        assert_eq!(plan.name, "datum-hc-6f1c0d2e-aaaa-bbbb-cccc-0123456789ab");
        assert_eq!(
            plan.backend_service(),
            "projects/p/regions/us-central1/backendServices/datum-hc-6f1c0d2e-aaaa-bbbb-cccc-0123456789ab"
        );
        let alone = Plan::of(&s, &BTreeMap::new(), "i-uid", "p", "z-a", "z").expect("a plan");
        assert_eq!(alone.name, "datum-hc-i-uid");
        assert_eq!(
            port(&spec(
                json!([{ "name": "dns", "port": 53, "protocol": "UDP" }])
            )),
            None
        );
        assert_eq!(
            resource_path("https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i"),
            "projects/p/zones/z/instances/i"
        );
    }
}
