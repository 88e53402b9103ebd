//! `gcp.provider.datum.net/v1alpha1` ProviderConfig: how the GCP provider reaches Compute
//! Engine.
//!
//! ```yaml
//! apiVersion: gcp.provider.datum.net/v1alpha1
//! kind: ProviderConfig
//! metadata: { name: default }
//! spec:
//!   projectId: datum-cloud-poc-1
//!   credentials:
//!     secretRef: { namespace: datum-system, name: gcp-credentials, key: credentials.json }
//! ```
//!
//! - **Credentials**: exactly one source (CEL) — `secretRef` to a service-account key (JSON)
//!   or `workloadIdentity` (the ambient Google identity of the provider's pod, optionally
//!   impersonating a service account or exchanged through a Workload Identity Federation
//!   audience). Never an inline key.
//! - **Project**: a Location names its project in `spec.provider.gcp.projectId`; `projectId`
//!   here is the default for Locations that leave it out and for the connection check.
//! - **Endpoint**: `endpoint` overrides the Compute Engine API base URL, so tests can point
//!   the provider at a local fake. `https`, or plain `http` to a loopback host only, so no
//!   token crosses a network in clear.
//! - **Maps**: `machineTypeMap` (Datum instance type → GCE machine type) and `imageMap`
//!   (Datum image → GCE image) default to upstream's values (`infra-provider-gcp`,
//!   `SetDefaults_GCPProvider`):
//!
//!   | Datum name | GCE value |
//!   |---|---|
//!   | `datumcloud/d1-standard-2` | `n2-standard-2` |
//!   | `datumcloud/ubuntu-2204-lts` | `projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927` |
//!   | `datumcloud/cos-stable-117-18613-0-79` | `projects/cos-cloud/global/images/cos-stable-117-18613-0-79` |
//!
//!   Upstream pins dated images, which age out; setting a map replaces its defaults, so a
//!   custom `imageMap` must keep any image the provider itself boots (upstream's sandbox
//!   hosts use the COS entry).
//! - **Rate limit**: `rateLimit` is a token bucket per GCP project (default 20 requests/s,
//!   burst 40), shared by every controller of the provider that calls that project.

use super::{ProviderConfigStatus, SecretKeyRef, string_map};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the GCP provider reaches Compute Engine: project, credentials, endpoint and maps.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// Each `printcolumn(...)` repeats keys such as `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "gcp.provider.datum.net",
    version = "v1alpha1",
    kind = "ProviderConfig",
    status = "ProviderConfigStatus",
    derive = "PartialEq",
    doc = "Settings and credentials (by Secret reference) the GCP provider uses to reach Compute Engine.",
    printcolumn(name = "Project", type_ = "string", json_path = ".spec.projectId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        priority = 1,
        json_path = ".spec.endpoint"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigSpec {
    /// The default GCP project ID, for Locations whose `spec.provider.gcp` names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 6, max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$')")
        .message("projectId must be a GCP project ID: 6 to 30 lowercase letters, digits and '-', starting with a letter"))]
    pub project_id: Option<String>,

    /// Where the provider's Google credentials come from: exactly one source.
    pub credentials: Credentials,

    /// Overrides the Compute Engine API base URL (default `https://compute.googleapis.com`),
    /// e.g. to reach a local fake. `https`, or `http` to a loopback host only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getHostname() != '' && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))")
        .message("endpoint must be an https URL, or an http URL to localhost, 127.0.0.1 or [::1], e.g. https://compute.googleapis.com"))]
    pub endpoint: Option<String>,

    /// Datum instance type → GCE machine type. Replaces the default map when set.
    #[serde(default = "default_machine_type_map")]
    #[schemars(schema_with = "string_map::<64, 63>")]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253 && self[k].matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))")
        .message("machineTypeMap must map instance type names (at most 253 characters) to GCE machine types such as n2-standard-2"))]
    pub machine_type_map: BTreeMap<String, String>,

    /// Datum image name → GCE image (`projects/<project>/global/images/<image>` or
    /// `.../images/family/<family>`). Replaces the default map when set.
    #[serde(default = "default_image_map")]
    #[schemars(schema_with = "string_map::<64, 1024>")]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253 && self[k].matches('^(https://[^ /]+(/[^ /]+)*/)?projects/[^ /]+/global/images/(family/)?[a-z0-9][-a-z0-9]*$'))")
        .message("imageMap must map image names (at most 253 characters) to GCE images such as projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927"))]
    pub image_map: BTreeMap<String, String>,

    /// Client-side rate limit on Compute Engine API calls, per GCP project.
    #[serde(default)]
    pub rate_limit: RateLimit,
}

/// Where the provider's Google credentials come from. Exactly one of the fields is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.workloadIdentity)")
    .message("credentials must set exactly one of secretRef or workloadIdentity"))]
pub struct Credentials {
    /// A Secret key holding a service-account key file (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,

    /// Use the provider pod's ambient Google identity (GKE Workload Identity, or a GCE
    /// metadata server), optionally impersonating a service account or federating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
}

/// Keyless credentials: the ambient identity, as is or traded for another one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// A service account to impersonate, e.g. `provider@my-project.iam.gserviceaccount.com`.
    /// The ambient identity needs `roles/iam.serviceAccountTokenCreator` on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][-a-z0-9.]*@[a-z0-9][-a-z0-9.]*[.]gserviceaccount[.]com$')")
        .message("workloadIdentity.serviceAccountEmail must be a Google service account email, e.g. provider@my-project.iam.gserviceaccount.com"))]
    pub service_account_email: Option<String>,

    /// The Workload Identity Federation provider audience, when the provider runs outside
    /// Google Cloud and exchanges its Kubernetes service-account token for Google credentials:
    /// `//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('//iam.googleapis.com/projects/') && self.contains('/workloadIdentityPools/') && self.contains('/providers/')")
        .message("workloadIdentity.audience must look like //iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>"))]
    pub audience: Option<String>,
}

/// A token bucket: a steady rate and the burst above it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.burst >= self.requestsPerSecond")
    .message("rateLimit.burst must be at least rateLimit.requestsPerSecond"))]
pub struct RateLimit {
    /// Sustained requests per second to one GCP project, 1 to 1000. Defaults to 20.
    #[serde(default = "default_requests_per_second")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("rateLimit.requestsPerSecond must be between 1 and 1000"))]
    pub requests_per_second: i32,

    /// Requests allowed at once above the steady rate, 1 to 10000. Defaults to 40.
    #[serde(default = "default_burst")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000").message("rateLimit.burst must be between 1 and 10000"))]
    pub burst: i32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
        }
    }
}

fn default_requests_per_second() -> i32 {
    20
}

fn default_burst() -> i32 {
    40
}

/// Upstream's default instance types (`infra-provider-gcp`, `SetDefaults_GCPProvider`).
pub fn default_machine_type_map() -> BTreeMap<String, String> {
    [("datumcloud/d1-standard-2", "n2-standard-2")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Upstream's default images (`infra-provider-gcp`, `SetDefaults_GCPProvider`).
pub fn default_image_map() -> BTreeMap<String, String> {
    [
        (
            "datumcloud/ubuntu-2204-lts",
            "projects/ubuntu-os-cloud/global/images/ubuntu-2204-jammy-v20240927",
        ),
        (
            "datumcloud/cos-stable-117-18613-0-79",
            "projects/cos-cloud/global/images/cos-stable-117-18613-0-79",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
