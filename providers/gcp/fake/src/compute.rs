//! The Compute Engine resources the fake keeps and the REST endpoints over them:
//! insert / get / delete / list of instances (zonal), networks, firewalls and instance
//! templates (global) and subnetworks (regional), `setMetadata`, `setLabels` and `setTags`
//! on instances (fingerprint-checked) and `reset`, `GET projects/<p>` (its `defaultServiceAccount`),
//! and zone / region / global operations that go `PENDING` → `RUNNING` → `DONE` as they
//! are polled.
//!
//! Documented behaviour kept: a duplicate insert is `409 alreadyExists` unless it repeats
//! an earlier `requestId`, which returns the original operation; a missing resource is
//! `404 notFound`; a subnetwork needs its network; a network in use by a subnetwork,
//! instance or firewall cannot be deleted (`400 resourceInUseByAnotherResource`); a stale
//! fingerprint is `412 conditionNotMet`; a firewall rule with both or neither of
//! `allowed`/`denied`, source filters on an egress rule, a priority outside 0–65535 or an
//! invalid tag, and more than 64 or invalid network tags on an instance, are `400 invalid`.
//! Effects apply when the operation is created. Lists page as Compute Engine's do
//! (`maxResults`, `pageToken`, `nextPageToken`; see [`crate::paging`]).
//!
//! Instance templates: `instances.insert?sourceInstanceTemplate=<template>` starts from the
//! template's `properties` and lets the request body override them field by field, as
//! Compute Engine documents; a missing template is `404 notFound`. The created instance
//! records its template in the `instance-template` metadata item. As in Compute Engine, an
//! instance template can be deleted while instances made from it exist (only a managed
//! instance group, which this fake does not model, holds one in use).
//!
//! Health checking (see [`crate::health`]): global `healthChecks` (and `PATCH` of them and
//! of firewall rules, whose body fields replace the stored ones), zonal unmanaged
//! `instanceGroups` with `addInstances` / `removeInstances` / `listInstances`, and regional
//! `backendServices` with `getHealth`. A health check or instance group a backend service
//! names cannot be deleted (`400 resourceInUseByAnotherResource`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::errors;

/// A parsed API path below `/compute/v1/`.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `projects/<p>/zones/<z>/instances`.
    pub collection: String,
    /// `projects/<p>`.
    pub project: String,
    /// `zones/<z>`, `regions/<r>` or `global`.
    pub scope: String,
    /// `instances`, `networks`, `subnetworks`, `firewalls`, `operations`.
    pub kind: String,
    /// The resource name, if the path names one.
    pub name: Option<String>,
    /// A custom verb (`setMetadata`, `setLabels`).
    pub verb: Option<String>,
}

impl Target {
    /// Parses `projects/p/(global|zones/z|regions/r)/kind[/name[/verb]]`.
    pub fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (project, rest) = match parts.as_slice() {
            ["projects", p, rest @ ..] => (format!("projects/{p}"), rest),
            _ => return None,
        };
        let (scope, rest) = match rest {
            ["global", rest @ ..] => ("global".to_owned(), rest),
            [s @ ("zones" | "regions"), v, rest @ ..] => (format!("{s}/{v}"), rest),
            _ => return None,
        };
        let (kind, name, verb) = match rest {
            [k] => (*k, None, None),
            [k, n] => (*k, Some((*n).to_owned()), None),
            [k, n, v] => (*k, Some((*n).to_owned()), Some((*v).to_owned())),
            _ => return None,
        };
        let allowed = matches!(
            (scope.split('/').next(), kind),
            (Some("zones"), "instances" | "instanceGroups" | "operations")
                | (
                    Some("regions"),
                    "subnetworks" | "backendServices" | "operations"
                )
                | (
                    Some("global"),
                    "networks" | "firewalls" | "instanceTemplates" | "healthChecks" | "operations"
                )
        );
        allowed.then(|| Self {
            collection: format!("{project}/{scope}/{kind}"),
            project,
            scope,
            kind: kind.to_owned(),
            name,
            verb,
        })
    }

    pub(crate) fn path(&self) -> String {
        match &self.name {
            Some(name) => format!("{}/{name}", self.collection),
            None => self.collection.clone(),
        }
    }
}

