//! [`ExampleProvider`]: serves Locations whose `spec.provider` key is `example`, and
//! [`ExampleClient`]: observe / create / update / delete for each kind it manages, as calls
//! to the [platform](crate::platform).
//!
//! REPLACE THIS: the platform calls below go to the stand-in platform; make them calls to
//! your platform's API, mapping each Datum spec to the platform's settings. Keep the
//! observe contract: find the resource by its recorded ID, else by the deterministic
//! `external_name` — that is how a resource created just before a crash is adopted instead
//! of created twice.

use datum_api::compute::Instance;
use datum_api::networking::{NetworkContext, Subnet};
use datum_api::provider_config::SecretKeyRef;
use datum_provider::managed::ManagedKind;
use datum_provider::{
    ConnectError, Credentials, ExternalClient, ExternalResource, InstanceLive, InterfaceAddresses,
    NetworkLive, Observation, PlatformError, PowerState, Provider,
};
use serde::Serialize;

use crate::config::ProviderConfig;
use crate::platform::{self, Platform, Resource, Session};

/// The example provider.
#[derive(Clone, Debug, Default)]
pub struct ExampleProvider {
    platform: Platform,
}

impl ExampleProvider {
    /// A provider reaching `platform`.
    pub fn new(platform: Platform) -> Self {
        Self { platform }
    }
}

impl Provider for ExampleProvider {
    type Config = ProviderConfig;
    type Client = ExampleClient;

    fn name(&self) -> &str {
        "example"
    }

    fn secret_refs(&self, config: &ProviderConfig) -> Vec<SecretKeyRef> {
        vec![config.spec.credentials_secret_ref.clone()]
    }

    async fn connect(
        &self,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<ExampleClient, ConnectError> {
        let reference = &config.spec.credentials_secret_ref;
        let token = credentials
            .get(reference)
            .and_then(|t| std::str::from_utf8(t).ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectError(format!(
                    "spec.credentialsSecretRef: the token in Secret {}/{} key {:?} is empty or not UTF-8",
                    reference.namespace, reference.name, reference.key
                ))
            })?;
        Ok(ExampleClient {
            session: self.platform.session(token),
        })
    }
}

/// A connection to the platform.
#[derive(Clone, Debug)]
pub struct ExampleClient {
    session: Session,
}

impl ExampleClient {
    /// The resource by recorded ID, else by external name, and whether it matches the spec.
    async fn find<K: ManagedKind>(
        &self,
        r: &ExternalResource<'_, K>,
    ) -> Result<Option<(Resource, bool)>, PlatformError>
    where
        K::Spec: Serialize,
    {
        let found = match r.id {
            Some(id) => self.session.get(K::CONTROLLER, id).await,
            None => {
                self.session
                    .find_by_name(K::CONTROLLER, &r.external_name)
                    .await
            }
        }
        .map_err(failed)?;
        let desired = settings(r.spec)?;
        Ok(found.map(|resource| {
            let up_to_date = resource.spec == desired;
            (resource, up_to_date)
        }))
    }

    async fn create_resource<K: ManagedKind>(
        &self,
        r: &ExternalResource<'_, K>,
    ) -> Result<String, PlatformError>
    where
        K::Spec: Serialize,
    {
        self.session
            .create(K::CONTROLLER, &r.external_name, settings(r.spec)?)
            .await
            .map_err(failed)
    }

    async fn update_resource<K: ManagedKind>(
        &self,
        id: &str,
        r: &ExternalResource<'_, K>,
    ) -> Result<(), PlatformError>
    where
        K::Spec: Serialize,
    {
        self.session
            .update(id, settings(r.spec)?)
            .await
            .map_err(failed)
    }
}

/// The platform's settings for a spec. REPLACE THIS: the stand-in platform stores the Datum
/// spec as it is; a real platform wants its own request shape.
fn settings<T: Serialize>(spec: &T) -> Result<serde_json::Value, PlatformError> {
    serde_json::to_value(spec)
        .map_err(|e| PlatformError::new(format!("cannot encode the spec: {e}")))
}

/// A platform error as the SDK reports it (in `Programmed` and an Event; never put a
/// credential in it).
fn failed(error: platform::Error) -> PlatformError {
    PlatformError {
        reason: "PlatformError".to_owned(),
        message: error.0,
    }
}

impl ExternalClient<Instance> for ExampleClient {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Observation<InstanceLive>, PlatformError> {
        let Some((resource, up_to_date)) = self.find(r).await? else {
            return Ok(Observation::Absent);
        };
        // REPLACE THIS: report the addresses and power state the platform reports.
        let addresses = r
            .spec
            .network_interfaces
            .iter()
            .map(|_| InterfaceAddresses::default())
            .collect();
        Ok(Observation::Exists {
            live: InstanceLive {
                provider_id: Some(format!("example://{}", resource.id)),
                addresses,
                power: PowerState::Running,
                usage: None,
            },
            id: resource.id,
            up_to_date,
        })
    }

    async fn create(&self, r: &ExternalResource<'_, Instance>) -> Result<String, PlatformError> {
        self.create_resource(r).await
    }

    async fn update(
        &self,
        id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        self.update_resource(id, r).await
    }

    async fn delete(
        &self,
        id: &str,
        _: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        self.session.delete(id).await.map_err(failed)
    }
}

/// The network kinds share one implementation.
macro_rules! network_kind {
    ($kind:ty) => {
        impl ExternalClient<$kind> for ExampleClient {
            async fn observe(
                &self,
                r: &ExternalResource<'_, $kind>,
            ) -> Result<Observation<NetworkLive>, PlatformError> {
                let Some((resource, up_to_date)) = self.find(r).await? else {
                    return Ok(Observation::Absent);
                };
                Ok(Observation::Exists {
                    live: NetworkLive {
                        provider_id: Some(format!("example://{}", resource.id)),
                    },
                    id: resource.id,
                    up_to_date,
                })
            }

            async fn create(
                &self,
                r: &ExternalResource<'_, $kind>,
            ) -> Result<String, PlatformError> {
                self.create_resource(r).await
            }

            async fn update(
                &self,
                id: &str,
                r: &ExternalResource<'_, $kind>,
            ) -> Result<(), PlatformError> {
                self.update_resource(id, r).await
            }

            async fn delete(
                &self,
                id: &str,
                _: &ExternalResource<'_, $kind>,
            ) -> Result<(), PlatformError> {
                self.session.delete(id).await.map_err(failed)
            }
        }
    };
}

network_kind!(NetworkContext);
network_kind!(Subnet);
