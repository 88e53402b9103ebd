//! [`SimCloud`]: the four verbs for instances, network contexts and subnets, against the
//! [ledger](crate::ledger). Each call first sleeps a latency drawn from the config's range,
//! then fails with the configured probability (before taking effect), then acts; armed
//! failure points fire where they say.

use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::networking::{NetworkContext, Subnet};
use datum_api::provider_config::sim::{FailurePoint, ProviderConfigSpec};
use datum_provider::managed::ManagedKind;
use datum_provider::{
    ExternalClient, ExternalResource, InstanceLive, InterfaceAddresses, NetworkLive, Observation,
    PlatformError, PowerState, Usage,
};
use serde::Serialize;

use crate::ledger::{Ledger, Record, State};

/// A connection to the simulated cloud.
#[derive(Clone, Debug)]
pub struct SimCloud {
    ledger: Ledger,
    config: ProviderConfigSpec,
}

impl SimCloud {
    /// A client acting on `ledger` and behaving as `config` says.
    pub fn new(ledger: Ledger, config: ProviderConfigSpec) -> Self {
        Self { ledger, config }
    }

    /// Latency, then a random error.
    async fn call(&self, verb: &str) -> Result<(), PlatformError> {
        let latency = &self.config.latency;
        if latency.max_millis > 0 {
            let millis = rand::random_range(latency.min_millis..=latency.max_millis);
            tokio::time::sleep(Duration::from_millis(u64::from(millis))).await;
        }
        if rand::random_range(0u8..100) < self.config.error_percent {
            return Err(PlatformError {
                reason: "SimulatedError".to_owned(),
                message: format!("the simulated cloud failed the {verb} call"),
            });
        }
        Ok(())
    }

    fn armed(&self, point: FailurePoint) -> bool {
        self.config.failure_points.contains(&point)
    }

    async fn ledger<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> Result<T, PlatformError> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.update(change))
            .await
            .map_err(|e| PlatformError::new(format!("the ledger task failed: {e}")))?
            .map_err(|e| PlatformError::new(e.to_string()))
    }

    /// [`Self::ledger`] for a call that only looks.
    async fn ledger_view<T: Send + 'static>(
        &self,
        look: impl FnOnce(&State) -> T + Send + 'static,
    ) -> Result<T, PlatformError> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.view(look))
            .await
            .map_err(|e| PlatformError::new(format!("the ledger task failed: {e}")))?
            .map_err(|e| PlatformError::new(e.to_string()))
    }

    async fn find<K: ManagedKind>(
        &self,
        r: &ExternalResource<'_, K>,
    ) -> Result<Option<(Record, bool)>, PlatformError>
    where
        K::Spec: Serialize,
    {
        self.call("observe").await?;
        let (id, name, hash) = (
            r.id.map(str::to_owned),
            r.external_name.clone(),
            spec_hash(r.spec),
        );
        self.ledger_view(move |state| {
            state
                .records
                .iter()
                .find(|rec| match &id {
                    Some(id) => &rec.id == id,
                    None => rec.name == name && rec.kind == K::CONTROLLER,
                })
                .map(|rec| (rec.clone(), rec.spec_hash == hash))
        })
        .await
    }

    async fn create_record<K: ManagedKind>(
        &self,
        r: &ExternalResource<'_, K>,
    ) -> Result<String, PlatformError>
    where
        K::Spec: Serialize,
    {
        self.call("create").await?;
        let (name, hash) = (r.external_name.clone(), spec_hash(r.spec));
        let id = self
            .ledger(move |state| {
                state.last_id += 1;
                let id = state.last_id.to_string();
                state.records.push(Record {
                    id: id.clone(),
                    kind: K::CONTROLLER.to_owned(),
                    name,
                    spec_hash: hash,
                });
                id
            })
            .await?;
        if self.armed(FailurePoint::HangAfterCreate) {
            std::future::pending::<()>().await;
        }
        if self.armed(FailurePoint::AfterCreate) {
            return Err(PlatformError::new(
                "the connection dropped after the create was accepted",
            ));
        }
        Ok(id)
    }

    async fn update_record<K: ManagedKind>(
        &self,
        id: &str,
        r: &ExternalResource<'_, K>,
    ) -> Result<(), PlatformError>
    where
        K::Spec: Serialize,
    {
        self.call("update").await?;
        let (id, hash) = (id.to_owned(), spec_hash(r.spec));
        let found = self
            .ledger(move |state| {
                state
                    .records
                    .iter_mut()
                    .find(|rec| rec.id == id)
                    .map(|rec| rec.spec_hash = hash)
                    .is_some()
            })
            .await?;
        found
            .then_some(())
            .ok_or_else(|| PlatformError::new("update of a resource that does not exist"))
    }

    async fn delete_record(&self, id: &str) -> Result<(), PlatformError> {
        self.call("delete").await?;
        if self.armed(FailurePoint::DuringDelete) {
            return Err(PlatformError::new("the delete failed part-way"));
        }
        let id = id.to_owned();
        self.ledger(move |state| state.records.retain(|rec| rec.id != id))
            .await
    }
}

/// FNV-1a over the spec's JSON: stable across processes and builds.
fn spec_hash<T: Serialize>(spec: &T) -> String {
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

impl ExternalClient<Instance> for SimCloud {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Observation<InstanceLive>, PlatformError> {
        Ok(match self.find(r).await? {
            None => Observation::Absent,
            Some((record, up_to_date)) => {
                let n: u64 = record.id.parse().unwrap_or(0);
                let addresses = (0..r.spec.network_interfaces.len())
                    .map(|i| InterfaceAddresses {
                        network_ip: Some(format!("10.{}.{}.{}", i, (n / 250) % 250, n % 250 + 2)),
                        external_ip: None,
                    })
                    .collect();
                Observation::Exists {
                    live: InstanceLive {
                        provider_id: Some(format!("sim://{}", record.id)),
                        addresses,
                        power: PowerState::Running,
                        usage: Some(Usage {
                            cpu_utilization: Some(10),
                            memory_utilization: Some(20),
                        }),
                    },
                    id: record.id,
                    up_to_date,
                }
            }
        })
    }

    async fn create(&self, r: &ExternalResource<'_, Instance>) -> Result<String, PlatformError> {
        self.create_record(r).await
    }

    async fn update(
        &self,
        id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        self.update_record(id, r).await
    }

    async fn delete(
        &self,
        id: &str,
        _: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        self.delete_record(id).await
    }
}

/// The network kinds share one implementation.
macro_rules! network_kind {
    ($kind:ty) => {
        impl ExternalClient<$kind> for SimCloud {
            async fn observe(
                &self,
                r: &ExternalResource<'_, $kind>,
            ) -> Result<Observation<NetworkLive>, PlatformError> {
                Ok(match self.find(r).await? {
                    None => Observation::Absent,
                    Some((record, up_to_date)) => Observation::Exists {
                        live: NetworkLive {
                            provider_id: Some(format!("sim://{}", record.id)),
                        },
                        id: record.id,
                        up_to_date,
                    },
                })
            }

            async fn create(
                &self,
                r: &ExternalResource<'_, $kind>,
            ) -> Result<String, PlatformError> {
                self.create_record(r).await
            }

            async fn update(
                &self,
                id: &str,
                r: &ExternalResource<'_, $kind>,
            ) -> Result<(), PlatformError> {
                self.update_record(id, r).await
            }

            async fn delete(
                &self,
                id: &str,
                _: &ExternalResource<'_, $kind>,
            ) -> Result<(), PlatformError> {
                self.delete_record(id).await
            }
        }
    };
}

network_kind!(NetworkContext);
network_kind!(Subnet);