/// The `defaultServiceAccount` of every fake project.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "123456789012-compute@developer.gserviceaccount.com";

/// An answer: HTTP status and JSON body.
pub type Reply = (u16, Value);

#[derive(Debug)]
struct Operation {
    body: Value,
    polls_left: u32,
}

/// Everything that exists, shared by every listener.
#[derive(Debug, Default)]
pub struct Compute {
    pub(crate) resources: BTreeMap<String, Value>,
    operations: HashMap<String, Operation>,
    request_ids: HashMap<(String, String), String>,
    next_id: u64,
    /// The most items a list page holds, whatever `maxResults` asks ([`Compute::set_page_size`]).
    pub(crate) page_size: Option<usize>,
    /// How many polls an operation takes to reach `DONE` (`PENDING` → `RUNNING` → `DONE`).
    pub polls_to_done: u32,
    /// The URL prefix of self links, e.g. `http://127.0.0.1:1234/compute/v1/`.
    pub link_prefix: String,
    /// Every mutating request as `METHOD path`, in order.
    pub log: Vec<String>,
    /// Members of each instance group (group path → instance paths).
    pub(crate) members: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Whether each instance's workload answers on its health-checked port (instance path
    /// → answers); unset is "no probe result yet".
    pub(crate) answers: HashMap<String, bool>,
}

impl Compute {
    /// The names of every resource, one entry each.
    pub fn names(&self) -> Vec<String> {
        self.resources
            .values()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// A stored resource by path below `/compute/v1/`.
    pub fn resource(&self, path: &str) -> Option<Value> {
        self.resources.get(path.trim_matches('/')).cloned()
    }

    /// Stores a resource as if it had always existed (e.g. the `default` network).
    pub fn seed(&mut self, path: &str, mut body: Value) {
        self.next_id += 1;
        body["id"] = json!(self.next_id.to_string());
        body["selfLink"] = json!(format!("{}{path}", self.link_prefix));
        self.resources.insert(path.to_owned(), body);
    }

    /// `GET projects/<p>`: the project, with the service account VMs run as by default.
    pub fn project(&self, path: &str) -> Reply {
        match path
            .trim_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["projects", p] => (
                200,
                json!({
                    "kind": "compute#project",
                    "name": p,
                    "id": "123456789012",
                    "selfLink": format!("{}projects/{p}", self.link_prefix),
                    "defaultServiceAccount": DEFAULT_SERVICE_ACCOUNT,
                }),
            ),
            _ => errors::not_found(path),
        }
    }

    /// Answers one API call; `operation_error` fails the operation of an insert.
    pub fn handle(
        &mut self,
        method: &str,
        target: &Target,
        query: &HashMap<String, String>,
        body: Option<Value>,
        operation_error: Option<crate::InjectedError>,
    ) -> Reply {
        if method != "GET" {
            let verb = target
                .verb
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default();
            self.log.push(format!("{method} {}{verb}", target.path()));
        }
        match (method, target.kind.as_str(), &target.name, &target.verb) {
            ("GET", "operations", Some(name), None) => self.poll(target, name),
            ("GET", _, Some(_), None) => self.get(target),
            ("GET", _, None, None) => self.list(target, query),
            ("POST", "operations", _, _) => errors::invalid("operations are read-only here"),
            ("POST", _, None, None) => self.insert(target, query, body, operation_error),
            ("POST", "instances", Some(_), Some(verb)) => self.set(target, verb, body),
            ("POST", "instanceGroups", Some(_), Some(verb)) => {
                self.instance_group_verb(target, verb, query, body)
            }
            ("POST", "backendServices", Some(_), Some(verb)) if verb == "getHealth" => {
                self.get_health(target, body)
            }
            ("DELETE", _, Some(_), None) => self.delete(target, query),
            ("PATCH", "healthChecks" | "firewalls", Some(_), None) => self.patch(target, body),
            _ => errors::invalid("unsupported method or path"),
        }
    }

