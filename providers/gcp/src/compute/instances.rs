//! Instance → Compute instance `datum-<uid>` in the Location's zone.
//!
//! - machine type from `machineTypeMap[spec.runtime.resources.instanceType]`;
//! - disks: the boot disk from the volume whose disk is populated from an image
//!   (`imageMap`), extra disks blank with their disk type and size; a sandbox boots the COS
//!   image `datumcloud/cos-stable-117-18613-0-79` from `imageMap`;
//! - metadata `user-data` from [`crate::cloud_init`];
//! - one NIC per interface, with the IPAM-allocated `networkIP`: the VPC of the interface's NetworkContext
//!   (`<network>-<location>`) and its subnetwork in the region; else a project network of
//!   the interface's network name (a project's `default`);
//! - network tag `datum-<uid>` (firewall target), labels linking back to the Datum object
//!   and a `datum-spec-hash` label that says whether the instance is up to date.
//!
//! Update rewrites metadata and labels (fingerprint-checked) and resets the instance when
//! its `user-data` changed, since cloud-init reads it at boot; machine type and disks are
//! fixed at create.

use datum_api::compute::{Instance, InstanceSpec};
use datum_api::networking::names;
use datum_provider::{
    ExternalClient, ExternalResource, InstanceLive, InterfaceAddresses, Observation, PlatformError,
    PowerState,
};
use serde_json::{Value, json};

use crate::cloud_init;
use crate::compute::{Compute, firewalls, label_value, spec_hash};
use crate::location::Placement;

/// The image key sandboxes boot.
pub const COS_IMAGE: &str = "datumcloud/cos-stable-117-18613-0-79";

fn invalid(message: String) -> PlatformError {
    PlatformError {
        reason: "InvalidSpec".to_owned(),
        message,
    }
}

fn location_error(e: crate::location::Error) -> PlatformError {
    PlatformError {
        reason: "LocationInvalid".to_owned(),
        message: e.to_string(),
    }
}

/// GiB from a quantity such as `10Gi`, `20G` or `1Ti`.
fn gib(quantity: &str) -> Option<i64> {
    let (number, unit) = quantity.split_at(
        quantity
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(quantity.len()),
    );
    let n: i64 = number.parse().ok()?;
    match unit {
        "Gi" | "G" => Some(n),
        "Ti" | "T" => Some(n.saturating_mul(1024)),
        "Mi" | "M" => Some((n / 1024).max(1)),
        _ => None,
    }
}

/// What the instance body is built from, besides the spec.
pub struct Target<'a> {
    /// Placement.
    pub project: &'a str,
    /// The zone.
    pub zone: &'a str,
    /// `datum-<uid>`.
    pub external_name: &'a str,
    /// Object identity, for labels.
    pub namespace: &'a str,
    /// Object name.
    pub name: &'a str,
    /// Object UID.
    pub uid: &'a str,
}

