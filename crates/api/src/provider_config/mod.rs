//! ProviderConfig kinds: the settings and credentials a provider plugin connects with, one
//! API group per provider (`<provider>.provider.datum.net/v1alpha1`), each kind named
//! `ProviderConfig` and cluster-scoped.
//!
//! | module | group | what it configures |
//! |---|---|---|
//! | [`gcp`] | `gcp.provider.datum.net` | Compute Engine: project, credentials, endpoint, machine-type and image maps, rate limit |
//! | [`local`] | `local.provider.datum.net` | one Linux host: state directory, images, storage classes, registries, containerd, netns prefix, instance sizes |
//! | [`sim`] | `sim.provider.datum.net` | the simulated cloud: ledger directory, latency, error rate, failure points |
//!
//! Decisions shared by every provider's config:
//! - **Secrets only by reference.** A [`SecretKeyRef`] names `namespace`, `name` and `key`;
//!   no field ever holds a credential inline, and strict field validation rejects one that
//!   tries (`unknown field`). The provider reads the Secret with its own RBAC.
//! - **Cluster-scoped**: one config serves Locations in any namespace, and the Secrets it
//!   points at live where the operator keeps them (hence the required `namespace`).
//! - **Maps replace their defaults wholesale**, as upstream's config files did: a user who
//!   sets `imageMap` owns the whole map. The defaults are in the CRD schema, so
//!   `kubectl get -o yaml` shows what is in force.
//! - **Status is the same for every provider** ([`ProviderConfigStatus`]): a `Ready`
//!   condition, written by the provider after it has connected (reason `Connected` when True;
//!   e.g. `SecretNotFound`, `AuthenticationFailed`, `Unreachable` when False).
//! - Validation is CEL in the schema, with messages naming the field; maps and lists that
//!   rules iterate carry `maxProperties`/`maxItems` and `maxLength` so the CRDs stay within
//!   the API server's CEL cost budget.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResourceExt, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub mod gcp;
pub mod local;
pub mod sim;

#[cfg(test)]
pub(crate) mod crd_lint;
#[cfg(test)]
mod tests;

/// The CRDs of this module's kinds.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        gcp::ProviderConfig::crd(),
        local::ProviderConfig::crd(),
        sim::ProviderConfig::crd(),
    ]
}

/// The condition type every provider sets on its ProviderConfig once it has (or has failed
/// to) connect with it.
pub const CONDITION_READY: &str = "Ready";

/// One key of a Secret, by reference: where a ProviderConfig keeps anything secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("name must be a Secret name: a DNS subdomain (lowercase letters, digits, '-' and '.')"))]
    pub name: String,

    /// The Secret's namespace.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("namespace must be a namespace name: a DNS label (lowercase letters, digits and '-')"))]
    pub namespace: String,

    /// The key within the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[-._a-zA-Z0-9]+$')")
        .message("key must be a Secret data key: letters, digits, '-', '_' and '.'"))]
    pub key: String,
}

/// Observed state of a ProviderConfig, the same for every provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfigStatus {
    /// The generation of the spec the provider last connected with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions, one per type; `Ready` says whether the provider could connect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Schema of a string → string map with at most `PROPS` entries and non-empty values of at
/// most `LEN` characters: the bounds CEL rules over the map need to stay cheap.
fn string_map<const PROPS: u64, const LEN: u64>(generator: &mut SchemaGenerator) -> Schema {
    bounded_map::<PROPS>(
        json_schema!({"type": "string", "minLength": 1, "maxLength": LEN}),
        generator,
    )
}

/// Schema of a map from string to `T` with at most `PROPS` entries.
fn map_of<T: JsonSchema, const PROPS: u64>(generator: &mut SchemaGenerator) -> Schema {
    let values = generator.subschema_for::<T>();
    bounded_map::<PROPS>(values, generator)
}

fn bounded_map<const PROPS: u64>(values: Schema, _: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": values,
        "maxProperties": PROPS,
    })
}

/// Schema of a Kubernetes quantity (`2`, `500m`, `8Gi`), the way controller-gen renders
/// `resource.Quantity`: an int-or-string whose string form must match the quantity grammar.
fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
    })
}