    fn get(&mut self, target: &Target) -> Reply {
        let path = target.path();
        match self.resources.get_mut(&path) {
            Some(resource) => {
                // Instances boot as they are looked at: PROVISIONING → STAGING → RUNNING.
                if target.kind == "instances" {
                    let next = match resource["status"].as_str() {
                        Some("PROVISIONING") => "STAGING",
                        _ => "RUNNING",
                    };
                    resource["status"] = json!(next);
                }
                (200, resource.clone())
            }
            None => errors::not_found(&path),
        }
    }

    /// One page of a collection, in name order (see [`crate::paging`]).
    fn list(&self, target: &Target, query: &HashMap<String, String>) -> Reply {
        let prefix = format!("{}/", target.collection);
        let items = self
            .resources
            .iter()
            .filter_map(|(path, r)| Some((path.strip_prefix(&prefix)?, r)))
            .filter(|(name, _)| !name.contains('/'))
            .map(|(name, r)| (name.to_owned(), r.clone()));
        let page = match self.page(&target.collection, items, query) {
            Ok(page) => page,
            Err(reply) => return reply,
        };
        // Compute Engine's own lists show `items` even when empty.
        let reply = json!({
            "kind": format!("compute#{}List", singular(&target.kind)),
            "items": [],
        });
        (200, page.into_reply(reply, "items"))
    }

    fn insert(
        &mut self,
        target: &Target,
        query: &HashMap<String, String>,
        body: Option<Value>,
        operation_error: Option<crate::InjectedError>,
    ) -> Reply {
        let request_id = query.get("requestId").cloned();
        if let Some(id) = &request_id {
            if !is_uuid(id) {
                return errors::invalid("Invalid value for field 'requestId': must be a UUID");
            }
            if let Some(op) = self.request_ids.get(&(target.project.clone(), id.clone()))
                && let Some(operation) = self.operations.get(&format!(
                    "{}/{}/operations/{op}",
                    target.project, target.scope
                ))
            {
                return (200, operation.body.clone());
            }
        }
        let Some(mut body) = body.filter(Value::is_object) else {
            return errors::invalid("Required field 'resource' not specified");
        };
        if target.kind == "instances"
            && let Some(template) = query.get("sourceInstanceTemplate")
        {
            match self.instance_from_template(target, template, body) {
                Ok(merged) => body = merged,
                Err(reply) => return reply,
            }
        }
        let Some(name) = body["name"].as_str().map(str::to_owned) else {
            return errors::invalid("Required field 'resource.name' not specified");
        };
        if !valid_name(&name) {
            return errors::invalid(&format!(
                "Invalid value for field 'resource.name': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
            ));
        }
        if target.kind == "firewalls"
            && let Err(message) = check_firewall(&body)
        {
            return errors::invalid(&message);
        }
        let path = format!("{}/{name}", target.collection);
        if self.resources.contains_key(&path) {
            return errors::already_exists(&path);
        }
        if let Err(reply) = self.check_references(target, &body) {
            return reply;
        }
        self.next_id += 1;
        let id = self.next_id.to_string();
        let failed = operation_error.is_some();
        if !failed {
            body["id"] = json!(id);
            body["selfLink"] = json!(format!("{}{path}", self.link_prefix));
            body["kind"] = json!(format!("compute#{}", singular(&target.kind)));
            body["creationTimestamp"] = json!("2026-01-01T00:00:00.000-00:00");
            if target.kind == "instances" {
                body["status"] = json!("PROVISIONING");
                body["labelFingerprint"] = json!(format!("lf-{id}"));
                body["metadata"]["fingerprint"] = json!(format!("mf-{id}"));
                body["tags"]["fingerprint"] = json!(format!("tf-{id}"));
                self.assign_addresses(&mut body);
            }
            if target.kind == "networks" {
                body["subnetworks"] = json!([]);
            }
            if target.kind == "instanceGroups" {
                body["size"] = json!(0);
                body["zone"] = json!(format!(
                    "{}{}/{}",
                    self.link_prefix, target.project, target.scope
                ));
            }
            self.resources.insert(path.clone(), body);
        }
        let reply = self.operation(target, "insert", &path, &id, operation_error);
        if let Some(request_id) = request_id
            && let Some(name) = reply.1["name"].as_str()
        {
            self.request_ids
                .insert((target.project.clone(), request_id), name.to_owned());
        }
        reply
    }

