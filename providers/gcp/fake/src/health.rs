//! Health checking in the fake: unmanaged instance groups' membership
//! (`instanceGroups.addInstances` / `removeInstances` / `listInstances`), a regional
//! backend service's `getHealth`, the in-use refusals that keep dependency order, and the
//! test hook that says whether an instance's workload answers on its port.
//!
//! `getHealth` reports, per member of the asked group, what Google's probers would see:
//! - `UNKNOWN` while the VM is `PROVISIONING` / `STAGING`, or when it runs but no probe
//!   result exists yet (the test never said whether its port answers);
//! - `HEALTHY` when it is `RUNNING`, its port answers ([`Compute::set_answers`]) and an
//!   ingress firewall rule in its `nic0` network lets the probers' ranges
//!   (`35.191.0.0/16`, `130.211.0.0/22`) reach that TCP port on one of its tags;
//! - `UNHEALTHY` otherwise (the port refuses, the firewall drops the probes, the VM stopped).

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::compute::{Compute, Reply, Target, singular};
use crate::errors;

/// The source ranges of Google's health check probers.
pub const PROBER_RANGES: [&str; 2] = ["35.191.0.0/16", "130.211.0.0/22"];

impl Compute {
    /// Test hook: whether the workload of the instance at `path` (below `/compute/v1/`)
    /// answers on its health-checked port; `None` forgets, so health is `UNKNOWN` again.
    pub fn set_answers(&mut self, path: &str, answers: Option<bool>) {
        let path = path.trim_matches('/').to_owned();
        match answers {
            Some(a) => self.answers.insert(path, a),
            None => self.answers.remove(&path),
        };
    }

