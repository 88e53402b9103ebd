//! `sim.provider.datum.net/v1alpha1` ProviderConfig: how the simulated cloud behaves —
//! where it keeps its ledger, how slow and how unreliable its API is, and which failure
//! points are armed.
//!
//! ```yaml
//! apiVersion: sim.provider.datum.net/v1alpha1
//! kind: ProviderConfig
//! metadata: { name: default }
//! spec:
//!   stateDir: /var/lib/datum/sim
//!   latency: { minMillis: 5, maxMillis: 50 }
//!   errorPercent: 20
//!   failurePoints: [AfterCreate]
//! ```
//!
//! Decisions:
//! - **The ledger lives under `stateDir`**, so it outlives the provider process (chaos tests
//!   SIGKILL it) and tests can inspect it.
//! - **Errors are a whole percentage** (0–100) rather than a float, so CEL and humans read
//!   it the same way.
//! - **Credentials are optional**: when `credentialsSecretRef` is set, the key must exist and
//!   be non-empty, which lets tests exercise the "bad credentials" path like a real cloud.

use super::{ProviderConfigStatus, SecretKeyRef};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// How the simulated cloud behaves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Each `printcolumn(...)` repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "sim.provider.datum.net",
    version = "v1alpha1",
    kind = "ProviderConfig",
    status = "ProviderConfigStatus",
    derive = "PartialEq",
    doc = "Settings of the simulated cloud: ledger directory, latency, error rate, failure points and optional credentials.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// The directory holding the ledger of everything that exists in the simulated cloud.
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("stateDir must be an absolute path"))]
    pub state_dir: String,

    /// How long each API call takes.
    #[serde(default)]
    pub latency: Latency,

    /// The percentage of API calls that fail (before taking effect), 0–100.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub error_percent: u8,

    /// Failure points that fire on every call that reaches them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub failure_points: Vec<FailurePoint>,

    /// A Secret key holding an API token; when set it must exist and be non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyRef>,
}

/// A uniform latency range.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minMillis <= self.maxMillis").message("latency.minMillis must not exceed latency.maxMillis"))]
pub struct Latency {
    /// Shortest call, in milliseconds.
    #[serde(default)]
    #[schemars(range(max = 60000))]
    pub min_millis: u32,
    /// Longest call, in milliseconds.
    #[serde(default)]
    #[schemars(range(max = 60000))]
    pub max_millis: u32,
}

/// A point in an API call where the simulated cloud fails.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePoint {
    /// Create takes effect, then the call reports an error (the ID is lost).
    AfterCreate,
    /// Create takes effect, then the call never returns (as if the caller crashed).
    HangAfterCreate,
    /// Delete fails without taking effect.
    DuringDelete,
}
