//! Subnet → subnetwork `datum-<uid>` in the Location's region, with the CIDR our IPAM
//! allocated (`startAddress/prefixLength`), in the VPC of the Subnet's NetworkContext. No
//! subnetwork is made before IPAM has allocated the range.

use datum_api::networking::Subnet;
use datum_provider::{ExternalClient, ExternalResource, NetworkLive, Observation, PlatformError};
use serde_json::json;

use crate::compute::Compute;

impl Compute {
    fn subnetwork_path(&self, r: &ExternalResource<'_, Subnet>) -> Result<String, PlatformError> {
        if let Some(id) = r.id {
            return Ok(id.to_owned());
        }
        let placement = crate::location::Placement::resolve(
            r.location_settings,
            self.settings.default_project.as_deref(),
        )
        .map_err(|e| PlatformError {
            reason: "LocationInvalid".to_owned(),
            message: e.to_string(),
        })?;
        let region = placement.region().map_err(|e| PlatformError {
            reason: "LocationInvalid".to_owned(),
            message: e.to_string(),
        })?;
        Ok(format!(
            "projects/{}/regions/{region}/subnetworks/{}",
            placement.project, r.external_name
        ))
    }
}

fn cidr(r: &ExternalResource<'_, Subnet>) -> String {
    format!("{}/{}", r.spec.start_address, r.spec.prefix_length)
}

impl ExternalClient<Subnet> for Compute {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Subnet>,
    ) -> Result<Observation<NetworkLive>, PlatformError> {
        let path = self.subnetwork_path(r)?;
        let found = self
            .get(&path)
            .await
            .map_err(|e| e.to_platform("get of subnetwork"))?;
        Ok(match found {
            None => Observation::Absent,
            Some(subnetwork) => Observation::Exists {
                // The range can only grow in place (expandIpCidrRange); IPAM never changes a
                // Subnet's block, so an existing subnetwork is taken as up to date.
                up_to_date: true,
                live: NetworkLive {
                    provider_id: subnetwork["selfLink"].as_str().map(str::to_owned),
                },
                id: path,
            },
        })
    }

    async fn create(&self, r: &ExternalResource<'_, Subnet>) -> Result<String, PlatformError> {
        // IPAM fills the range in after the Subnet exists; a subnetwork needs it.
        if r.spec.start_address.is_empty() || r.spec.prefix_length == 0 {
            return Err(PlatformError {
                reason: "SubnetNotAllocated".to_owned(),
                message: "IPAM has not allocated this Subnet's range yet".to_owned(),
            });
        }
        let path = self.subnetwork_path(r)?;
        let project = path.split('/').nth(1).unwrap_or_default().to_owned();
        let context = &r.spec.network_context.name;
        let network = self
            .find_network(&project, r.namespace, context)
            .await?
            .ok_or_else(|| PlatformError {
                reason: "NetworkNotReady".to_owned(),
                message: format!("the VPC network of NetworkContext {context} does not exist yet"),
            })?;
        let body = json!({
            "name": r.external_name,
            "description": format!("datum:{}/{}", r.namespace, r.name),
            "ipCidrRange": cidr(r),
            "network": network["selfLink"],
            "purpose": "PRIVATE",
            "stackType": "IPV4_ONLY",
            "privateIpGoogleAccess": true,
        });
        let collection = path
            .rsplit_once('/')
            .map(|(c, _)| c.to_owned())
            .unwrap_or_default();
        self.insert(&collection, &body)
            .await
            .map_err(|e| e.to_platform(&format!("insert of subnetwork {}", r.external_name)))?;
        Ok(path)
    }

    async fn update(&self, _: &str, _: &ExternalResource<'_, Subnet>) -> Result<(), PlatformError> {
        Ok(())
    }

    async fn delete(
        &self,
        id: &str,
        _: &ExternalResource<'_, Subnet>,
    ) -> Result<(), PlatformError> {
        Compute::delete(self, id)
            .await
            .map_err(|e| e.to_platform(&format!("delete of {id}")))
    }
}
