//! Shared fixture for the example provider's tests: the test binary's control plane with
//! the Datum CRDs and this provider's ProviderConfig CRD installed, and the conformance
//! [`Harness`] over a stand-in platform of the test's own.
#![allow(dead_code)] // each test binary uses a different subset

use datum_api::provider_config::SecretKeyRef;
use datum_provider::conformance::{Behaviour, Harness};
use datum_provider_example::ExampleProvider;
use datum_provider_example::config::{ProviderConfig, ProviderConfigSpec};
use datum_provider_example::platform::{Mode, Platform};
use datum_testenv::ControlPlane;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, CustomResourceExt};

/// Where the harness keeps the credential Secrets of its ProviderConfigs.
const SECRET_NAMESPACE: &str = "default";

pub struct ExampleHarness {
    pub cp: &'static ControlPlane,
    pub client: Client,
    /// The platform every provider of this test reaches, as one cloud account would.
    pub platform: Platform,
}

/// Datum's CRDs and the example provider's ProviderConfig.
fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = datum_api::crds::all();
    crds.push(ProviderConfig::crd());
    crds
}

/// The control plane with the CRDs installed, and a fresh platform.
pub async fn harness() -> ExampleHarness {
    let cp = ControlPlane::shared_with(crds)
        .await
        .expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    ExampleHarness {
        cp,
        client,
        platform: Platform::new(),
    }
}

impl ExampleHarness {
    /// Applies the Secret `name` holding `token`.
    async fn apply_secret(&self, name: &str, token: &str) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(SECRET_NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some([("token".to_owned(), ByteString(token.as_bytes().to_vec()))].into()),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), SECRET_NAMESPACE)
            .patch(
                name,
                &PatchParams::apply("conformance").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("the Secret applies");
    }
}

impl Harness for ExampleHarness {
    type Provider = ExampleProvider;

    fn provider(&self) -> ExampleProvider {
        ExampleProvider::new(self.platform.clone())
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

    /// Each config gets its own Secret, whose token is the config's name; the platform
    /// treats that token's calls as `behaviour` says. `Invalid` is an empty token.
    async fn config(&self, name: &str, behaviour: Behaviour) -> ProviderConfig {
        let token = match behaviour {
            Behaviour::Healthy => Some(Mode::Healthy),
            Behaviour::Failing => Some(Mode::Failing),
            Behaviour::HangAfterCreate => Some(Mode::HangAfterCreate),
            Behaviour::Invalid => None,
        }
        .map_or(String::new(), |mode| {
            self.platform.set_mode(name, mode);
            name.to_owned()
        });
        self.apply_secret(name, &token).await;
        ProviderConfig::new(
            name,
            ProviderConfigSpec {
                endpoint: None,
                credentials_secret_ref: SecretKeyRef {
                    name: name.to_owned(),
                    namespace: SECRET_NAMESPACE.to_owned(),
                    key: "token".to_owned(),
                },
            },
        )
    }

    async fn external_names(&self) -> Vec<String> {
        self.platform.names()
    }
}
