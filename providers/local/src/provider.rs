//! [`LocalProvider`]: serves Locations whose `spec.provider` key is `local`, configured by a
//! `local.provider.datum.net/v1alpha1` ProviderConfig; `connect` gives a [`LocalHost`].
//! The registries' `authSecretRef`s are read by the SDK (a changed Secret reconnects) and
//! become the image store's credentials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::local::{ProviderConfig, ProviderConfigSpec};
use datum_provider::{ConnectError, Credentials, PlatformError, Provider};

use crate::containerd::Containerd;
use crate::image::{Images, RegistryCredentials};
use crate::ipam::Ipam;
use crate::names::HostNames;
use crate::usage::Sampler;

/// Faults a test injects by ProviderConfig name; empty in a real process.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    hang_after_create: Arc<Mutex<HashMap<String, bool>>>,
}

impl Faults {
    /// Makes creates under the ProviderConfig `name` take effect, then never return.
    pub fn set_hang_after_create(&self, name: &str, on: bool) {
        if let Ok(mut map) = self.hang_after_create.lock() {
            map.insert(name.to_owned(), on);
        }
    }

    fn hang_after_create(&self, name: &str) -> bool {
        self.hang_after_create
            .lock()
            .ok()
            .and_then(|m| m.get(name).copied())
            .unwrap_or(false)
    }
}

/// The local provider.
#[derive(Clone, Default)]
pub struct LocalProvider {
    /// Injected faults (tests only).
    pub faults: Faults,
    /// The control plane, for the ConfigMaps and Secrets that instances mount as files.
    pub kube: Option<kube::Client>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("faults", &self.faults)
            .field("kube", &self.kube.is_some())
            .finish()
    }
}

/// The host, connected: containerd, the image store, the allocator, the namespaces.
pub struct LocalHost {
    /// The control plane, for configMap and secret volumes.
    pub kube: Option<kube::Client>,
    /// The configuration.
    pub config: ProviderConfigSpec,
    /// Where state lives.
    pub state_dir: PathBuf,
    /// containerd.
    pub containerd: Containerd,
    /// Images.
    pub images: Images,
    /// The fallback allocator.
    pub ipam: Ipam,
    /// Namespace names.
    pub names: HostNames,
    /// CPU samples.
    pub usage: Sampler,
    /// Serializes changes to Location namespaces and their rules.
    pub network_lock: tokio::sync::Mutex<()>,
    /// The rules last loaded into each Location namespace, so a change of set members
    /// alone is applied without reloading the table.
    pub(crate) applied_rules: Mutex<HashMap<String, crate::firewall::Ruleset>>,
    hang_after_create: bool,
}

impl LocalHost {
    /// Connects to the host as `config` says.
    pub fn new(
        config: &ProviderConfigSpec,
        kube: Option<kube::Client>,
        hang_after_create: bool,
    ) -> Result<Self, ConnectError> {
        let state_dir = PathBuf::from(&config.state_dir);
        if !state_dir.is_absolute() {
            return Err(ConnectError(format!(
                "spec.stateDir {:?} is invalid: it must be an absolute path",
                config.state_dir
            )));
        }
        std::fs::create_dir_all(&state_dir).map_err(|e| {
            ConnectError(format!(
                "spec.stateDir {:?} is invalid: it cannot be created: {e}",
                config.state_dir
            ))
        })?;
        let containerd = Containerd::connect(
            Path::new(&config.containerd.socket),
            &config.containerd.namespace,
            &config.containerd.runtime,
        )
        .map_err(|e| ConnectError(format!("spec.containerd is invalid: {e}")))?;
        Ok(Self {
            kube,
            images: Images::new(&state_dir, config.registries.clone()),
            ipam: Ipam::new(&state_dir),
            names: HostNames::new(&config.network.namespace_prefix),
            usage: Sampler::default(),
            network_lock: tokio::sync::Mutex::new(()),
            applied_rules: Mutex::default(),
            containerd,
            state_dir,
            config: config.clone(),
            hang_after_create,
        })
    }

    /// Fails unless containerd answers. Every verb on a container Instance checks first, so
    /// calls against an unreachable daemon take no effect. Only those: VMs (QEMU),
    /// NetworkContexts and Subnets (namespaces, bridges, nftables) never talk to containerd,
    /// so a host without it still serves them.
    pub async fn require_containerd(&self) -> Result<(), PlatformError> {
        self.containerd
            .version()
            .await
            .map(|_| ())
            .map_err(|e| PlatformError {
                reason: "ContainerdUnreachable".to_owned(),
                message: format!("{} ({})", e, self.config.containerd.socket),
            })
    }