impl Compute {
    /// The metadata, labels and disks of `spec` (no NICs).
    pub fn instance_body(
        &self,
        t: &Target<'_>,
        spec: &InstanceSpec,
    ) -> Result<Value, PlatformError> {
        let instance_type = spec
            .runtime
            .resources
            .instance_type
            .as_deref()
            .unwrap_or("datumcloud/d1-standard-2");
        let machine_type = self
            .settings
            .machine_types
            .get(instance_type)
            .ok_or_else(|| {
                invalid(format!(
                    "instance type {instance_type:?} is not in the ProviderConfig's machineTypeMap"
                ))
            })?;
        let image = |name: &str| {
            self.settings.images.get(name).cloned().ok_or_else(|| {
                invalid(format!(
                    "image {name:?} is not in the ProviderConfig's imageMap"
                ))
            })
        };
        let zone = t.zone;
        let mut disks = Vec::new();
        let user_data = if let Some(sandbox) = &spec.runtime.sandbox {
            disks.push(json!({
                "boot": true, "autoDelete": true, "deviceName": "datum-boot",
                "initializeParams": { "sourceImage": image(COS_IMAGE)?, "diskType": format!("zones/{zone}/diskTypes/pd-standard") },
            }));
            cloud_init::sandbox(sandbox)
        } else {
            cloud_init::virtual_machine()
        };
        for (i, volume) in spec.volumes.iter().flatten().enumerate() {
            let Some(disk) = &volume.disk else { continue };
            let kind = if disk.template.spec.type_.is_empty() {
                "pd-standard"
            } else {
                disk.template.spec.type_.as_str()
            };
            let size = disk
                .template
                .spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| gib(&q.0));
            let mut params = json!({ "diskType": format!("zones/{zone}/diskTypes/{kind}") });
            if let Some(size) = size {
                params["diskSizeGb"] = json!(size.to_string());
            }
            let populated_image = disk
                .template
                .spec
                .populator
                .as_ref()
                .and_then(|p| p.image.as_ref());
            let boot = populated_image.is_some() && spec.runtime.sandbox.is_none();
            if let Some(populator) = populated_image {
                params["sourceImage"] = json!(image(&populator.name)?);
            }
            params["labels"] = json!({ "volume_name": label_value(&volume.name) });
            disks.push(json!({
                "boot": boot,
                "autoDelete": true,
                "deviceName": disk.device_name.clone().unwrap_or_else(|| format!("volume-{i}")),
                "initializeParams": params,
            }));
        }
        // The boot disk must come first.
        disks.sort_by_key(|d| !d["boot"].as_bool().unwrap_or(false));
        if disks.first().is_none_or(|d| d["boot"] != true) {
            return Err(invalid(
                "no boot disk: a VM needs a disk volume populated from an image".to_owned(),
            ));
        }
        let hash = spec_hash(&serde_json::to_value(spec).unwrap_or_default());
        Ok(json!({
            "name": t.external_name,
            "description": format!("Datum Instance {}/{}", t.namespace, t.name),
            "machineType": format!("zones/{zone}/machineTypes/{machine_type}"),
            "disks": disks,
            "tags": { "items": [t.external_name] },
            "labels": {
                "datum-namespace": label_value(t.namespace),
                "datum-name": label_value(t.name),
                "datum-uid": label_value(t.uid),
                "datum-spec-hash": hash,
            },
            "metadata": { "items": [{ "key": "user-data", "value": user_data }] },
            "project": t.project,
        }))
    }

    /// NICs and firewall rules for each interface.
    async fn interfaces(
        &self,
        placement: &Placement,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(Vec<Value>, Vec<Value>), PlatformError> {
        let location = r
            .spec
            .location
            .as_ref()
            .map(|l| l.name.clone())
            .unwrap_or_default();
        let region = placement.region().map_err(location_error)?;
        let mut nics = Vec::new();
        let mut rules = Vec::new();
        for (i, interface) in r.spec.network_interfaces.iter().enumerate() {
            let context = names::network_context(&interface.network.name, &location);
            let network = match self.find_network(&placement.project, r.namespace, &context).await? {
                Some(n) => n,
                None => self
                    .get(&format!("projects/{}/global/networks/{}", placement.project, interface.network.name))
                    .await
                    .map_err(|e| e.to_platform("get of network"))?
                    .ok_or_else(|| PlatformError {
                        reason: "NetworkNotReady".to_owned(),
                        message: format!(
                            "networkInterfaces[{i}]: no VPC network for NetworkContext {context} nor a project network {:?} yet",
                            interface.network.name
                        ),
                    })?,
            };
            let link = network["selfLink"].as_str().unwrap_or_default().to_owned();
            let mut nic = json!({ "network": link });
            // The address our IPAM allocated, not one Compute Engine picks.
            if let Some(ip) = r.assigned.get(i).and_then(|a| a.network_ip.as_deref()) {
                nic["networkIP"] = json!(ip);
            }
            if network["autoCreateSubnetworks"] != true {
                let subnetworks = self
                    .list(&format!(
                        "projects/{}/regions/{region}/subnetworks",
                        placement.project
                    ))
                    .await
                    .map_err(|e| e.to_platform("list of subnetworks"))?;
                let subnetwork = subnetworks
                    .into_iter()
                    .filter(|s| s["network"] == link.as_str())
                    .min_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()))
                    .ok_or_else(|| PlatformError {
                        reason: "NetworkNotReady".to_owned(),
                        message: format!("networkInterfaces[{i}]: the VPC of {context} has no subnetwork in {region} yet"),
                    })?;
                nic["subnetwork"] = subnetwork["selfLink"].clone();
            }
            rules.extend(firewalls::rules(&r.external_name, i, interface, &link)?);
            nics.push(nic);
        }
        Ok((nics, rules))
    }

    fn instance_path(&self, r: &ExternalResource<'_, Instance>) -> Result<String, PlatformError> {
        if let Some(id) = r.id {
            return Ok(id.to_owned());
        }
        let placement = Placement::resolve(
            r.location_settings,
            self.settings.default_project.as_deref(),
        )
        .map_err(location_error)?;
        let zone = placement.zone().map_err(location_error)?;
        Ok(format!(
            "projects/{}/zones/{zone}/instances/{}",
            placement.project, r.external_name
        ))
    }

    async fn ensure_firewalls(&self, project: &str, rules: &[Value]) -> Result<(), PlatformError> {
        let collection = format!("projects/{project}/global/firewalls");
        for rule in rules {
            self.insert(&collection, rule).await.map_err(|e| {
                e.to_platform(&format!(
                    "insert of firewall {}",
                    rule["name"].as_str().unwrap_or_default()
                ))
            })?;
        }
        Ok(())
    }
}

fn power(status: &str) -> PowerState {
    match status {
        "RUNNING" => PowerState::Running,
        "STOPPING" | "SUSPENDING" => PowerState::Stopping,
        "TERMINATED" | "STOPPED" | "SUSPENDED" | "REPAIRING" => PowerState::Stopped,
        _ => PowerState::Starting,
    }
}

