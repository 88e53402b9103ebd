//! Shared fixture for the GCP provider's tests: a fake Compute Engine (one per test, on
//! 127.0.0.1) with a listener per platform behaviour, a test-only service-account key, the
//! test binary's control plane, and the conformance [`Harness`].
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::gcp::ProviderConfig;
use datum_gcp_fake::{FakeCompute, InjectedError, Listener};
use datum_provider::conformance::{Behaviour, Harness};
use datum_provider::{Credentials, Provider};
use datum_provider_gcp::GcpProvider;
use datum_provider_gcp::compute::Compute;
use datum_testenv::ControlPlane;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The project every test uses.
pub const PROJECT: &str = "datum-test";

/// A throwaway RSA key generated for these tests; it is no credential for anything.
pub const TEST_KEY_PEM: &str = include_str!("../fixtures/test-service-account-key.pem");

/// A fake with a `default` auto-mode network (as in a new project) and three listeners.
pub struct Fake {
    pub fake: FakeCompute,
    pub healthy: Listener,
    pub failing: Listener,
    pub hanging: Listener,
}

impl Fake {
    pub async fn start(polls_to_done: u32) -> Self {
        let fake = FakeCompute::new(polls_to_done);
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&pem_der(TEST_KEY_PEM))
            .expect("the test key loads");
        fake.trust_key(
            ring::signature::KeyPair::public_key(&pair)
                .as_ref()
                .to_vec(),
        );
        let healthy = fake.listen().await.expect("listens");
        let failing = fake.listen().await.expect("listens");
        failing
            .faults
            .fail_all(Some(InjectedError::backend_error()));
        let hanging = fake.listen().await.expect("listens");
        hanging.faults.hang_after_insert(true);
        fake.with_compute(|c| {
            c.seed(
                &format!("projects/{PROJECT}/global/networks/default"),
                json!({ "name": "default", "autoCreateSubnetworks": true, "mtu": 1460 }),
            );
        });
        Self {
            fake,
            healthy,
            failing,
            hanging,
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.fake.with_compute(|c| c.names())
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64")
}

/// A service-account key file whose token endpoint is `listener`'s.
pub fn key_file(listener: &Listener) -> Vec<u8> {
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY_PEM,
        "client_email": "provider@datum-test.iam.gserviceaccount.com",
        "token_uri": listener.token_uri,
    })
    .to_string()
    .into_bytes()
}

/// A provider tuned for tests: fast polls, short timeouts.
pub fn provider() -> GcpProvider {
    GcpProvider {
        poll_interval: Duration::from_millis(10),
        operation_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
        kube: None,
        ..GcpProvider::default()
    }
}

/// A ProviderConfig pointing at `listener`, its key in Secret `default/<name>`.
pub fn config(name: &str, listener: &Listener) -> ProviderConfig {
    serde_json::from_value(json!({
        "apiVersion": "gcp.provider.datum.net/v1alpha1",
        "kind": "ProviderConfig",
        "metadata": { "name": name },
        "spec": {
            "projectId": PROJECT,
            "endpoint": listener.endpoint,
            "credentials": { "secretRef": { "namespace": "default", "name": name, "key": "credentials.json" } },
        },
    }))
    .expect("a valid ProviderConfig")
}

/// A connected client without Kubernetes.
pub async fn connect(listener: &Listener) -> Compute {
    connect_with(provider(), listener).await
}

/// [`connect`] through `provider` (e.g. another usage interval).
pub async fn connect_with(provider: GcpProvider, listener: &Listener) -> Compute {
    let config = config("direct", listener);
    let mut credentials = Credentials::default();
    let reference = SecretKeyRef {
        namespace: "default".into(),
        name: "direct".into(),
        key: "credentials.json".into(),
    };
    credentials.insert(&reference, key_file(listener));
    provider
        .connect(&config, &credentials)
        .await
        .expect("connects")
}

/// The Location settings of the tests.
pub fn location_settings() -> Value {
    json!({ "projectId": PROJECT, "region": "us-central1", "zone": "us-central1-a" })
}

pub struct GcpHarness {
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub fake: Fake,
}

/// The control plane with CRDs installed, and a fresh fake.
pub async fn harness() -> GcpHarness {
    let cp = ControlPlane::shared_with(datum_api::crds::all)
        .await
        .expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    GcpHarness {
        cp,
        client,
        fake: Fake::start(2).await,
    }
}

impl GcpHarness {
    async fn put_secret(&self, name: &str, value: &[u8]) {
        use base64::Engine as _;
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name, "namespace": "default" },
            "data": { "credentials.json": base64::engine::general_purpose::STANDARD.encode(value) },
        }))
        .expect("a Secret");
        Api::<Secret>::namespaced(self.client.clone(), "default")
            .patch(
                name,
                &PatchParams::apply("gcp-tests").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("the Secret applies");
    }
}

impl Harness for GcpHarness {
    type Provider = GcpProvider;