    fn delete(&mut self, target: &Target, query: &HashMap<String, String>) -> Reply {
        if let Some(id) = query.get("requestId")
            && let Some(op) = self.request_ids.get(&(target.project.clone(), id.clone()))
            && let Some(operation) = self.operations.get(&format!(
                "{}/{}/operations/{op}",
                target.project, target.scope
            ))
        {
            return (200, operation.body.clone());
        }
        let path = target.path();
        let Some(resource) = self.resources.get(&path) else {
            return errors::not_found(&path);
        };
        if matches!(target.kind.as_str(), "networks" | "subnetworks") {
            let link = resource["selfLink"].clone();
            let field = if target.kind == "networks" {
                "network"
            } else {
                "subnetwork"
            };
            let in_use = self.resources.values().any(|r| {
                r[field] == link
                    || [
                        &r["networkInterfaces"],
                        &r["properties"]["networkInterfaces"],
                    ]
                    .iter()
                    .any(|n| {
                        n.as_array()
                            .is_some_and(|n| n.iter().any(|i| i[field] == link))
                    })
            });
            if in_use {
                let kind = singular(&target.kind);
                return (
                    400,
                    errors::body(
                        400,
                        "resourceInUseByAnotherResource",
                        &format!(
                            "The {kind} resource '{path}' is already being used by another resource"
                        ),
                    ),
                );
            }
        }
        if let Some(reply) = self.in_use_by_backend_service(target, &path) {
            return reply;
        }
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        self.resources.remove(&path);
        self.forget(target, &path);
        let reply = self.operation(target, "delete", &path, &id, None);
        if let Some(request_id) = query.get("requestId")
            && let Some(name) = reply.1["name"].as_str()
        {
            self.request_ids.insert(
                (target.project.clone(), request_id.clone()),
                name.to_owned(),
            );
        }
        reply
    }

    /// `PATCH` of a health check or firewall rule: the body's fields replace the stored
    /// ones, the name cannot change.
    fn patch(&mut self, target: &Target, body: Option<Value>) -> Reply {
        let path = target.path();
        let Some(fields) = body.as_ref().and_then(Value::as_object).cloned() else {
            return errors::invalid("Required field 'resource' not specified");
        };
        let Some(resource) = self.resources.get_mut(&path) else {
            return errors::not_found(&path);
        };
        if fields.get("name").is_some_and(|n| *n != resource["name"]) {
            return errors::invalid("Invalid value for field 'resource.name': it cannot change");
        }
        for (key, value) in fields {
            resource[key.as_str()] = value;
        }
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        self.operation(target, "patch", &path, &id, None)
    }

    fn set(&mut self, target: &Target, verb: &str, body: Option<Value>) -> Reply {
        let path = target.path();
        let body = body.unwrap_or(Value::Null);
        let Some(resource) = self.resources.get_mut(&path) else {
            return errors::not_found(&path);
        };
        if verb == "reset" {
            // A hard reset: the guest boots again (and re-reads its metadata).
            resource["status"] = json!("STAGING");
            let id = resource["id"].as_str().unwrap_or_default().to_owned();
            return self.operation(target, verb, &path, &id, None);
        }
        let fingerprint_field = match verb {
            "setMetadata" | "setTags" => "fingerprint",
            "setLabels" => "labelFingerprint",
            _ => return errors::invalid("unsupported custom verb"),
        };
        if verb == "setTags"
            && let Err(message) = check_tags(&body["items"])
        {
            return errors::invalid(&message);
        }
        let current = match verb {
            "setMetadata" => resource["metadata"]["fingerprint"].clone(),
            "setTags" => resource["tags"]["fingerprint"].clone(),
            _ => resource["labelFingerprint"].clone(),
        };
        if body[fingerprint_field] != current {
            return (
                412,
                errors::body(
                    412,
                    "conditionNotMet",
                    &format!(
                        "Supplied fingerprint does not match current {fingerprint_field} of '{path}'"
                    ),
                ),
            );
        }
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        self.next_id += 1;
        let fresh = format!("fp-{}", self.next_id);
        match verb {
            "setMetadata" => {
                let mut metadata = body.clone();
                metadata["fingerprint"] = json!(fresh);
                resource["metadata"] = metadata;
            }
            "setTags" => {
                resource["tags"] = json!({ "items": body["items"], "fingerprint": fresh });
            }
            _ => {
                resource["labels"] = body["labels"].clone();
                resource["labelFingerprint"] = json!(fresh);
            }
        }
        self.operation(target, verb, &path, &id, None)
    }

