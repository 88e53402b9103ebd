//! The SDK's conformance suite against the local provider, for real (containerd, runc,
//! namespaces). The behaviours map onto real conditions:
//! - `Healthy`: this test's containerd and registry (the suite's `nginx:N` images come from
//!   the loopback registry configured as a `docker.io` mirror);
//! - `Failing`: a containerd socket that does not exist — every call on the suite's
//!   (container) instances fails before acting;
//! - `Invalid`: a `stateDir` that cannot be a directory (`/dev/null/...`), which `connect`
//!   refuses;
//! - `HangAfterCreate`: an injected fault ([`Faults`]): the containers are made, then the
//!   create call never returns.

mod common;

use datum_api::provider_config::local::ProviderConfig;
use datum_provider::conformance::{self, Behaviour, Harness};
use datum_provider_local::{Faults, LocalProvider};
use kube::Client;

struct LocalHarness {
    host: common::Host,
    faults: Faults,
}

async fn harness(test: &str) -> LocalHarness {
    LocalHarness {
        host: common::host(test).await,
        faults: Faults::default(),
    }
}

impl Harness for LocalHarness {
    type Provider = LocalProvider;

    fn provider(&self) -> LocalProvider {
        LocalProvider {
            faults: self.faults.clone(),
            kube: Some(self.host.client.clone()),
        }
    }

    fn client(&self) -> Client {
        self.host.client.clone()
    }

    async fn fresh_namespace(&self, check: &str) -> String {
        self.host
            .cp
            .fresh_namespace(&self.host.client, check)
            .await
            .expect("a namespace")
    }

    async fn config(&self, name: &str, behaviour: Behaviour) -> ProviderConfig {
        self.faults
            .set_hang_after_create(name, behaviour == Behaviour::HangAfterCreate);
        match behaviour {
            Behaviour::Healthy | Behaviour::HangAfterCreate => self.host.config(name, None),
            Behaviour::Failing => {
                let absent = self.host.dir.join("absent.sock");
                self.host.config(name, Some(&absent.display().to_string()))
            }
            Behaviour::Invalid => {
                let mut config = self.host.config(name, None);
                config.spec.state_dir = "/dev/null/datum-invalid".to_owned();
                config
            }
        }
    }

    async fn external_names(&self) -> Vec<String> {
        self.host
            .local_host()
            .external_names()
            .await
            .expect("the host lists what exists")
    }
}

#[tokio::test]
async fn create_then_observe_is_idempotent() {
    conformance::create_then_observe_is_idempotent(&harness("idempotent").await).await;
}

#[tokio::test]
async fn update_converges() {
    conformance::update_converges(&harness("update").await).await;
}

#[tokio::test]
async fn delete_leaves_nothing() {
    conformance::delete_leaves_nothing(&harness("delete").await).await;
}

#[tokio::test]
async fn crash_between_create_and_record_does_not_duplicate() {
    conformance::crash_between_create_and_record_does_not_duplicate(&harness("crash").await).await;
}

#[tokio::test]
async fn delete_while_create_pending_cleans_up() {
    conformance::delete_while_create_pending_cleans_up(&harness("pending-delete").await).await;
}

#[tokio::test]
async fn platform_errors_surface_and_recover() {
    conformance::platform_errors_surface_and_recover(&harness("errors").await).await;
}

#[tokio::test]
async fn bad_config_gives_clear_condition() {
    conformance::bad_config_gives_clear_condition(&harness("bad-config").await).await;
}
