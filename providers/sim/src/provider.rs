//! [`SimProvider`]: serves Locations whose `spec.provider` key is `sim`, configured by a
//! `sim.provider.datum.net/v1alpha1` ProviderConfig.

use std::path::Path;

use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::sim::ProviderConfig;
use datum_provider::{ConnectError, Credentials, Provider};

use crate::cloud::SimCloud;
use crate::ledger::Ledger;

/// The simulated provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimProvider;

impl Provider for SimProvider {
    type Config = ProviderConfig;
    type Client = SimCloud;

    fn name(&self) -> &str {
        "sim"
    }

    fn secret_refs(&self, config: &ProviderConfig) -> Vec<SecretKeyRef> {
        config.spec.credentials_secret_ref.iter().cloned().collect()
    }

    async fn connect(
        &self,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<SimCloud, ConnectError> {
        if let Some(reference) = &config.spec.credentials_secret_ref
            && credentials.get(reference).is_none_or(<[u8]>::is_empty)
        {
            return Err(ConnectError(format!(
                "spec.credentialsSecretRef: the token in Secret {}/{} key {:?} is empty",
                reference.namespace, reference.name, reference.key
            )));
        }
        let ledger = Ledger::open(Path::new(&config.spec.state_dir))
            .map_err(|e| ConnectError(format!("spec.stateDir: {e}")))?;
        Ok(SimCloud::new(ledger, config.spec.clone()))
    }
}