    /// Never returns when the fault is injected (after a create took effect).
    pub async fn hang_after_create(&self) {
        if self.hang_after_create {
            futures::future::pending::<()>().await;
        }
    }
}

impl std::fmt::Debug for LocalHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHost")
            .field("state_dir", &self.state_dir)
            .field("containerd", &self.containerd)
            .finish_non_exhaustive()
    }
}

impl Provider for LocalProvider {
    type Config = ProviderConfig;
    type Client = LocalHost;

    fn name(&self) -> &str {
        "local"
    }

    fn secret_refs(&self, config: &ProviderConfig) -> Vec<SecretKeyRef> {
        config
            .spec
            .registries
            .iter()
            .filter_map(|r| r.auth_secret_ref.clone())
            .collect()
    }

    /// Instances get the NetworkPolicies that select them, as nftables chains and sets.
    fn enforces_network_policies(&self) -> bool {
        true
    }

    async fn connect(
        &self,
        config: &ProviderConfig,
        credentials: &Credentials,
    ) -> Result<LocalHost, ConnectError> {
        let name = config.metadata.name.clone().unwrap_or_default();
        let registry_credentials = registry_credentials(&config.spec, credentials)?;
        let mut host = LocalHost::new(
            &config.spec,
            self.kube.clone(),
            self.faults.hang_after_create(&name),
        )?;
        host.images = host.images.with_credentials(registry_credentials);
        Ok(host)
    }
}

/// The credentials of every registry with an `authSecretRef`: its docker config document,
/// which must hold an entry for the registry or one of its mirrors.
fn registry_credentials(
    spec: &ProviderConfigSpec,
    credentials: &Credentials,
) -> Result<RegistryCredentials, ConnectError> {
    let mut out = RegistryCredentials::default();
    for (index, registry) in spec.registries.iter().enumerate() {
        let Some(reference) = &registry.auth_secret_ref else {
            continue;
        };
        let invalid = |message: String| {
            ConnectError(format!(
                "spec.registries[{index}].authSecretRef (Secret {}/{} key {}) is invalid: {message}",
                reference.namespace, reference.name, reference.key
            ))
        };
        let document = credentials
            .get(reference)
            .ok_or_else(|| invalid("it was not read".to_owned()))?;
        let parsed = RegistryCredentials::parse(document).map_err(invalid)?;
        let hosts =
            std::iter::once(registry.host.as_str()).chain(registry.mirrors.iter().map(|m| {
                m.split_once("://")
                    .map_or(m.as_str(), |(_, host)| host)
                    .trim_end_matches('/')
            }));
        if !hosts.clone().any(|h| parsed.has_host(h)) {
            return Err(invalid(format!(
                "its docker config has no auths entry for {}",
                hosts.collect::<Vec<_>>().join(" or ")
            )));
        }
        out.extend(parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::provider_config::local::Registry;

    #[test]
    fn registry_auth_secrets_become_credentials_for_their_host() {
        let reference = SecretKeyRef {
            name: "pull".to_owned(),
            namespace: "datum-system".to_owned(),
            key: ".dockerconfigjson".to_owned(),
        };
        let spec = ProviderConfigSpec {
            registries: vec![Registry {
                host: "127.0.0.1:5000".to_owned(),
                insecure: true,
                auth_secret_ref: Some(reference.clone()),
                ..Registry::default()
            }],
            ..serde_json::from_value(serde_json::json!({})).expect("defaults")
        };
        let mut credentials = Credentials::default();
        credentials.insert(
            &reference,
            br#"{"auths": {"127.0.0.1:5000": {"username": "u", "password": "p"}}}"#.to_vec(),
        );
        let parsed = registry_credentials(&spec, &credentials).expect("valid");
        assert!(parsed.has_host("127.0.0.1:5000"));
        credentials.insert(
            &reference,
            br#"{"auths": {"ghcr.io": {"username": "u", "password": "s3cret"}}}"#.to_vec(),
        );
        let e = registry_credentials(&spec, &credentials)
            .expect_err("no entry for the host")
            .0;
        assert_eq!(
            e,
            "spec.registries[0].authSecretRef (Secret datum-system/pull key .dockerconfigjson) is invalid: its docker config has no auths entry for 127.0.0.1:5000"
        );
    }
}
