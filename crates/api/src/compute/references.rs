//! References from compute objects to other objects.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{dns_label, limits};

/// A reference to a `networking.datumapis.com` Location.
///
/// Locations are cluster-scoped here (newer upstream references them by `name` alone). The
/// optional `namespace` is kept because older upstream controllers wrote it (their Locations
/// were namespaced) and objects carrying it must still validate; our controllers ignore it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct LocationReference {
    /// Name of the Location.
    pub name: String,
    /// Ignored (Locations are cluster-scoped); written by older upstream controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl LocationReference {
    /// A reference to the Location called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: None,
        }
    }
}

/// The Workload a WorkloadDeployment belongs to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReference {
    /// Name of the Workload, in the deployment's namespace.
    pub name: String,
    /// UID of the Workload, so a re-created Workload of the same name is not mistaken for it.
    pub uid: String,
}

/// A `networking.datumapis.com` Network an instance interface attaches to.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRef {
    /// Name of the Network.
    #[schemars(length(max = limits::NAME_LENGTH))]
    #[x_kube(validation = dns_label("network name"))]
    pub name: String,
    /// Namespace of the Network; defaults to the namespace of the object holding the
    /// reference (upstream's controllers always look in the Workload's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Secret in the namespace of the object holding the reference.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretReference {
    /// Name of the Secret.
    pub name: String,
}
