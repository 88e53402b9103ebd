//! WorkloadDeployment and Instance objects may come without a `spec`.
//!
//! Upstream's CRDs do not require `spec` on these two kinds, and its scaffold sample
//! (`compute_v1alpha_workloaddeployment.yaml`) has `spec:` null. `kubectl create` and
//! client-side apply drop the null; server-side apply keeps it, which upstream's CRD then
//! rejects ("spec in body must be of type object"). Two things make both work here:
//!
//! - [`root_schema`]: the kinds' root schema is written by hand (`#[kube(schema = "manual")]`)
//!   because kube's derived root schema always lists `spec` as required; `spec` is optional
//!   and nullable;
//! - [`deserialize_missing_as_default!`]: the spec type reads a missing or null spec as its
//!   `Default`, so a controller listing such objects does not fail on them (one object that
//!   does not deserialize fails a whole list or watch).
//!
//! The spec type derives its `Serialize`/`Deserialize` with `#[serde(remote = "Self")]`, which
//! turns them into inherent functions the macro's trait impls delegate to.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

/// The root schema of a kind whose `spec` is optional: `spec` (nullable) and `status` (with
/// an optional default), no required properties. `apiVersion`, `kind` and `metadata` are
/// left out as in kube's derived schemas; the API server knows them.
pub fn root_schema<Spec: JsonSchema, Status: JsonSchema>(
    generator: &mut SchemaGenerator,
    description: &str,
    status_default: Option<Value>,
) -> Schema {
    let mut spec = generator.subschema_for::<Spec>();
    spec.insert("nullable".to_owned(), Value::Bool(true));
    let mut status = generator.subschema_for::<Status>();
    if let Some(default) = status_default {
        status.insert("default".to_owned(), default);
    }
    json_schema!({
        "description": description,
        "type": "object",
        "properties": { "spec": spec, "status": status },
    })
}

/// Implements `Serialize` and `Deserialize` for a spec type that derives them with
/// `#[serde(remote = "Self")]`, reading a missing or null value as `Default::default()`.
macro_rules! deserialize_missing_as_default {
    ($spec:ident) => {
        impl serde::Serialize for $spec {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                // The inherent function derived with `remote = "Self"`, not this trait method.
                $spec::serialize(self, serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Present($spec);
                impl<'de> serde::Deserialize<'de> for Present {
                    fn deserialize<D: serde::Deserializer<'de>>(
                        deserializer: D,
                    ) -> Result<Self, D::Error> {
                        // The inherent function derived with `remote = "Self"`.
                        $spec::deserialize(deserializer).map(Present)
                    }
                }

                let present = Option::<Present>::deserialize(deserializer)?;
                Ok(present.map(|present| present.0).unwrap_or_default())
            }
        }
    };
}
pub(crate) use deserialize_missing_as_default;
