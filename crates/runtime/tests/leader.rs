//! Leader election against a real API server: two candidates, one wins; the other takes
//! over when the first releases, and when the first vanishes without releasing (expiry).

use std::time::Duration;

use datum_runtime::leader::{Leadership, LeaseOptions};
use datum_testenv::ControlPlane;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// Safety net against a hung test, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

fn options(namespace: &str, identity: &str) -> LeaseOptions {
    LeaseOptions {
        duration: Duration::from_secs(2),
        grace: Duration::from_secs(1),
        ..LeaseOptions::new(namespace, "provider", identity)
    }
}

async fn holder(client: &kube::Client, namespace: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get("provider")
        .await
        .expect("the lease exists");
    lease.spec.and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn one_candidate_wins_and_the_other_takes_over_on_release_and_on_expiry() {
    let cp = ControlPlane::shared().await.expect("control plane starts");
    let client = cp.admin_client().await.expect("admin client");
    let ns = cp
        .fresh_namespace(&client, "leader")
        .await
        .expect("namespace");

    let mut a = Leadership::start(client.clone(), options(&ns, "a"))
        .await
        .expect("a starts");
    tokio::time::timeout(PATIENCE, a.acquired())
        .await
        .expect("a leads");
    let mut b = Leadership::start(client.clone(), options(&ns, "b"))
        .await
        .expect("b starts");
    // b competes for a few renewal periods of a's; a keeps the Lease throughout.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(a.is_leader(), "a keeps leading while it renews");
        assert!(!b.is_leader(), "b never leads while a holds the lease");
        assert_eq!(holder(&client, &ns).await.as_deref(), Some("a"));
    }

    // Release: b takes over.
    a.release().await.expect("a releases");
    tokio::time::timeout(PATIENCE, b.acquired())
        .await
        .expect("b leads after a released");
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("b"));

    // Expiry: b vanishes without releasing; c takes over once the lease expires.
    let mut c = Leadership::start(client.clone(), options(&ns, "c"))
        .await
        .expect("c starts");
    assert!(!c.is_leader(), "c does not lead while b's lease is valid");
    b.abandon();
    tokio::time::timeout(PATIENCE, c.acquired())
        .await
        .expect("c leads after b's lease expired");
    assert_eq!(holder(&client, &ns).await.as_deref(), Some("c"));
    c.release().await.expect("c releases");
}
