//! Instance → Compute instance `datum-<uid>` in the Location's zone, inserted from the
//! instance template of its WorkloadDeployment revision ([`super::instance_templates`]).
//!
//! The template carries what every Instance of the revision shares:
//! - machine type from `machineTypeMap[spec.runtime.resources.instanceType]`;
//! - disks: the boot disk from the volume whose disk is populated from an image
//!   (`imageMap`), extra disks blank with their disk type (storage tier) and size; a
//!   sandbox boots the COS image `datumcloud/cos-stable-117-18613-0-79` from `imageMap`;
//! - metadata: `user-data` from [`crate::cloud_init`], `ssh-keys` from the
//!   `compute.datumapis.com/ssh-keys` annotation ([`crate::ssh_keys`]), and `datum-volumes`
//!   naming the Secret Manager secrets of configMap/secret volumes ([`crate::volumes`]) —
//!   never a value; with such volumes, the project's default service account with the
//!   `cloud-platform` scope, granted read access to exactly those secrets;
//! - one NIC per interface: the VPC of the interface's NetworkContext
//!   (`<network>-<location>`) and its subnetwork in the region, waited for while it is being
//!   made; only an interface without an IPAM address (so without a NetworkContext) falls
//!   back to a project network of the interface's network name (a project's `default`).
//!
//! The insert request adds what is the Instance's own: name, the IPAM-allocated `networkIP`
//! of each NIC, network tag `datum-<uid>` (target of its interface policy's rules) and one
//! tag per NetworkPolicy variant that selects it ([`super::network_policies`]; update keeps
//! them in step with one `setTags`), labels linking back to the
//! Datum object, `datum-template`, and `datum-spec-hash`, which says whether the instance is
//! up to date.
//!
//! Update rewrites metadata and labels (fingerprint-checked) and resets the instance when
//! its boot configuration (`user-data`, `datum-volumes`, a volume's content) changed, since
//! it is read at boot; machine type, disks and NICs are fixed at create.
//!
//! Where the workload declares a TCP port, the instance also carries the network tag of its
//! deployment's health checking and is a member of its instance group, and a `RUNNING` VM
//! is Running only while that check reports it `HEALTHY` ([`super::health_checks`]).
//!
//! A `RUNNING` VM's observation carries its usage figures from Cloud Monitoring
//! ([`crate::monitoring`]), when Monitoring has them.

use datum_api::compute::{Instance, InstanceSpec};
use datum_api::networking::names;
use datum_provider::{
    ExternalClient, ExternalResource, InstanceLive, InterfaceAddresses, Observation, PlatformError,
    PowerState,
};
use serde_json::{Value, json};

use crate::cloud_init;
use crate::compute::health_checks::{self, Plan};
use crate::compute::instance_templates::{self, LABEL};
use crate::compute::{Compute, firewalls, label_value, network_policies, network_tags, spec_hash};
use crate::location::Placement;
use crate::{ssh_keys, volumes};
use datum_api::compute::annotations::SSH_KEYS;

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

/// Who an instance is, besides its spec.
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

/// What an Instance becomes.
#[derive(Debug)]
pub struct Desired {
    /// The template's name.
    pub template: String,
    /// The template's properties.
    pub properties: Value,
    /// The `instances.insert` body, overriding the template.
    pub instance: Value,
    /// configMap/secret volumes to store in Secret Manager (values; never logged).
    pub deliveries: Vec<volumes::Delivery>,
    /// The service account the VM runs as, when it has such volumes.
    pub service_account: Option<String>,
}

/// The hash in the `datum-spec-hash` label: the spec and the ssh keys.
fn desired_hash(r: &ExternalResource<'_, Instance>) -> String {
    let keys = r.annotations.get(SSH_KEYS);
    spec_hash(&json!([
        serde_json::to_value(r.spec).unwrap_or_default(),
        keys
    ]))
}

fn metadata_value<'v>(metadata: &'v Value, key: &str) -> Option<&'v Value> {
    metadata["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["key"] == key))
        .map(|i| &i["value"])
}