    /// An instance body from template `link` overridden by `body`, zonal references
    /// expanded for the target zone.
    fn instance_from_template(
        &self,
        target: &Target,
        link: &str,
        body: Value,
    ) -> Result<Value, Reply> {
        let path = self.path_of(link, &target.project);
        let Some(template) = self.resources.get(&path) else {
            return Err(errors::not_found(&path));
        };
        let mut merged = template["properties"].clone();
        if !merged.is_object() {
            merged = json!({});
        }
        if let Some(fields) = body.as_object() {
            for (key, value) in fields {
                merged[key.as_str()] = value.clone();
            }
        }
        let zone = target.scope.clone();
        if let Some(machine) = merged["machineType"].as_str().filter(|m| !m.contains('/')) {
            merged["machineType"] = json!(format!("{zone}/machineTypes/{machine}"));
        }
        for disk in merged["disks"].as_array_mut().into_iter().flatten() {
            if let Some(kind) = disk["initializeParams"]["diskType"]
                .as_str()
                .filter(|d| !d.contains('/'))
            {
                disk["initializeParams"]["diskType"] = json!(format!("{zone}/diskTypes/{kind}"));
            }
        }
        let mut items = merged["metadata"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        items.retain(|i| i["key"] != "instance-template");
        items.push(json!({ "key": "instance-template", "value": template["selfLink"] }));
        merged["metadata"]["items"] = json!(items);
        Ok(merged)
    }

    /// References a new resource makes must exist (the network of a subnetwork, firewall
    /// or instance interface; the subnetwork of an interface).
    fn check_references(&self, target: &Target, body: &Value) -> Result<(), Reply> {
        let mut links: Vec<&str> = Vec::new();
        if let Some(network) = body["network"].as_str() {
            links.push(network);
        }
        // A backend service's health checks and backend groups.
        for check in body["healthChecks"].as_array().into_iter().flatten() {
            links.extend(check.as_str());
        }
        for backend in body["backends"].as_array().into_iter().flatten() {
            links.extend(backend["group"].as_str());
        }
        let nics = body["networkInterfaces"]
            .as_array()
            .or_else(|| body["properties"]["networkInterfaces"].as_array());
        for nic in nics.into_iter().flatten() {
            links.extend(nic["network"].as_str());
            links.extend(nic["subnetwork"].as_str());
        }
        for link in links {
            let path = self.path_of(link, &target.project);
            if !self.resources.contains_key(&path) {
                return Err(errors::not_found(&path));
            }
        }
        Ok(())
    }

    /// A reference (full URL, partial path or `global/networks/x`) as a stored path.
    pub(crate) fn path_of(&self, link: &str, project: &str) -> String {
        let link = link.strip_prefix(&self.link_prefix).unwrap_or(link);
        let link = link
            .split_once("/compute/v1/")
            .map_or(link, |(_, rest)| rest);
        if link.starts_with("projects/") {
            link.to_owned()
        } else {
            format!("{project}/{link}")
        }
    }

    /// Gives each interface its requested `networkIP`, or the next free one of its
    /// subnetwork.
    fn assign_addresses(&mut self, body: &mut Value) {
        let Some(nics) = body["networkInterfaces"].as_array_mut() else {
            return;
        };
        for (i, nic) in nics.iter_mut().enumerate() {
            nic["name"] = json!(format!("nic{i}"));
            if nic["networkIP"].is_null() {
                nic["networkIP"] = json!(format!(
                    "10.{}.{}.{}",
                    128 + i,
                    self.next_id / 250 % 250,
                    self.next_id % 250 + 2
                ));
            }
        }
    }

    pub(crate) fn operation(
        &mut self,
        target: &Target,
        kind: &str,
        path: &str,
        target_id: &str,
        error: Option<crate::InjectedError>,
    ) -> Reply {
        self.next_id += 1;
        let name = format!(
            "operation-{}-{:08x}",
            self.next_id,
            self.next_id.wrapping_mul(2_654_435_761)
        );
        let op_path = format!("{}/{}/operations/{name}", target.project, target.scope);
        let mut body = json!({
            "kind": "compute#operation",
            "id": self.next_id.to_string(),
            "name": name,
            "operationType": kind,
            "targetLink": format!("{}{path}", self.link_prefix),
            "targetId": target_id,
            "status": if self.polls_to_done == 0 { "DONE" } else { "PENDING" },
            "progress": 0,
            "selfLink": format!("{}{op_path}", self.link_prefix),
        });
        if let Some((scope, value)) = target.scope.split_once('/') {
            let key = if scope == "zones" { "zone" } else { "region" };
            body[key] = json!(format!(
                "{}{}/{scope}/{value}",
                self.link_prefix, target.project
            ));
        }
        if let Some(error) = error {
            body["error"] = json!({ "errors": [{
                "code": error.reason.to_uppercase_snake(),
                "message": error.message,
            }]});
            body["httpErrorStatusCode"] = json!(error.code);
        }
        self.operations.insert(
            op_path,
            Operation {
                body: body.clone(),
                polls_left: self.polls_to_done,
            },
        );
        (200, body)
    }

    fn poll(&mut self, target: &Target, name: &str) -> Reply {
        let path = format!("{}/{}/operations/{name}", target.project, target.scope);
        let Some(operation) = self.operations.get_mut(&path) else {
            return errors::not_found(&path);
        };
        operation.polls_left = operation.polls_left.saturating_sub(1);
        let status = match operation.polls_left {
            0 => "DONE",
            _ => "RUNNING",
        };
        operation.body["status"] = json!(status);
        operation.body["progress"] = json!(if status == "DONE" { 100 } else { 50 });
        (200, operation.body.clone())
    }
}

trait UpperSnake {
    fn to_uppercase_snake(&self) -> String;
}

impl UpperSnake for String {
    /// `quotaExceeded` → `QUOTA_EXCEEDED`, as operation errors spell their codes.
    fn to_uppercase_snake(&self) -> String {
        let mut out = String::new();
        for c in self.chars() {
            if c.is_ascii_uppercase() && !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }
}

pub(crate) fn singular(kind: &str) -> &str {
    match kind {
        "instances" => "instance",
        "networks" => "network",
        "subnetworks" => "subnetwork",
        "firewalls" => "firewall",
        "instanceTemplates" => "instanceTemplate",
        "healthChecks" => "healthCheck",
        "instanceGroups" => "instanceGroup",
        "backendServices" => "backendService",
        _ => "operation",
    }
}

/// GCE resource names: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Compute Engine's checks of a firewall rule body: exactly one of `allowed` and `denied`,
/// a direction of `INGRESS` (the default) or `EGRESS`, no source filters on an egress
/// rule, a priority from 0 to 65535, valid target tags.
fn check_firewall(body: &Value) -> Result<(), String> {
    let listed = |field: &str| body[field].as_array().is_some_and(|a| !a.is_empty());
    if listed("allowed") == listed("denied") {
        return Err(
            "Invalid value for field 'resource': exactly one of 'allowed' and 'denied' must be set"
                .to_owned(),
        );
    }
    match body["direction"].as_str().unwrap_or("INGRESS") {
        "INGRESS" => {}
        "EGRESS" => {
            if listed("sourceRanges") || listed("sourceTags") {
                return Err("Invalid value for field 'resource.sourceRanges': source filters are not allowed on an EGRESS rule".to_owned());
            }
        }
        other => {
            return Err(format!(
                "Invalid value for field 'resource.direction': '{other}'"
            ));
        }
    }
    if let Some(priority) = body.get("priority")
        && priority.as_u64().is_none_or(|p| p > 65535)
    {
        return Err(format!(
            "Invalid value for field 'resource.priority': '{priority}'. Must be between 0 and 65535"
        ));
    }
    if body.get("targetTags").is_some() {
        check_tags(&body["targetTags"])?;
    }
    Ok(())
}

/// Network tags: at most 64, each a lowercase RFC 1035 label of at most 63 characters.
fn check_tags(items: &Value) -> Result<(), String> {
    let items = items.as_array().cloned().unwrap_or_default();
    if items.len() > 64 {
        return Err(format!(
            "Invalid value for field 'resource.tags.items': {} tags; an instance can have at most 64",
            items.len()
        ));
    }
    for (i, tag) in items.iter().enumerate() {
        if !tag.as_str().is_some_and(valid_name) {
            return Err(format!(
                "Invalid value for field 'resource.tags.items[{i}]': {tag}. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let t = Target::parse("projects/p/zones/z/instances/i/setLabels").expect("parses");
        assert_eq!(t.collection, "projects/p/zones/z/instances");
        assert_eq!(t.verb.as_deref(), Some("setLabels"));
        assert!(Target::parse("projects/p/zones/z/networks").is_none());
        assert!(Target::parse("nope").is_none());
    }

    #[test]
    fn firewall_rules_and_tags_are_checked_as_compute_engine_does() {
        let mut c = Compute::default();
        let t = Target::parse("projects/p/global/firewalls").expect("parses");
        let q = HashMap::new();
        let mut insert = |body: Value| c.handle("POST", &t, &q, Some(body), None);
        let both = insert(
            json!({ "name": "a", "allowed": [{ "IPProtocol": "all" }], "denied": [{ "IPProtocol": "all" }] }),
        );
        assert_eq!(both.0, 400);
        assert!(both.1.to_string().contains("exactly one of"), "{}", both.1);
        let egress = insert(
            json!({ "name": "b", "direction": "EGRESS", "denied": [{ "IPProtocol": "all" }], "sourceRanges": ["0.0.0.0/0"] }),
        );
        assert_eq!(egress.0, 400);
        let priority =
            insert(json!({ "name": "c", "allowed": [{ "IPProtocol": "all" }], "priority": 70000 }));
        assert_eq!(priority.0, 400);
        let tag = insert(
            json!({ "name": "d", "allowed": [{ "IPProtocol": "all" }], "targetTags": ["Not_A_Tag"] }),
        );
        assert_eq!(tag.0, 400);
        let fine = insert(
            json!({ "name": "e", "direction": "EGRESS", "priority": 2000, "denied": [{ "IPProtocol": "all" }], "destinationRanges": ["0.0.0.0/0"], "targetTags": ["datum-np-x"] }),
        );
        assert_eq!(fine.0, 200, "{}", fine.1);
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        assert!(check_tags(&json!(many)).is_err());
        assert!(check_tags(&json!(many[..64])).is_ok());
    }

    #[test]
    fn insert_then_duplicate_conflicts_but_same_request_id_replays() {
        let mut c = Compute {
            polls_to_done: 2,
            ..Compute::default()
        };
        let t = Target::parse("projects/p/global/networks").expect("parses");
        let rid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let q: HashMap<_, _> = [("requestId".to_owned(), rid.to_owned())].into();
        let first = c.handle("POST", &t, &q, Some(json!({"name": "n1"})), None);
        assert_eq!(first.0, 200);
        let again = c.handle("POST", &t, &q, Some(json!({"name": "n1"})), None);
        assert_eq!(again.1["name"], first.1["name"]);
        let dup = c.handle(
            "POST",
            &t,
            &HashMap::new(),
            Some(json!({"name": "n1"})),
            None,
        );
        assert_eq!(dup.0, 409);
        assert_eq!(dup.1["error"]["errors"][0]["reason"], "alreadyExists");
        assert_eq!(c.names(), vec!["n1".to_owned()]);
    }
}
