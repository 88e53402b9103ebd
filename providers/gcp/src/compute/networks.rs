//! NetworkContext → VPC network `datum-<uid>`: custom subnet mode, the context's MTU
//! (Compute Engine's default 1460 when unset), regional routing, classic firewalls first.
//! The description `datum:<namespace>/<context>` is how Subnets and Instances find it.
//! Deleting it deletes its subnetworks in the Location's region first (a VPC in use cannot
//! go, and the context's Subnets are deleted after it).

use datum_api::networking::NetworkContext;
use datum_provider::{ExternalClient, ExternalResource, NetworkLive, Observation, PlatformError};
use serde_json::{Value, json};

use crate::compute::Compute;
use crate::location::Placement;

/// The description that identifies the VPC of a NetworkContext.
pub fn description(namespace: &str, context: &str) -> String {
    format!("datum:{namespace}/{context}")
}

impl Compute {
    fn placement(&self, settings: &Value) -> Result<Placement, PlatformError> {
        Placement::resolve(settings, self.settings.default_project.as_deref()).map_err(|e| {
            PlatformError {
                reason: "LocationInvalid".to_owned(),
                message: e.to_string(),
            }
        })
    }

    /// The VPC of NetworkContext `namespace/context` in `project`, by description.
    pub async fn find_network(
        &self,
        project: &str,
        namespace: &str,
        context: &str,
    ) -> Result<Option<Value>, PlatformError> {
        let wanted = description(namespace, context);
        let networks = self
            .list(&format!("projects/{project}/global/networks"))
            .await
            .map_err(|e| e.to_platform("list of networks"))?;
        Ok(networks
            .into_iter()
            .find(|n| n["description"] == wanted.as_str()))
    }

    fn network_path(
        &self,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<String, PlatformError> {
        if let Some(id) = r.id {
            return Ok(id.to_owned());
        }
        let placement = self.placement(r.location_settings)?;
        Ok(format!(
            "projects/{}/global/networks/{}",
            placement.project, r.external_name
        ))
    }
}

fn mtu(r: &ExternalResource<'_, NetworkContext>) -> i64 {
    r.spec.mtu.map_or(1460, i64::from)
}

impl ExternalClient<NetworkContext> for Compute {
    async fn observe(
        &self,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<Observation<NetworkLive>, PlatformError> {
        let path = self.network_path(r)?;
        let found = self
            .get(&path)
            .await
            .map_err(|e| e.to_platform("get of network"))?;
        Ok(match found {
            None => Observation::Absent,
            Some(network) => Observation::Exists {
                up_to_date: network["mtu"].as_i64().unwrap_or(1460) == mtu(r),
                live: NetworkLive {
                    provider_id: network["selfLink"].as_str().map(str::to_owned),
                },
                id: path,
            },
        })
    }

    async fn create(
        &self,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<String, PlatformError> {
        let placement = self.placement(r.location_settings)?;
        let collection = format!("projects/{}/global/networks", placement.project);
        let body = json!({
            "name": r.external_name,
            "description": description(r.namespace, r.name),
            "autoCreateSubnetworks": false,
            "mtu": mtu(r),
            "routingConfig": { "routingMode": "REGIONAL" },
            "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
        });
        self.insert(&collection, &body)
            .await
            .map_err(|e| e.to_platform(&format!("insert of network {}", r.external_name)))?;
        Ok(format!("{collection}/{}", r.external_name))
    }

    async fn update(
        &self,
        id: &str,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<(), PlatformError> {
        let body = json!({ "mtu": mtu(r) });
        let operation = self
            .call(http::Method::PATCH, id, &[], Some(&body))
            .await
            .map_err(|e| e.to_platform("patch of network"))?;
        self.wait(operation)
            .await
            .map(|_| ())
            .map_err(|e| e.to_platform("patch of network"))
    }

    async fn delete(
        &self,
        id: &str,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<(), PlatformError> {
        // Compute Engine refuses to delete a network its subnetworks use, and the Subnets
        // of a context go only after it (owner references): take the provider's
        // subnetworks of this VPC in the Location's region first. Each Subnet's own delete
        // then finds its subnetwork gone, which is success.
        if let Some(network) = self
            .get(id)
            .await
            .map_err(|e| e.to_platform("get of network"))?
            && let Ok(region) = self.placement(r.location_settings)?.region()
        {
            let project = id.split('/').nth(1).unwrap_or_default();
            let collection = format!("projects/{project}/regions/{region}/subnetworks");
            let subnetworks = self
                .list(&collection)
                .await
                .map_err(|e| e.to_platform("list of subnetworks"))?;
            for subnetwork in subnetworks
                .iter()
                .filter(|s| s["network"] == network["selfLink"])
            {
                if let Some(name) = subnetwork["name"]
                    .as_str()
                    .filter(|n| n.starts_with("datum-"))
                {
                    Compute::delete(self, &format!("{collection}/{name}"))
                        .await
                        .map_err(|e| e.to_platform(&format!("delete of subnetwork {name}")))?;
                }
            }
        }
        Compute::delete(self, id)
            .await
            .map_err(|e| e.to_platform(&format!("delete of {id}")))
    }
}