impl ExternalClient<Instance> for Compute {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Observation<InstanceLive>, PlatformError> {
        let path = self.instance_path(r)?;
        let Some(instance) = self
            .get(&path)
            .await
            .map_err(|e| e.to_platform("get of instance"))?
        else {
            return Ok(Observation::Absent);
        };
        let hash = spec_hash(&serde_json::to_value(r.spec).unwrap_or_default());
        let addresses = instance["networkInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|nic| InterfaceAddresses {
                network_ip: nic["networkIP"].as_str().map(str::to_owned),
                external_ip: nic["accessConfigs"]
                    .as_array()
                    .and_then(|a| a.iter().rev().find_map(|c| c["natIP"].as_str()))
                    .map(str::to_owned),
            })
            .collect();
        let provider_id = path.strip_prefix("projects/").map(|rest| {
            format!(
                "gce://{}",
                rest.replace("/zones/", "/").replace("/instances/", "/")
            )
        });
        Ok(Observation::Exists {
            up_to_date: instance["labels"]["datum-spec-hash"] == hash.as_str(),
            live: InstanceLive {
                provider_id,
                addresses,
                power: power(instance["status"].as_str().unwrap_or_default()),
                usage: None,
            },
            id: path,
        })
    }

    async fn create(&self, r: &ExternalResource<'_, Instance>) -> Result<String, PlatformError> {
        let path = self.instance_path(r)?;
        let placement = Placement::resolve(
            r.location_settings,
            self.settings.default_project.as_deref(),
        )
        .map_err(location_error)?;
        let zone = placement.zone().map_err(location_error)?.to_owned();
        let target = Target {
            project: &placement.project,
            zone: &zone,
            external_name: &r.external_name,
            namespace: r.namespace,
            name: r.name,
            uid: r.uid,
        };
        let mut body = self.instance_body(&target, r.spec)?;
        let (nics, rules) = self.interfaces(&placement, r).await?;
        body["networkInterfaces"] = json!(nics);
        if let Some(map) = body.as_object_mut() {
            map.remove("project");
        }
        self.ensure_firewalls(&placement.project, &rules).await?;
        let collection = format!("projects/{}/zones/{zone}/instances", placement.project);
        self.insert(&collection, &body)
            .await
            .map_err(|e| e.to_platform(&format!("insert of instance {}", r.external_name)))?;
        Ok(path)
    }

    async fn update(
        &self,
        id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        let current = self
            .get(id)
            .await
            .map_err(|e| e.to_platform("get of instance"))?
            .ok_or_else(|| PlatformError {
                reason: "NotFound".to_owned(),
                message: format!("{id} is gone"),
            })?;
        let zone = id.split('/').nth(3).unwrap_or_default().to_owned();
        let project = id.split('/').nth(1).unwrap_or_default().to_owned();
        let target = Target {
            project: &project,
            zone: &zone,
            external_name: &r.external_name,
            namespace: r.namespace,
            name: r.name,
            uid: r.uid,
        };
        let desired = self.instance_body(&target, r.spec)?;
        let mut metadata = desired["metadata"].clone();
        metadata["fingerprint"] = current["metadata"]["fingerprint"].clone();
        let user_data = |m: &Value| {
            m["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["key"] == "user-data"))
                .map(|i| i["value"].clone())
        };
        let boot_config_changed =
            user_data(&current["metadata"]) != user_data(&desired["metadata"]);
        self.act(id, "setMetadata", &metadata)
            .await
            .map_err(|e| e.to_platform("setMetadata"))?;
        // cloud-init reads user-data at boot: a changed one (new containers) needs a reset.
        if boot_config_changed {
            self.act(id, "reset", &json!({}))
                .await
                .map_err(|e| e.to_platform("reset"))?;
        }
        let labels =
            json!({ "labels": desired["labels"], "labelFingerprint": current["labelFingerprint"] });
        self.act(id, "setLabels", &labels)
            .await
            .map_err(|e| e.to_platform("setLabels"))
    }

    async fn delete(
        &self,
        id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        Compute::delete(self, id)
            .await
            .map_err(|e| e.to_platform(&format!("delete of {id}")))?;
        let project = id.split('/').nth(1).unwrap_or_default();
        let collection = format!("projects/{project}/global/firewalls");
        let prefix = format!("{}-net-", r.external_name);
        let rules = self
            .list(&collection)
            .await
            .map_err(|e| e.to_platform("list of firewalls"))?;
        for rule in rules {
            if let Some(name) = rule["name"].as_str().filter(|n| n.starts_with(&prefix)) {
                Compute::delete(self, &format!("{collection}/{name}"))
                    .await
                    .map_err(|e| e.to_platform(&format!("delete of firewall {name}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_power() {
        assert_eq!(gib("10Gi"), Some(10));
        assert_eq!(gib("1Ti"), Some(1024));
        assert_eq!(gib("x"), None);
        assert_eq!(power("RUNNING"), PowerState::Running);
        assert_eq!(power("PROVISIONING"), PowerState::Starting);
    }
}