impl Compute {
    /// The template properties of `spec` without NICs and volume references: machine type,
    /// disks, `user-data`, `ssh-keys`.
    pub fn template_properties(
        &self,
        spec: &InstanceSpec,
        ssh_keys: Option<&str>,
        volume_names: &[String],
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
        let mut disks = Vec::new();
        let user_data = if let Some(sandbox) = &spec.runtime.sandbox {
            disks.push(json!({
                "boot": true, "autoDelete": true, "deviceName": "datum-boot",
                "initializeParams": { "sourceImage": image(COS_IMAGE)?, "diskType": "pd-standard" },
            }));
            cloud_init::sandbox(sandbox, volume_names)
        } else {
            cloud_init::virtual_machine(!volume_names.is_empty())
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
            let mut params = json!({ "diskType": kind });
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
        let mut items = vec![json!({ "key": "user-data", "value": user_data })];
        if let Some(keys) = ssh_keys {
            items.push(json!({ "key": "ssh-keys", "value": keys }));
        }
        Ok(json!({
            "machineType": machine_type,
            "disks": disks,
            "metadata": { "items": items },
        }))
    }

    /// Everything `r` becomes: template name and properties, insert body, volumes.
    /// `creating`: for an insert, see [`Compute::interfaces`].
    async fn desired(
        &self,
        t: &Target<'_>,
        placement: &Placement,
        r: &ExternalResource<'_, Instance>,
        creating: bool,
    ) -> Result<(Desired, Vec<Value>), PlatformError> {
        let ssh = ssh_keys::metadata(r.annotations)?;
        let planned = volumes::planned(r.spec);
        let volume_names: Vec<String> = planned.iter().map(|(n, _, _)| n.clone()).collect();
        let mut properties = self.template_properties(r.spec, ssh.as_deref(), &volume_names)?;
        let (nics, rules) = self.interfaces(placement, r, creating).await?;
        properties["networkInterfaces"] = nics
            .iter()
            .map(|nic| {
                let mut shared = nic.clone();
                if let Some(map) = shared.as_object_mut() {
                    map.remove("networkIP");
                }
                shared
            })
            .collect();
        properties["labels"] = json!({ "datum-namespace": label_value(t.namespace) });
        let service_account = if planned.is_empty() {
            None
        } else {
            let email = self
                .default_service_account(t.project)
                .await
                .map_err(|e| e.to_platform("get of the project's default service account"))?;
            properties["serviceAccounts"] = json!([{
                "email": email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }]);
            Some(email)
        };
        let template = instance_templates::name(t.namespace, t.zone, &properties);
        if !planned.is_empty() {
            let references: Vec<Value> = planned
                .iter()
                .map(|(volume, kind, dirs)| {
                    json!({
                        "volume": volume, "kind": kind, "dirs": dirs,
                        "secret": format!("projects/{}/secrets/{template}-{volume}", t.project),
                        "mode": if *kind == "secret" { "0400" } else { "0444" },
                    })
                })
                .collect();
            if let Some(items) = properties["metadata"]["items"].as_array_mut() {
                items.push(json!({ "key": "datum-volumes", "value": Value::Array(references).to_string() }));
            }
        }
        let deliveries = volumes::read(self.kube.as_ref(), t.namespace, r.spec).await?;
        let instance = json!({
            "name": t.external_name,
            "description": format!("Datum Instance {}/{}", t.namespace, t.name),
            "tags": { "items": [t.external_name] },
            "labels": {
                "datum-namespace": label_value(t.namespace),
                "datum-name": label_value(t.name),
                "datum-uid": label_value(t.uid),
                "datum-spec-hash": desired_hash(r),
                LABEL: template,
            },
            "networkInterfaces": nics,
        });
        Ok((
            Desired {
                template,
                properties,
                instance,
                deliveries,
                service_account,
            },
            rules,
        ))
    }

    /// Stores the volumes in Secret Manager, readable by the VM's service account; returns
    /// whether any content changed.
    async fn deliver_volumes(
        &self,
        project: &str,
        d: &Desired,
        namespace: &str,
    ) -> Result<bool, PlatformError> {
        let mut changed = false;
        for delivery in &d.deliveries {
            let id = format!("{}-{}", d.template, delivery.volume);
            let labels = json!({ LABEL: d.template, "datum-namespace": label_value(namespace) });
            changed |= self
                .put_secret(project, &id, &delivery.payload, &labels)
                .await
                .map_err(|e| {
                    e.to_platform(&format!(
                        "store of volume {} in secret {id}",
                        delivery.volume
                    ))
                })?;
            if let Some(account) = &d.service_account {
                self.grant_accessor(project, &id, account)
                    .await
                    .map_err(|e| e.to_platform(&format!("setIamPolicy of secret {id}")))?;
            }
        }
        Ok(changed)
    }

    /// NICs and firewall rules for each interface. When `creating`, an interface with an
    /// IPAM address waits for its NetworkContext's VPC: the control plane hands out the
    /// address before this provider has made the VPC, and a project network of the same
    /// name (such as `default`) is another network. NICs are fixed once the instance exists.
    async fn interfaces(
        &self,
        placement: &Placement,
        r: &ExternalResource<'_, Instance>,
        creating: bool,
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
            let assigned = r.assigned.get(i).and_then(|a| a.network_ip.as_deref());
            let network = match self.find_network(&placement.project, r.namespace, &context).await? {
                Some(n) => n,
                None if creating && assigned.is_some() => {
                    return Err(PlatformError {
                        reason: "NetworkNotReady".to_owned(),
                        message: format!(
                            "networkInterfaces[{i}]: the VPC network of NetworkContext {context} does not exist yet"
                        ),
                    });
                }
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
            if let Some(ip) = assigned {
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

/// Whether the instance carries network tag `tag`.
fn has_tag(instance: &Value, tag: &str) -> bool {
    network_tags(instance).any(|t| t == tag)
}

impl Compute {
    /// Whether the instance carries exactly the NetworkPolicy tags its selecting policies
    /// give it, and their rules exist.
    async fn policies_in_place(
        &self,
        path: &str,
        instance: &Value,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<bool, PlatformError> {
        let project = path.split('/').nth(1).unwrap_or_default();
        let zone = path.split('/').nth(3).unwrap_or_default();
        let variants = network_policies::variants(zone, r.namespace, r.spec, &r.network_policies);
        let mut wanted: Vec<&str> = variants.iter().map(|v| v.tag.as_str()).collect();
        wanted.sort_unstable();
        let mut carried: Vec<&str> = network_tags(instance)
            .filter(|t| t.starts_with(network_policies::TAG_PREFIX))
            .collect();
        carried.sort_unstable();
        if wanted != carried {
            return Ok(false);
        }
        self.policy_rules_present(project, &variants).await
    }

    /// The deployment's health checking, in the VPC of the instance's first NIC.
    async fn ensure_health(&self, plan: &Plan, desired: &Desired) -> Result<(), PlatformError> {
        let network = desired.instance["networkInterfaces"][0]["network"]
            .as_str()
            .unwrap_or_default();
        self.ensure_health_checking(plan, network)
            .await
            .map_err(|e| e.to_platform(&format!("insert of health checking {}", plan.name)))
    }

    /// Deletes the deployment's health checking once its group has no member left.
    async fn remove_health_checking_if_unused(&self, plan: &Plan) -> Result<(), PlatformError> {
        let failed = |e: crate::compute::ApiError| {
            e.to_platform(&format!("delete of health checking {}", plan.name))
        };
        if self.group_is_empty(plan).await.map_err(failed)? {
            self.remove_health_checking(plan).await.map_err(failed)?;
        }
        Ok(())
    }

    /// On update: joins the deployment's health checking (group) when the workload
    /// declares a TCP port, and leaves it when a revision dropped its ports. Returns the
    /// network tag of health checking the instance is to carry, if any.
    async fn update_health(
        &self,
        id: &str,
        r: &ExternalResource<'_, Instance>,
        current: &Value,
        desired: &Desired,
    ) -> Result<Option<String>, PlatformError> {
        let Some((project, zone)) = health_checks::project_and_zone(id) else {
            return Ok(None);
        };
        let region = zone.rsplit_once('-').map_or(zone, |(r, _)| r);
        match Plan::of(r.spec, r.labels, r.uid, project, zone, region) {
            Some(plan) => {
                self.ensure_health(&plan, desired).await?;
                self.join_group(&plan, id)
                    .await
                    .map_err(|e| e.to_platform(&format!("addInstances to {}", plan.name)))?;
                Ok(Some(plan.name))
            }
            None => {
                let plan = Plan::of_deployment(r.labels, r.uid, project, zone, region);
                if !has_tag(current, &plan.name) {
                    return Ok(None);
                }
                self.leave_group(&plan, id)
                    .await
                    .map_err(|e| e.to_platform(&format!("removeInstances from {}", plan.name)))?;
                self.remove_health_checking_if_unused(&plan).await?;
                Ok(None)
            }
        }
    }

    /// Sets the instance's network tags to `ours` (its own, health checking's, its
    /// NetworkPolicies') plus any tag not made by Datum, in one fingerprint-checked call,
    /// when they differ; then sweeps the rules of NetworkPolicy tags it dropped.
    async fn sync_tags(
        &self,
        id: &str,
        current: &Value,
        ours: &[String],
    ) -> Result<(), PlatformError> {
        let carried: Vec<&str> = network_tags(current).collect();
        let mut wanted: Vec<&str> = carried
            .iter()
            .copied()
            .filter(|t| !t.starts_with("datum-"))
            .chain(ours.iter().map(String::as_str))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut now = carried.clone();
        now.sort_unstable();
        now.dedup();
        if wanted == now {
            return Ok(());
        }
        network_policies::check_tag_count(wanted.len())?;
        let body = json!({ "items": wanted, "fingerprint": current["tags"]["fingerprint"] });
        self.act(id, "setTags", &body)
            .await
            .map_err(|e| e.to_platform("setTags"))?;
        let dropped_policy_tag = now
            .iter()
            .any(|t| t.starts_with(network_policies::TAG_PREFIX) && !wanted.contains(t));
        if dropped_policy_tag {
            let project = id.split('/').nth(1).unwrap_or_default();
            let zone = id.split('/').nth(3).unwrap_or_default();
            self.sweep_policy_rules(project, zone, None, None).await?;
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
        let status = instance["status"].as_str().unwrap_or_default();
        let mut power = power(status);
        let mut health_in_place = true;
        if let Some(plan) = Plan::at(r.spec, r.labels, r.uid, &path) {
            health_in_place = has_tag(&instance, &plan.name);
            // Only a running VM can pass; a booting one keeps its power state.
            if power == PowerState::Running {
                match self
                    .health_of(&plan, &path)
                    .await
                    .map_err(|e| e.to_platform("getHealth of the deployment's backend service"))?
                {
                    Some("HEALTHY") => {}
                    Some(state) => power = PowerState::Unhealthy(state),
                    None => {
                        power = PowerState::Unhealthy("UNKNOWN");
                        health_in_place = false;
                    }
                }
            }
        }
        // Figures from Cloud Monitoring; never a reason to fail the observe.
        let usage = match (status, instance["id"].as_str(), path.split('/').nth(1)) {
            ("RUNNING", Some(id), Some(project)) => self.usage_of(project, id).await,
            _ => None,
        };
        let policies_in_place = self.policies_in_place(&path, &instance, r).await?;
        Ok(Observation::Exists {
            up_to_date: health_in_place
                && policies_in_place
                && instance["labels"]["datum-spec-hash"] == desired_hash(r).as_str(),
            live: InstanceLive {
                provider_id,
                addresses,
                power,
                usage,
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
        let (mut desired, rules) = self.desired(&target, &placement, r, true).await?;
        let region = placement.region().map_err(location_error)?;
        let plan = Plan::of(r.spec, r.labels, r.uid, &placement.project, &zone, &region);
        let variants = network_policies::variants(&zone, r.namespace, r.spec, &r.network_policies);
        let mut tags = vec![r.external_name.clone()];
        if let Some(plan) = &plan {
            tags.push(plan.name.clone());
            self.ensure_health(plan, &desired).await?;
        }
        tags.extend(variants.iter().map(|v| v.tag.clone()));
        network_policies::check_tag_count(tags.len())?;
        desired.instance["tags"] = json!({ "items": tags });
        self.deliver_volumes(&placement.project, &desired, r.namespace)
            .await?;
        self.ensure_firewalls(&placement.project, &rules).await?;
        // Rules before the tag that makes them apply: an instance never runs isolated
        // without its allows.
        self.ensure_policy_rules(
            &placement.project,
            &variants,
            &desired.instance["networkInterfaces"],
        )
        .await?;
        let template = self
            .ensure_template(
                &placement.project,
                &desired.template,
                r.namespace,
                &zone,
                &desired.properties,
            )
            .await
            .map_err(|e| {
                e.to_platform(&format!("insert of instance template {}", desired.template))
            })?;
        let collection = format!("projects/{}/zones/{zone}/instances", placement.project);
        self.insert_with(
            &collection,
            &desired.instance,
            &[("sourceInstanceTemplate", template)],
        )
        .await
        .map_err(|e| e.to_platform(&format!("insert of instance {}", r.external_name)))?;
        if let Some(plan) = &plan {
            self.join_group(plan, &path)
                .await
                .map_err(|e| e.to_platform(&format!("addInstances to {}", plan.name)))?;
        }
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
        let placement = Placement {
            project: project.clone(),
            region: zone.rsplit_once('-').map(|(r, _)| r.to_owned()),
            zone: Some(zone.clone()),
        };
        let target = Target {
            project: &project,
            zone: &zone,
            external_name: &r.external_name,
            namespace: r.namespace,
            name: r.name,
            uid: r.uid,
        };
        let (desired, rules) = self.desired(&target, &placement, r, false).await?;
        let content_changed = self
            .deliver_volumes(&project, &desired, r.namespace)
            .await?;
        self.ensure_firewalls(&project, &rules).await?;
        self.ensure_template(
            &project,
            &desired.template,
            r.namespace,
            &zone,
            &desired.properties,
        )
        .await
        .map_err(|e| e.to_platform(&format!("insert of instance template {}", desired.template)))?;
        let mut metadata = desired.properties["metadata"].clone();
        if let (Some(items), Some(source)) = (
            metadata["items"].as_array_mut(),
            metadata_value(&current["metadata"], "instance-template"),
        ) {
            items.push(json!({ "key": "instance-template", "value": source }));
        }
        metadata["fingerprint"] = current["metadata"]["fingerprint"].clone();
        let boot_config_changed = content_changed
            || ["user-data", "datum-volumes"].iter().any(|key| {
                metadata_value(&current["metadata"], key) != metadata_value(&metadata, key)
            });
        self.act(id, "setMetadata", &metadata)
            .await
            .map_err(|e| e.to_platform("setMetadata"))?;
        // The boot configuration is read at boot: a changed one (new containers) needs a reset.
        if boot_config_changed {
            self.act(id, "reset", &json!({}))
                .await
                .map_err(|e| e.to_platform("reset"))?;
        }
        let labels = json!({
            "labels": desired.instance["labels"],
            "labelFingerprint": current["labelFingerprint"],
        });
        self.act(id, "setLabels", &labels)
            .await
            .map_err(|e| e.to_platform("setLabels"))?;
        let variants = network_policies::variants(&zone, r.namespace, r.spec, &r.network_policies);
        self.ensure_policy_rules(&project, &variants, &desired.instance["networkInterfaces"])
            .await?;
        let health_tag = self.update_health(id, r, &current, &desired).await?;
        let ours: Vec<String> = std::iter::once(r.external_name.clone())
            .chain(health_tag)
            .chain(variants.into_iter().map(|v| v.tag))
            .collect();
        self.sync_tags(id, &current, &ours).await?;
        self.collect_templates(&project, &zone, r.namespace)
            .await
            .map_err(|e| e.to_platform("collection of unused instance templates"))
    }

    async fn delete(
        &self,
        id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        // Out of the group first, so the group never names a deleted instance.
        let plan = Plan::at(r.spec, r.labels, r.uid, id);
        if let Some(plan) = &plan {
            self.leave_group(plan, id)
                .await
                .map_err(|e| e.to_platform(&format!("removeInstances from {}", plan.name)))?;
        }
        // Its firewall rules go while the instance still exists: once it is gone, observe
        // finds nothing and nothing would come back for them.
        let project = id.split('/').nth(1).unwrap_or_default();
        let zone = id.split('/').nth(3).unwrap_or_default();
        let collection = format!("projects/{project}/global/firewalls");
        let prefix = format!("{}-net-", r.external_name);
        let rules = self
            .list(&collection)
            .await
            .map_err(|e| e.to_platform("list of firewalls"))?;
        for rule in &rules {
            if let Some(name) = rule["name"].as_str().filter(|n| n.starts_with(&prefix)) {
                Compute::delete(self, &format!("{collection}/{name}"))
                    .await
                    .map_err(|e| e.to_platform(&format!("delete of firewall {name}")))?;
            }
        }
        let name = id.rsplit('/').next();
        self.sweep_policy_rules(project, zone, name, Some(rules))
            .await?;
        Compute::delete(self, id)
            .await
            .map_err(|e| e.to_platform(&format!("delete of {id}")))?;
        // The deployment's last instance takes its health checking along (also when the
        // group was never made, e.g. a crash before it).
        if let Some(plan) = &plan {
            self.remove_health_checking_if_unused(plan).await?;
        }
        self.collect_templates(project, zone, r.namespace)
            .await
            .map_err(|e| e.to_platform("collection of unused instance templates"))
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