    /// The instance paths in the instance group at `path`.
    pub fn group_members(&self, path: &str) -> Vec<String> {
        self.members
            .get(path.trim_matches('/'))
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `addInstances`, `removeInstances` and `listInstances` on a zonal instance group.
    pub(crate) fn instance_group_verb(
        &mut self,
        target: &Target,
        verb: &str,
        query: &HashMap<String, String>,
        body: Option<Value>,
    ) -> Reply {
        let group = target.path();
        let Some(resource) = self.resources.get(&group) else {
            return errors::not_found(&group);
        };
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        let body = body.unwrap_or(Value::Null);
        if verb == "listInstances" {
            let items = self.group_members(&group).into_iter().map(|m| {
                let status = self.resources.get(&m).map(|i| i["status"].clone());
                let item =
                    json!({ "instance": format!("{}{m}", self.link_prefix), "status": status });
                (m, item)
            });
            let page = match self.page(&format!("{group}/listInstances"), items, query) {
                Ok(page) => page,
                Err(reply) => return reply,
            };
            let reply = json!({ "kind": "compute#instanceGroupsListInstances" });
            return (200, page.into_reply(reply, "items"));
        }
        if !matches!(verb, "addInstances" | "removeInstances") {
            return errors::invalid("unsupported custom verb");
        }
        let mut wanted = Vec::new();
        for reference in body["instances"].as_array().into_iter().flatten() {
            let Some(link) = reference["instance"].as_str() else {
                return errors::invalid("Required field 'instances[].instance' not specified");
            };
            let path = self.path_of(link, &target.project);
            if !self.resources.contains_key(&path) {
                return errors::not_found(&path);
            }
            if !path.starts_with(&format!("{}/{}/instances/", target.project, target.scope)) {
                return errors::invalid(&format!(
                    "Instance '{path}' is not in the zone of instance group '{group}'"
                ));
            }
            wanted.push(path);
        }
        if wanted.is_empty() {
            return errors::invalid("Required field 'instances' not specified");
        }
        let members = self.members.entry(group.clone()).or_default();
        for path in &wanted {
            let member = members.contains(path);
            if verb == "addInstances" && member {
                let message = format!("The resource '{path}' is already a member of '{group}'");
                return (400, errors::body(400, "memberAlreadyExists", &message));
            }
            if verb == "removeInstances" && !member {
                return errors::invalid(&format!(
                    "The resource '{path}' is not a member of '{group}'"
                ));
            }
        }
        for path in wanted {
            if verb == "addInstances" {
                members.insert(path);
            } else {
                members.remove(&path);
            }
        }
        let size = members.len();
        if let Some(resource) = self.resources.get_mut(&group) {
            resource["size"] = json!(size);
        }
        self.operation(target, verb, &group, &id, None)
    }

    /// `regionBackendServices.getHealth` for the group named in the body.
    pub(crate) fn get_health(&mut self, target: &Target, body: Option<Value>) -> Reply {
        let service_path = target.path();
        let Some(service) = self.resources.get(&service_path) else {
            return errors::not_found(&service_path);
        };
        let Some(group_link) = body.as_ref().and_then(|b| b["group"].as_str()) else {
            return errors::invalid("Required field 'group' not specified");
        };
        let group = self.path_of(group_link, &target.project);
        let is_backend = service["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["group"].as_str())
            .any(|g| self.path_of(g, &target.project) == group);
        if !is_backend {
            return errors::invalid(&format!(
                "Instance group '{group}' is not a backend of backend service '{service_path}'"
            ));
        }
        let port = service["healthChecks"]
            .as_array()
            .and_then(|checks| checks.first())
            .and_then(Value::as_str)
            .and_then(|link| self.resources.get(&self.path_of(link, &target.project)))
            .and_then(|check| {
                check["tcpHealthCheck"]["port"]
                    .as_u64()
                    .or_else(|| check["httpHealthCheck"]["port"].as_u64())
            })
            .unwrap_or(80);
        let statuses: Vec<Value> = self
            .group_members(&group)
            .iter()
            .filter_map(|m| self.resources.get(m).map(|i| (m, i)))
            .map(|(path, instance)| {
                json!({
                    "ipAddress": instance["networkInterfaces"][0]["networkIP"],
                    "port": port,
                    "instance": format!("{}{path}", self.link_prefix),
                    "healthState": self.health_state(path, instance, port, &target.project),
                })
            })
            .collect();
        let mut reply = json!({ "kind": "compute#backendServiceGroupHealth" });
        if !statuses.is_empty() {
            reply["healthStatus"] = json!(statuses);
        }
        (200, reply)
    }

    fn health_state(&self, path: &str, instance: &Value, port: u64, project: &str) -> &str {
        match instance["status"].as_str() {
            Some("RUNNING") => {}
            Some("PROVISIONING" | "STAGING") => return "UNKNOWN",
            _ => return "UNHEALTHY",
        }
        match self.answers.get(path) {
            None => "UNKNOWN",
            Some(true) if self.probes_admitted(instance, port, project) => "HEALTHY",
            Some(_) => "UNHEALTHY",
        }
    }

    /// Whether an ingress firewall rule of the instance's `nic0` network admits the
    /// probers' ranges to TCP `port` on one of the instance's tags.
    fn probes_admitted(&self, instance: &Value, port: u64, project: &str) -> bool {
        let Some(network) = instance["networkInterfaces"][0]["network"].as_str() else {
            return false;
        };
        let network = self.path_of(network, project);
        let tags: BTreeSet<&str> = instance["tags"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let prefix = format!("{project}/global/firewalls/");
        self.resources
            .iter()
            .filter(|(path, _)| path.starts_with(&prefix))
            .map(|(_, rule)| rule)
            .any(|rule| {
                let same_network = rule["network"]
                    .as_str()
                    .is_some_and(|n| self.path_of(n, project) == network);
                let ingress = rule["direction"].as_str().is_none_or(|d| d == "INGRESS");
                let sources: Vec<&str> = rule["sourceRanges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let from_probers = PROBER_RANGES
                    .iter()
                    .all(|r| sources.contains(r) || sources.contains(&"0.0.0.0/0"));
                let targeted = rule["targetTags"].as_array().is_none_or(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .any(|tag| tags.contains(tag))
                });
                let allows = rule["allowed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| allows_tcp(a, port));
                same_network && ingress && from_probers && targeted && allows
            })
    }

    /// `400 resourceInUseByAnotherResource` when a backend service names the health check
    /// or instance group at `path`.
    pub(crate) fn in_use_by_backend_service(&self, target: &Target, path: &str) -> Option<Reply> {
        if !matches!(target.kind.as_str(), "healthChecks" | "instanceGroups") {
            return None;
        }
        let user = self.resources.iter().find_map(|(user_path, r)| {
            let checks = r["healthChecks"].as_array().into_iter().flatten();
            let groups = r["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| &b["group"]);
            let uses = checks
                .chain(groups)
                .filter_map(Value::as_str)
                .any(|link| self.path_of(link, &target.project) == path);
            uses.then(|| user_path.clone())
        })?;
        let kind = singular(&target.kind);
        let message = format!("The {kind} resource '{path}' is already being used by '{user}'");
        Some((
            400,
            errors::body(400, "resourceInUseByAnotherResource", &message),
        ))
    }

    /// Drops what referred to a deleted instance or instance group.
    pub(crate) fn forget(&mut self, target: &Target, path: &str) {
        match target.kind.as_str() {
            "instances" => {
                // Compute Engine takes a deleted instance out of its unmanaged groups.
                for members in self.members.values_mut() {
                    members.remove(path);
                }
                let sizes: Vec<(String, usize)> = self
                    .members
                    .iter()
                    .map(|(g, m)| (g.clone(), m.len()))
                    .collect();
                for (group, size) in sizes {
                    if let Some(resource) = self.resources.get_mut(&group) {
                        resource["size"] = json!(size);
                    }
                }
                self.answers.remove(path);
            }
            "instanceGroups" => {
                self.members.remove(path);
            }
            _ => {}
        }
    }
}

/// Whether a firewall `allowed` entry admits TCP `port`.
fn allows_tcp(allowed: &Value, port: u64) -> bool {
    let protocol = allowed["IPProtocol"].as_str().unwrap_or_default();
    if !matches!(protocol, "tcp" | "all" | "6") {
        return false;
    }
    let Some(ports) = allowed["ports"].as_array() else {
        return true;
    };
    ports.iter().filter_map(Value::as_str).any(|p| {
        let (low, high) = p.split_once('-').unwrap_or((p, p));
        match (low.parse::<u64>(), high.parse::<u64>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&port),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(c: &mut Compute, method: &str, path: &str, body: Value) -> Reply {
        let target = Target::parse(path).expect("a path");
        c.handle(method, &target, &HashMap::new(), Some(body), None)
    }

    #[test]
    fn health_follows_status_hook_and_firewall_and_deletes_keep_dependency_order() {
        let mut c = Compute::default();
        let p = "projects/p";
        call(
            &mut c,
            "POST",
            &format!("{p}/global/networks"),
            json!({"name": "net"}),
        );
        call(
            &mut c,
            "POST",
            &format!("{p}/zones/z-a/instances"),
            json!({"name": "vm", "tags": {"items": ["wd"]},
                   "networkInterfaces": [{"network": "global/networks/net"}]}),
        );
        call(
            &mut c,
            "POST",
            &format!("{p}/global/healthChecks"),
            json!({"name": "hc", "type": "TCP", "tcpHealthCheck": {"port": 8080}}),
        );
        call(
            &mut c,
            "POST",
            &format!("{p}/zones/z-a/instanceGroups"),
            json!({"name": "ig"}),
        );
        let bs = call(
            &mut c,
            "POST",
            &format!("{p}/regions/z/backendServices"),
            json!({"name": "bs", "loadBalancingScheme": "INTERNAL", "protocol": "TCP",
                   "healthChecks": [format!("{p}/global/healthChecks/hc")],
                   "backends": [{"group": format!("{p}/zones/z-a/instanceGroups/ig")}]}),
        );
        assert_eq!(bs.0, 200, "{bs:?}");
        let add = json!({"instances": [{"instance": format!("{p}/zones/z-a/instances/vm")}]});
        let verb = format!("{p}/zones/z-a/instanceGroups/ig/addInstances");
        assert_eq!(call(&mut c, "POST", &verb, add.clone()).0, 200);
        let again = call(&mut c, "POST", &verb, add);
        assert_eq!(
            again.1["error"]["errors"][0]["reason"],
            "memberAlreadyExists"
        );

        let health_path = format!("{p}/regions/z/backendServices/bs/getHealth");
        let group = json!({"group": format!("{p}/zones/z-a/instanceGroups/ig")});
        let state = |c: &mut Compute| {
            call(c, "POST", &health_path, group.clone()).1["healthStatus"][0]["healthState"].clone()
        };
        assert_eq!(state(&mut c), "UNKNOWN", "still provisioning");
        call(
            &mut c,
            "GET",
            &format!("{p}/zones/z-a/instances/vm"),
            Value::Null,
        );
        call(
            &mut c,
            "GET",
            &format!("{p}/zones/z-a/instances/vm"),
            Value::Null,
        );
        assert_eq!(state(&mut c), "UNKNOWN", "running, no probe result yet");
        c.set_answers(&format!("{p}/zones/z-a/instances/vm"), Some(true));
        assert_eq!(
            state(&mut c),
            "UNHEALTHY",
            "no firewall rule admits the probers"
        );
        call(
            &mut c,
            "POST",
            &format!("{p}/global/firewalls"),
            json!({"name": "fw", "network": "global/networks/net", "direction": "INGRESS",
                   "sourceRanges": PROBER_RANGES, "targetTags": ["wd"],
                   "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
        );
        assert_eq!(state(&mut c), "HEALTHY");
        c.set_answers(&format!("{p}/zones/z-a/instances/vm"), Some(false));
        assert_eq!(state(&mut c), "UNHEALTHY");

        let refused = call(
            &mut c,
            "DELETE",
            &format!("{p}/global/healthChecks/hc"),
            Value::Null,
        );
        assert_eq!(refused.0, 400);
        assert_eq!(
            refused.1["error"]["errors"][0]["reason"],
            "resourceInUseByAnotherResource"
        );
        let refused = call(
            &mut c,
            "DELETE",
            &format!("{p}/zones/z-a/instanceGroups/ig"),
            Value::Null,
        );
        assert_eq!(refused.0, 400);
        call(
            &mut c,
            "DELETE",
            &format!("{p}/zones/z-a/instances/vm"),
            Value::Null,
        );
        assert!(
            c.group_members(&format!("{p}/zones/z-a/instanceGroups/ig"))
                .is_empty()
        );
        for path in [
            "regions/z/backendServices/bs",
            "zones/z-a/instanceGroups/ig",
            "global/healthChecks/hc",
        ] {
            assert_eq!(
                call(&mut c, "DELETE", &format!("{p}/{path}"), Value::Null).0,
                200
            );
        }
    }
}