    fn provider(&self) -> GcpProvider {
        provider()
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
        let listener = match behaviour {
            Behaviour::Healthy | Behaviour::Invalid => &self.fake.healthy,
            Behaviour::Failing => &self.fake.failing,
            Behaviour::HangAfterCreate => &self.fake.hanging,
        };
        let key = match behaviour {
            Behaviour::Invalid => b"not a key file".to_vec(),
            _ => key_file(listener),
        };
        self.put_secret(name, &key).await;
        config(name, listener)
    }

    async fn external_names(&self) -> Vec<String> {
        self.fake.names()
    }

    fn location_settings(&self) -> serde_json::Map<String, Value> {
        location_settings().as_object().cloned().unwrap_or_default()
    }
}

/// The control plane's controllers and this provider, running against one test namespace,
/// with a GCP Location (`us-central1-a`, city `city`), a ProviderConfig for the fake and an
/// IPv4 Network `default`.
pub struct Platform {
    pub location: String,
    stop: datum_runtime::shutdown::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Platform {
    pub async fn start(h: &GcpHarness, ns: &str, city: &str) -> Self {
        Self::start_with(h, ns, city, provider()).await
    }

    /// [`Platform::start`] running `provider` (e.g. another usage interval), with the
    /// autoscaler looking every second.
    pub async fn start_with(h: &GcpHarness, ns: &str, city: &str, provider: GcpProvider) -> Self {
        use datum_provider::conformance::Behaviour;
        use kube::Resource as _;
        let client = h.client.clone();
        let location = format!("{ns}-gcp");
        let value = json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": { "name": location },
            "spec": {
                "locationClassName": "datum-managed",
                "topology": { "topology.datum.net/city-code": city },
                "provider": { "gcp": { "projectId": PROJECT, "region": "us-central1", "zone": "us-central1-a" } },
            },
        });
        let object: datum_api::networking::Location =
            serde_json::from_value(value).expect("a Location");
        Api::<datum_api::networking::Location>::all(client.clone())
            .create(&Default::default(), &object)
            .await
            .expect("the Location");
        let config_name = format!("{ns}-cfg");
        let mut config = h.config(&config_name, Behaviour::Healthy).await;
        config.meta_mut().managed_fields = None;
        Api::<ProviderConfig>::all(client.clone())
            .patch(
                &config_name,
                &PatchParams::apply("gcp-tests").force(),
                &Patch::Apply(&config),
            )
            .await
            .expect("the ProviderConfig");
        let network: datum_api::networking::Network = serde_json::from_value(json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
            "metadata": { "name": "default" },
            "spec": { "ipam": { "mode": "Auto" }, "ipFamilies": ["IPv4"] },
        }))
        .expect("a Network");
        Api::<datum_api::networking::Network>::namespaced(client.clone(), ns)
            .create(&Default::default(), &network)
            .await
            .expect("the Network");

        let stop = datum_runtime::shutdown::CancellationToken::new();
        let mut settings = datum_control::Settings {
            namespace: Some(ns.to_owned()),
            resync: Duration::from_secs(5),
            retry: Duration::from_millis(250),
            ..datum_control::Settings::default()
        };
        settings.autoscaler.interval = Duration::from_secs(1);
        let control = tokio::spawn(datum_control::run(
            client.clone(),
            settings,
            stop.clone().cancelled_owned(),
        ));
        let mut options = datum_provider::Options::new(config_name);
        options.namespace = Some(ns.to_owned());
        options.resync = Duration::from_secs(1);
        options.progress_requeue = Duration::from_millis(250);
        options.config_poll = Duration::from_millis(500);
        options.backoff_max = Duration::from_secs(2);
        let provider = GcpProvider {
            kube: Some(client.clone()),
            ..provider
        };
        let token = stop.clone();
        let runtime = tokio::spawn(async move {
            let _ = datum_provider::run(provider, client, options, token).await;
        });
        Self {
            location,
            stop,
            tasks: vec![control, runtime],
        }
    }

    /// Stops the controllers and the provider.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Bound on each wait, against a hung test; waits end as soon as the state is reached.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `probe` until it gives a value, failing the test after [`PATIENCE`].
pub async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The end of a test through the control plane: waits until namespace `ns` has no
/// Instance left, deletes its Network `default`, and waits until the fake holds nothing
/// but the project's own `default` network (what it started with).
pub async fn expect_nothing_left(h: &GcpHarness, ns: &str) {
    let instances = Api::<datum_api::compute::Instance>::namespaced(h.client.clone(), ns);
    eventually("the Instances are gone", || async {
        instances
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    Api::<datum_api::networking::Network>::namespaced(h.client.clone(), ns)
        .delete("default", &Default::default())
        .await
        .expect("the Network deletes");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while h.fake.names() != vec!["default".to_owned()] {
        let log = h.fake.fake.with_compute(|c| c.log.clone());
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fake still holds {:?}; log tail: {:?}",
            h.fake.names(),
            &log[log.len().saturating_sub(12)..]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
