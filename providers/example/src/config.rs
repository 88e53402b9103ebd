//! `example.provider.datum.net/v1alpha1` ProviderConfig: what the provider connects with.
//! Cluster-scoped; credentials only by Secret reference, never inline.
//!
//! ```yaml
//! apiVersion: example.provider.datum.net/v1alpha1
//! kind: ProviderConfig
//! metadata: { name: default }
//! spec:
//!   endpoint: https://api.example.invalid
//!   credentialsSecretRef: { namespace: datum-system, name: example-credentials, key: token }
//! ```
//!
//! REPLACE THIS: add the settings your platform needs (region, project, ...), each with CEL
//! validation whose message names the field.

use datum_api::provider_config::{ProviderConfigStatus, SecretKeyRef};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// How the provider reaches its platform.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Each `printcolumn(...)` repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "example.provider.datum.net",
    version = "v1alpha1",
    kind = "ProviderConfig",
    status = "ProviderConfigStatus",
    derive = "PartialEq",
    doc = "Settings and credentials the example provider connects to its platform with.",
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
    /// The platform's API endpoint; the platform's default when unset. (The stand-in
    /// platform ignores it.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("endpoint must be an https:// URL"))]
    pub endpoint: Option<String>,

    /// The Secret key holding the platform's API token.
    pub credentials_secret_ref: SecretKeyRef,
}
