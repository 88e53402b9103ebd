//! Workload Identity Federation end to end against the fake: a subject token read from a
//! file is exchanged at STS, optionally traded for a service account's token with
//! `generateAccessToken`, and the resulting token reaches Compute Engine; every refusal
//! (unknown audience, untrusted subject token, impersonation not granted, missing file,
//! no audience) is a clear `ConnectError` that never quotes a token.

mod common;

use datum_api::networking::NetworkContext;
use datum_api::provider_config::gcp::ProviderConfig;
use datum_gcp_fake::Listener;
use datum_provider::{Credentials, ExternalClient, ExternalResource, Provider};
use datum_provider_gcp::GcpProvider;
use serde_json::{Value, json};

use common::{Fake, PROJECT};

const AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/datum/providers/k8s";
const SUBJECT: &str = "eyJhbGciOiJSUzI1NiJ9.k8s-projected-token.sig";
const ACCOUNT: &str = "provider@datum-test.iam.gserviceaccount.com";

fn config(listener: &Listener, identity: Value) -> ProviderConfig {
    serde_json::from_value(json!({
        "apiVersion": "gcp.provider.datum.net/v1alpha1",
        "kind": "ProviderConfig",
        "metadata": { "name": "federated" },
        "spec": {
            "projectId": PROJECT,
            "endpoint": listener.endpoint,
            "credentials": { "workloadIdentity": identity },
        },
    }))
    .expect("a valid ProviderConfig")
}

/// A provider reading its subject token from a fresh file holding `token`.
fn provider(name: &str, token: Option<&str>) -> GcpProvider {
    let file =
        std::env::temp_dir().join(format!("datum-gcp-subject-{name}-{}", std::process::id()));
    match token {
        Some(token) => std::fs::write(&file, format!("{token}\n")).expect("the token file"),
        None => {
            let _ = std::fs::remove_file(&file);
        }
    }
    GcpProvider {
        subject_token_file: file,
        ..common::provider()
    }
}

async fn connect_error(provider: &GcpProvider, config: &ProviderConfig) -> String {
    let error = provider
        .connect(config, &Credentials::default())
        .await
        .expect_err("refused")
        .0;
    assert!(
        !error.contains(SUBJECT) && !error.contains("ya29."),
        "no token in {error}"
    );
    error
}

#[tokio::test]
async fn a_federated_token_reaches_compute_engine_directly_and_by_impersonation() {
    let fake = Fake::start(1).await;
    fake.fake.with_federation(|f| {
        f.trust(SUBJECT, AUDIENCE);
        f.allow_impersonation(ACCOUNT);
    });
    let spec: datum_api::networking::NetworkContextSpec = serde_json::from_value(
        json!({ "network": { "name": "net" }, "location": { "name": "loc" } }),
    )
    .expect("a spec");
    let settings = common::location_settings();
    let annotations = std::collections::BTreeMap::new();
    for (i, identity) in [
        json!({ "audience": AUDIENCE }),
        json!({ "audience": AUDIENCE, "serviceAccountEmail": ACCOUNT }),
    ]
    .into_iter()
    .enumerate()
    {
        let compute = provider(&format!("ok{i}"), Some(SUBJECT))
            .connect(&config(&fake.healthy, identity), &Credentials::default())
            .await
            .expect("connects");
        let uid = format!("f{i}");
        let r = ExternalResource::<NetworkContext> {
            namespace: "ns",
            name: "net-loc",
            uid: &uid,
            external_name: format!("datum-{uid}"),
            id: None,
            spec: &spec,
            location_settings: &settings,
            assigned: vec![],
            annotations: &annotations,
            labels: &annotations,
            network_policies: Vec::new(),
        };
        let id = compute
            .create(&r)
            .await
            .expect("Compute Engine accepts the token");
        assert!(fake.fake.with_compute(|c| c.resource(&id)).is_some());
    }
}

#[tokio::test]
async fn every_refusal_says_what_was_refused_and_quotes_no_token() {
    let fake = Fake::start(1).await;
    fake.fake.with_federation(|f| f.trust(SUBJECT, AUDIENCE));
    let listener = &fake.healthy;

    let other_pool = AUDIENCE.replace("/providers/k8s", "/providers/other");
    let error = connect_error(
        &provider("aud", Some(SUBJECT)),
        &config(listener, json!({ "audience": other_pool })),
    )
    .await;
    assert!(error.contains("invalid_target"), "{error}");
    assert!(error.contains("workloadIdentity"), "{error}");

    let error = connect_error(
        &provider("grant", Some("a-token-the-pool-does-not-accept")),
        &config(listener, json!({ "audience": AUDIENCE })),
    )
    .await;
    assert!(error.contains("invalid_grant"), "{error}");

    let error = connect_error(
        &provider("sa", Some(SUBJECT)),
        &config(
            listener,
            json!({ "audience": AUDIENCE, "serviceAccountEmail": ACCOUNT }),
        ),
    )
    .await;
    assert!(
        error.contains("PERMISSION_DENIED")
            && error.contains("iam.serviceAccounts.getAccessToken")
            && error.contains(ACCOUNT),
        "{error}"
    );

    let error = connect_error(
        &provider("missing", None),
        &config(listener, json!({ "audience": AUDIENCE })),
    )
    .await;
    assert!(error.contains("subject token file"), "{error}");

    let error = connect_error(
        &provider("ambient", Some(SUBJECT)),
        &config(listener, json!({ "serviceAccountEmail": ACCOUNT })),
    )
    .await;
    assert!(error.contains("without audience"), "{error}");
}
