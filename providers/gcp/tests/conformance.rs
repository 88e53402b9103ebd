//! The SDK's conformance suite, run against the GCP provider and the fake Compute Engine
//! on a real control plane.

mod common;

use datum_provider::conformance;

#[tokio::test]
async fn create_then_observe_is_idempotent() {
    conformance::create_then_observe_is_idempotent(&common::harness().await).await;
}

#[tokio::test]
async fn update_converges() {
    conformance::update_converges(&common::harness().await).await;
}

#[tokio::test]
async fn delete_leaves_nothing() {
    conformance::delete_leaves_nothing(&common::harness().await).await;
}

#[tokio::test]
async fn crash_between_create_and_record_does_not_duplicate() {
    conformance::crash_between_create_and_record_does_not_duplicate(&common::harness().await).await;
}

#[tokio::test]
async fn delete_while_create_pending_cleans_up() {
    conformance::delete_while_create_pending_cleans_up(&common::harness().await).await;
}

#[tokio::test]
async fn platform_errors_surface_and_recover() {
    conformance::platform_errors_surface_and_recover(&common::harness().await).await;
}

#[tokio::test]
async fn bad_config_gives_clear_condition() {
    conformance::bad_config_gives_clear_condition(&common::harness().await).await;
}
