//! Schemas for fields whose derived schema differs from upstream's CRD.
//!
//! k8s-openapi's schemas for core types (`EnvVar`, `ConfigMapVolumeSource`, `Condition`, ...)
//! carry the fields but not the merge semantics (`x-kubernetes-map-type`,
//! `x-kubernetes-list-type`), the `name: ""` defaults nor the value checks that upstream's
//! controller-gen CRDs have. The functions here take k8s-openapi's schema and add those, so
//! server-side apply merges these fields, and the API server checks them, the way Datum's API
//! servers do. Use them with `#[schemars(schema_with = "...")]`.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EnvFromSource, EnvVar, SecretVolumeSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

/// `env`: a list of core/v1 EnvVar whose value references are atomic maps and whose
/// ConfigMap/Secret names default to `""`, as in upstream's CRD.
pub fn env_vars(generator: &mut SchemaGenerator) -> Schema {
    let mut item = generator.subschema_for::<EnvVar>();
    for selector in [
        "configMapKeyRef",
        "secretKeyRef",
        "fieldRef",
        "resourceFieldRef",
        "fileKeyRef",
    ] {
        let pointer = format!("/properties/valueFrom/properties/{selector}");
        extend(
            &mut item,
            &pointer,
            json!({ "x-kubernetes-map-type": "atomic" }),
        );
    }
    for selector in ["configMapKeyRef", "secretKeyRef"] {
        let pointer = format!("/properties/valueFrom/properties/{selector}/properties/name");
        extend(&mut item, &pointer, json!({ "default": "" }));
    }
    json_schema!({ "type": "array", "items": item })
}

/// `envFrom`: a list of core/v1 EnvFromSource whose references are atomic maps.
pub fn env_from(generator: &mut SchemaGenerator) -> Schema {
    let mut item = generator.subschema_for::<EnvFromSource>();
    for source in ["configMapRef", "secretRef"] {
        extend(
            &mut item,
            &format!("/properties/{source}"),
            json!({ "x-kubernetes-map-type": "atomic" }),
        );
        extend(
            &mut item,
            &format!("/properties/{source}/properties/name"),
            json!({ "default": "" }),
        );
    }
    json_schema!({ "type": "array", "items": item })
}

/// `configMap` volume source: an atomic map, `items` atomic, `name` defaulting to `""`.
pub fn config_map_volume_source(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<ConfigMapVolumeSource>();
    extend(
        &mut schema,
        "",
        json!({ "x-kubernetes-map-type": "atomic" }),
    );
    extend(
        &mut schema,
        "/properties/items",
        json!({ "x-kubernetes-list-type": "atomic" }),
    );
    extend(&mut schema, "/properties/name", json!({ "default": "" }));
    schema
}

/// `secret` volume source: `items` atomic.
pub fn secret_volume_source(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<SecretVolumeSource>();
    extend(
        &mut schema,
        "/properties/items",
        json!({ "x-kubernetes-list-type": "atomic" }),
    );
    schema
}

/// `conditions`: a list of metav1 Conditions with the checks the API server applies to
/// them in built-in kinds (and upstream's CRDs): status `True`/`False`/`Unknown`, a
/// CamelCase reason, a qualified-name type, bounded lengths.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut item = generator.subschema_for::<Condition>();
    let type_pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";
    let reason_pattern = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
    extend(
        &mut item,
        "/properties/type",
        json!({ "maxLength": 316, "pattern": type_pattern }),
    );
    extend(
        &mut item,
        "/properties/status",
        json!({ "enum": ["True", "False", "Unknown"] }),
    );
    extend(
        &mut item,
        "/properties/reason",
        json!({ "minLength": 1, "maxLength": 1024, "pattern": reason_pattern }),
    );
    extend(
        &mut item,
        "/properties/message",
        json!({ "maxLength": 32768 }),
    );
    extend(
        &mut item,
        "/properties/observedGeneration",
        json!({ "minimum": 0 }),
    );
    json_schema!({ "type": "array", "items": item })
}

/// An object the API server keeps as written, without checking its fields.
pub fn loose_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Adds the keys of `additions` to the subschema at JSON `pointer`. A pointer that does not
/// resolve (a schema generated with other settings, say with `$ref`s) is left alone rather
/// than guessed at.
fn extend(schema: &mut Schema, pointer: &str, additions: Value) {
    let Value::Object(additions) = additions else {
        return;
    };
    if let Some(Value::Object(subschema)) = schema.pointer_mut(pointer) {
        subschema.extend(additions);
    }
}
