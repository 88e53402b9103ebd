//! [`GcpProvider`]: serves Locations whose `spec.provider` key is `gcp`, configured by a
//! `gcp.provider.datum.net/v1alpha1` ProviderConfig. `connect` reads the service-account
//! key from the Secret the config names and fetches a first token, so a wrong key or an
//! unreachable token endpoint shows as `ProviderConfigInvalid` before any resource is
//! touched.
//!
//! Secret Manager is reached at `https://secretmanager.googleapis.com` and Cloud Monitoring
//! (usage figures) at `https://monitoring.googleapis.com`, or both at the ProviderConfig's
//! `endpoint` when that is overridden (a fake serves every API).
//!
//! `workloadIdentity` with an `audience` is Workload Identity Federation: the subject token
//! is read from [`GcpProvider::subject_token_file`] (a projected Kubernetes
//! service-account token whose audience is the pool provider) and exchanged at
//! `https://sts.googleapis.com/v1/token`, then, with `serviceAccountEmail`, traded for that
//! account's token at `https://iamcredentials.googleapis.com`; an overridden `endpoint`
//! serves both. Without an `audience` (the ambient identity of a metadata server) it is
//! refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::gcp::ProviderConfig;
use datum_provider::{ConnectError, Credentials, Provider};

use crate::auth::{Federation, ServiceAccountKey, TokenSource};
use crate::compute::{Compute, Settings};
use crate::http::Transport;

/// The GCP provider.
#[derive(Clone)]
pub struct GcpProvider {
    /// First delay between operation polls.
    pub poll_interval: Duration,
    /// Longest wait for one operation.
    pub operation_timeout: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// The control plane, for the ConfigMaps and Secrets that configMap/secret volumes
    /// deliver (through Secret Manager). Without it such volumes are refused.
    pub kube: Option<kube::Client>,
    /// Where Workload Identity Federation reads its subject token: a projected
    /// service-account token mounted with the pool provider as its audience.
    pub subject_token_file: PathBuf,
    /// Least time between two Cloud Monitoring rounds of one project: each running
    /// instance's usage is asked about at most once per interval.
    pub usage_interval: Duration,
}

/// The default [`GcpProvider::subject_token_file`].
pub const SUBJECT_TOKEN_FILE: &str = "/var/run/secrets/datum/gcp/token";

impl Default for GcpProvider {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            operation_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            kube: None,
            subject_token_file: PathBuf::from(SUBJECT_TOKEN_FILE),
            usage_interval: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for GcpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpProvider")
            .field("poll_interval", &self.poll_interval)
            .field("operation_timeout", &self.operation_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("kube", &self.kube.is_some())
            .field("subject_token_file", &self.subject_token_file)
            .field("usage_interval", &self.usage_interval)
            .finish()
    }
}

impl Provider for GcpProvider {
    type Config = ProviderConfig;
    type Client = Compute;

    fn name(&self) -> &str {
        "gcp"
    }

    /// NetworkPolicies become tag-targeted firewall rules ([`crate::compute::network_policies`]).
    fn enforces_network_policies(&self) -> bool {
        true
    }

    fn secret_refs(&self, config: &ProviderConfig) -> Vec<SecretKeyRef> {
        config.spec.credentials.secret_ref.iter().cloned().collect()
    }

    async fn connect(
        &self,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<Compute, ConnectError> {
        let spec = &config.spec;
        let transport =
            Transport::new(self.request_timeout).map_err(|e| ConnectError(e.to_string()))?;
        let (tokens, source) = match (
            &spec.credentials.secret_ref,
            &spec.credentials.workload_identity,
        ) {
            (Some(reference), _) => {
                let bytes = credentials.get(reference).unwrap_or_default();
                let (key, signer) = ServiceAccountKey::parse(bytes).map_err(|e| {
                    ConnectError(format!(
                        "spec.credentials.secretRef (Secret {}/{} key {:?}): {e}",
                        reference.namespace, reference.name, reference.key
                    ))
                })?;
                (
                    TokenSource::new(key, signer, transport.clone()),
                    "spec.credentials.secretRef",
                )
            }
            (None, Some(identity)) => {
                let Some(audience) = &identity.audience else {
                    return Err(ConnectError(
                        "spec.credentials.workloadIdentity without audience (the ambient identity of a GCE/GKE metadata server) is not supported yet; set audience for Workload Identity Federation, or use secretRef".to_owned(),
                    ));
                };
                let root = |default: &str| {
                    spec.endpoint
                        .clone()
                        .unwrap_or_else(|| default.to_owned())
                        .trim_end_matches('/')
                        .to_owned()
                };
                let federation = Federation {
                    audience: audience.clone(),
                    subject_token_file: self.subject_token_file.clone(),
                    sts_url: format!("{}/v1/token", root("https://sts.googleapis.com")),
                    iam_credentials_url: root("https://iamcredentials.googleapis.com"),
                    service_account_email: identity.service_account_email.clone(),
                };
                (
                    TokenSource::federated(federation, transport.clone()),
                    "spec.credentials.workloadIdentity",
                )
            }
            (None, None) => {
                return Err(ConnectError(
                    "spec.credentials must set secretRef or workloadIdentity".to_owned(),
                ));
            }
        };
        let tokens = Arc::new(tokens);
        tokens
            .token()
            .await
            .map_err(|e| ConnectError(format!("{source}: {e}")))?;
        let settings = Settings {
            default_project: spec.project_id.clone(),
            machine_types: spec.machine_type_map.clone(),
            images: spec.image_map.clone(),
            requests_per_second: f64::from(spec.rate_limit.requests_per_second.max(1)),
            burst: u32::try_from(spec.rate_limit.burst.max(1)).unwrap_or(1),
            poll_interval: self.poll_interval,
            operation_timeout: self.operation_timeout,
            secret_manager_endpoint: spec
                .endpoint
                .clone()
                .unwrap_or_else(|| "https://secretmanager.googleapis.com".to_owned()),
            monitoring_endpoint: spec
                .endpoint
                .clone()
                .unwrap_or_else(|| "https://monitoring.googleapis.com".to_owned()),
            usage_interval: self.usage_interval,
        };
        let endpoint = spec
            .endpoint
            .as_deref()
            .unwrap_or("https://compute.googleapis.com");
        Ok(Compute::new(transport, tokens, endpoint, settings).with_kube(self.kube.clone()))
    }
}
