//! The provider's connection to its platform: made from the named ProviderConfig and the
//! Secret keys it refers to, remade whenever either changes.
//!
//! [`Connection::refresh`] reads the config and its Secrets and compares their
//! `resourceVersion`s with what the current client was made from; only a change leads to a
//! new [`Provider::connect`](crate::Provider::connect). [`Connection::run`] refreshes
//! periodically and announces each change, so the runtime re-reconciles every object with
//! the new client. A missing or wrong config is not an error of the process: it is a
//! [`ConfigProblem`] that every affected object reports in its `Programmed` condition.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use datum_runtime::shutdown::CancellationToken;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource as _;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::external::{Credentials, Provider};

/// What is wrong with the ProviderConfig or its credentials. Messages name the object and
/// the field, never a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// No connection attempt has finished yet.
    #[error("the provider has not connected yet")]
    NotConnectedYet,
    /// The named ProviderConfig does not exist.
    #[error("ProviderConfig {0:?} does not exist")]
    ConfigNotFound(String),
    /// The ProviderConfig could not be read.
    #[error("failed to read ProviderConfig {name:?}: {message}")]
    ConfigUnreadable { name: String, message: String },
    /// A Secret the config names does not exist.
    #[error("Secret {namespace}/{name}, named by ProviderConfig {config:?}, does not exist")]
    SecretNotFound {
        config: String,
        namespace: String,
        name: String,
    },
    /// A Secret the config names lacks the key.
    #[error("Secret {namespace}/{name}, named by ProviderConfig {config:?}, has no key {key:?}")]
    SecretKeyMissing {
        config: String,
        namespace: String,
        name: String,
        key: String,
    },
    /// A Secret could not be read.
    #[error("failed to read Secret {namespace}/{name}: {message}")]
    SecretUnreadable {
        namespace: String,
        name: String,
        message: String,
    },
    /// The provider refused the config.
    #[error("ProviderConfig {config:?} is invalid: {message}")]
    ConnectFailed { config: String, message: String },
}

type Connected<C> = Result<Arc<C>, ConfigProblem>;

/// The current connection and what it was made from.
pub struct Connection<P: Provider> {
    provider: Arc<P>,
    kube: Client,
    config_name: String,
    state: RwLock<(String, Connected<P::Client>)>,
    changes: watch::Sender<u64>,
}

impl<P: Provider> Connection<P> {
    /// A connection not yet made; call [`Connection::refresh`].
    pub fn new(provider: Arc<P>, kube: Client, config_name: impl Into<String>) -> Self {
        Self {
            provider,
            kube,
            config_name: config_name.into(),
            state: RwLock::new((String::new(), Err(ConfigProblem::NotConnectedYet))),
            changes: watch::channel(0).0,
        }
    }

    /// The connected client, or what is wrong.
    pub fn current(&self) -> Connected<P::Client> {
        self.read().1.clone()
    }

    /// A receiver that changes whenever the connection is remade.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Re-reads the config and its Secrets; reconnects if they changed. Returns whether the
    /// connection changed.
    pub async fn refresh(&self) -> bool {
        let (fingerprint, inputs) = self.read_inputs().await;
        if self.read().0 == fingerprint {
            return false;
        }
        let connected = match inputs {
            Err(problem) => Err(problem),
            Ok((config, credentials)) => self
                .provider
                .connect(&config, &credentials)
                .await
                .map(Arc::new)
                .map_err(|e| ConfigProblem::ConnectFailed {
                    config: self.config_name.clone(),
                    message: e.0,
                }),
        };
        match &connected {
            Ok(_) => tracing::info!(config = %self.config_name, "connected to the platform"),
            Err(problem) => tracing::warn!(config = %self.config_name, %problem, "cannot connect"),
        }
        *self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (fingerprint, connected);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        true
    }

    /// Refreshes every `poll` until `shutdown`.
    pub async fn run(self: Arc<Self>, poll: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(poll) => { self.refresh().await; }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (String, Connected<P::Client>)> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The config, the credentials, and a fingerprint of their resource versions.
    async fn read_inputs(&self) -> (String, Result<(P::Config, Credentials), ConfigProblem>) {
        let name = &self.config_name;
        let config = match Api::<P::Config>::all(self.kube.clone()).get_opt(name).await {
            Ok(Some(config)) => config,
            Ok(None) => {
                return (
                    "absent".into(),
                    Err(ConfigProblem::ConfigNotFound(name.clone())),
                );
            }
            Err(e) => {
                let problem = ConfigProblem::ConfigUnreadable {
                    name: name.clone(),
                    message: e.to_string(),
                };
                return (format!("error:{e}"), Err(problem));
            }
        };
        let meta = config.meta();
        let mut fingerprint = format!(
            "{}@{}",
            meta.uid.clone().unwrap_or_default(),
            meta.resource_version.clone().unwrap_or_default()
        );
        let mut credentials = Credentials::default();
        let mut problem = None;
        for reference in self.provider.secret_refs(&config) {
            let api = Api::<Secret>::namespaced(self.kube.clone(), &reference.namespace);
            match api.get_opt(&reference.name).await {
                Ok(Some(secret)) => {
                    fingerprint.push_str(&format!(
                        ";{}/{}@{}",
                        reference.namespace,
                        reference.name,
                        secret.metadata.resource_version.clone().unwrap_or_default()
                    ));
                    match secret.data.as_ref().and_then(|d| d.get(&reference.key)) {
                        Some(value) => credentials.insert(&reference, value.0.clone()),
                        None => {
                            problem.get_or_insert(ConfigProblem::SecretKeyMissing {
                                config: name.clone(),
                                namespace: reference.namespace.clone(),
                                name: reference.name.clone(),
                                key: reference.key.clone(),
                            });
                        }
                    }
                }
                Ok(None) => {
                    fingerprint.push_str(&format!(
                        ";{}/{}@absent",
                        reference.namespace, reference.name
                    ));
                    problem.get_or_insert(ConfigProblem::SecretNotFound {
                        config: name.clone(),
                        namespace: reference.namespace.clone(),
                        name: reference.name.clone(),
                    });
                }
                Err(e) => {
                    fingerprint.push_str(";error");
                    problem.get_or_insert(ConfigProblem::SecretUnreadable {
                        namespace: reference.namespace.clone(),
                        name: reference.name.clone(),
                        message: e.to_string(),
                    });
                }
            }
        }
        match problem {
            Some(problem) => (fingerprint, Err(problem)),
            None => (fingerprint, Ok((config, credentials))),
        }
    }
}
