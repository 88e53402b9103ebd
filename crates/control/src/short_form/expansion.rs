//! The canonical `compute.datumapis.com` Workload a short-form Workload expands into (the
//! table is in [`datum_api::short_form`]'s module doc), and the status mirrored back.
//!
//! `placement.providers`/`regions` cannot be a label selector (a Location's provider is the
//! key of `spec.provider`, not a label), so the expansion resolves them now: one placement
//! `default` naming, in `locations`, every Location whose provider key is listed and whose
//! region (`topology.datum.net/region`, or the GCP provider's `region`) is listed when
//! `regions` is set. Ready-ness is the placement controller's to judge. The controller
//! re-expands whenever a Location changes. When nothing matches, the placement gets a
//! selector naming what was asked for (`workload.datum.net/provider In (...)`), which
//! selects no Location, so the canonical Workload reports `NoMatchingLocation` in those
//! words.

use datum_api::compute::{self, DEFAULT_DISK_TYPE, annotations, conditions::AVAILABLE};
use datum_api::networking::Location;
use datum_api::networking::well_known::topology;
use datum_api::short_form;
use kube::ResourceExt;
use serde_json::{Value, json};

/// The instance type used when the short form names none.
pub const DEFAULT_INSTANCE_TYPE: &str = "datumcloud/d1-standard-2";
/// The (unused by Locations) label key a no-match placement selector names providers by.
pub const PROVIDER_SELECTOR_KEY: &str = "workload.datum.net/provider";

#[derive(Debug, thiserror::Error)]
pub enum ExpansionError {
    #[error("the expanded Workload spec is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// The Locations `placement` selects, sorted by name.
pub fn matching_locations(
    placement: &short_form::Placement,
    locations: &[Location],
) -> Vec<String> {
    let mut names: Vec<String> = locations
        .iter()
        .filter(|location| location.metadata.deletion_timestamp.is_none())
        .filter(|location| {
            location
                .provider_name()
                .is_some_and(|p| placement.providers.iter().any(|w| w == p))
        })
        .filter(|location| match &placement.regions {
            None => true,
            Some(regions) => region_of(location).is_some_and(|r| regions.contains(&r)),
        })
        .map(|location| location.name_any())
        .collect();
    names.sort();
    names
}

fn region_of(location: &Location) -> Option<String> {
    location
        .spec
        .topology
        .get(topology::REGION)
        .cloned()
        .or_else(|| location.gcp().map(|gcp| gcp.region.clone()))
}

/// The canonical Workload spec for `short`, given the Locations that exist.
pub fn canonical_spec(
    short: &short_form::Workload,
    locations: &[Location],
) -> Result<compute::WorkloadSpec, ExpansionError> {
    let template = &short.spec.template;
    let spec = &template.spec;
    let mut metadata = json!({});
    if let Some(m) = &template.metadata {
        if let Some(labels) = &m.labels {
            metadata["labels"] = json!(labels);
        }
        if let Some(annotations) = &m.annotations {
            metadata["annotations"] = json!(annotations);
        }
    }
    let mut runtime = json!({ "resources": { "instanceType": spec.instance_type.clone().unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned()) } });
    let mut instance = json!({});
    if let Some(containers) = &spec.containers {
        let containers: Vec<Value> = containers
            .iter()
            .map(|c| {
                let mut container = json!({ "name": c.name, "image": c.image });
                if let Some(command) = &c.command {
                    container["command"] = json!(command);
                }
                if let Some(args) = &c.args {
                    container["args"] = json!(args);
                }
                if let Some(env) = &c.env {
                    container["env"] = json!(env);
                }
                if let Some(ports) = &c.ports {
                    container["ports"] = ports_json(ports);
                }
                container
            })
            .collect();
        runtime["sandbox"] = json!({ "containers": containers });
    }
    if let Some(vm) = &spec.virtual_machine {
        let mut machine = json!({ "volumeAttachments": [{ "name": "boot" }] });
        if let Some(ports) = &vm.ports {
            machine["ports"] = ports_json(ports);
        }
        runtime["virtualMachine"] = machine;
        instance["volumes"] = json!([{ "name": "boot", "disk": { "template": { "spec": {
            "type": DEFAULT_DISK_TYPE, "populator": { "image": { "name": vm.image } } } } } }]);
        if !vm.ssh_keys.is_empty() {
            let keys: Vec<String> = vm
                .ssh_keys
                .iter()
                .map(|k| format!("{}:{}", k.username, k.public_key))
                .collect();
            metadata["annotations"][annotations::SSH_KEYS] = json!(keys.join("\n"));
        }
    }
    instance["runtime"] = runtime;
    instance["networkInterfaces"] = spec
        .networks
        .iter()
        .map(|n| json!({ "network": { "name": n } }))
        .collect();
    let placement = &short.spec.placement;
    let mut default =
        json!({ "name": "default", "scaleSettings": { "minReplicas": short.spec.replicas } });
    let matching = matching_locations(placement, locations);
    if matching.is_empty() {
        let mut expressions = vec![
            json!({ "key": PROVIDER_SELECTOR_KEY, "operator": "In", "values": placement.providers }),
        ];
        if let Some(regions) = &placement.regions {
            expressions
                .push(json!({ "key": topology::REGION, "operator": "In", "values": regions }));
        }
        default["locationSelector"] = json!({ "matchExpressions": expressions });
    } else {
        default["locations"] = matching
            .iter()
            .map(|name| json!({ "name": name }))
            .collect();
    }
    let mut template_json = json!({ "spec": instance });
    if metadata.as_object().is_some_and(|m| !m.is_empty()) {
        template_json["metadata"] = metadata;
    }
    Ok(serde_json::from_value(
        json!({ "template": template_json, "placements": [default] }),
    )?)
}

fn ports_json(ports: &[short_form::Port]) -> Value {
    ports
        .iter()
        .map(|p| json!({ "name": p.name, "port": p.port, "protocol": serde_json::to_value(p.protocol).unwrap_or(Value::Null) }))
        .collect()
}

/// The short form's status, mirrored from its canonical Workload.
pub fn mirrored_status(
    short: &short_form::Workload,
    canonical: &compute::Workload,
) -> short_form::WorkloadStatus {
    let previous = short.status.clone().unwrap_or_default();
    let status = canonical.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.clone();
    if let Some(available) = status
        .conditions
        .as_deref()
        .and_then(|c| datum_api::conditions::get(c, AVAILABLE))
    {
        let mut copy = available.clone();
        copy.observed_generation = short.metadata.generation;
        datum_api::conditions::set(&mut conditions, copy);
    }
    short_form::WorkloadStatus {
        observed_generation: short.metadata.generation,
        workload_ref: Some(short_form::WorkloadReference {
            name: canonical.name_any(),
        }),
        replicas: status.replicas,
        desired_replicas: status.desired_replicas,
        updated_replicas: status.updated_replicas,
        ready_replicas: status.ready_replicas,
        conditions,
    }
}
