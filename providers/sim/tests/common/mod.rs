//! Shared fixture for the sim provider's tests: the test binary's control plane with every
//! Datum CRD installed, a ledger directory, and the conformance [`Harness`].
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::sim::{FailurePoint, Latency, ProviderConfig, ProviderConfigSpec};
use datum_provider::conformance::{Behaviour, Harness};
use datum_provider_sim::SimProvider;
use datum_provider_sim::ledger::Ledger;
use datum_testenv::ControlPlane;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

pub struct SimHarness {
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub state_dir: PathBuf,
}

/// The control plane with CRDs installed, and a ledger directory unique to this test.
pub async fn harness(test: &str) -> SimHarness {
    let cp = ControlPlane::shared_with(datum_api::crds::all)
        .await
        .expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    let state_dir = std::env::temp_dir().join(format!("datum-sim-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    SimHarness {
        cp,
        client,
        state_dir,
    }
}

/// A sim ProviderConfig writing to `state_dir`.
pub fn sim_config(
    name: &str,
    state_dir: &std::path::Path,
    error_percent: u8,
    failure_points: Vec<FailurePoint>,
) -> ProviderConfig {
    ProviderConfig::new(
        name,
        ProviderConfigSpec {
            state_dir: state_dir.display().to_string(),
            latency: Latency {
                min_millis: 0,
                max_millis: 3,
            },
            error_percent,
            failure_points,
            credentials_secret_ref: None,
        },
    )
}

impl SimHarness {
    pub fn ledger(&self) -> Ledger {
        Ledger::open(&self.state_dir).expect("the ledger opens")
    }
}

impl Harness for SimHarness {
    type Provider = SimProvider;

    fn provider(&self) -> SimProvider {
        SimProvider
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    async fn fresh_namespace(&self, check: &str) -> String {
        self.cp
            .fresh_namespace(&self.client, check)
            .await
            .expect("a namespace")
    }

    async fn config(&self, name: &str, behaviour: Behaviour) -> ProviderConfig {
        match behaviour {
            Behaviour::Healthy => sim_config(name, &self.state_dir, 0, vec![]),
            Behaviour::Failing => sim_config(name, &self.state_dir, 100, vec![]),
            Behaviour::HangAfterCreate => sim_config(
                name,
                &self.state_dir,
                0,
                vec![FailurePoint::HangAfterCreate],
            ),
            Behaviour::Invalid => {
                // An existing Secret with an empty token: connect refuses it.
                let secret: Secret = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": { "name": name, "namespace": "default" },
                    "data": { "token": "" },
                }))
                .expect("a Secret");
                Api::<Secret>::namespaced(self.client.clone(), "default")
                    .patch(
                        name,
                        &PatchParams::apply("conformance").force(),
                        &Patch::Apply(&secret),
                    )
                    .await
                    .expect("the Secret applies");
                let mut config = sim_config(name, &self.state_dir, 0, vec![]);
                config.spec.credentials_secret_ref = Some(SecretKeyRef {
                    name: name.to_owned(),
                    namespace: "default".to_owned(),
                    key: "token".to_owned(),
                });
                config
            }
        }
    }

    async fn external_names(&self) -> Vec<String> {
        let ledger = self.ledger();
        tokio::task::spawn_blocking(move || ledger.read())
            .await
            .expect("the ledger task joins")
            .expect("the ledger reads")
            .records
            .into_iter()
            .map(|r| r.name)
            .collect()
    }
}
