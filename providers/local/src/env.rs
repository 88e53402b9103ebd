//! Container environment from the control plane: `env[].valueFrom` (`configMapKeyRef`,
//! `secretKeyRef`, `fieldRef`) and `envFrom` (`configMapRef`, `secretRef`, with `prefix`),
//! read from the instance's namespace with the provider's Kubernetes client, as the kubelet
//! does:
//!
//! - `envFrom` first, in order (a later source overrides an earlier one), then `env`, which
//!   overrides both; the image's own `Env` is under all of them.
//! - A key from `envFrom` that is not a valid variable name (after its `prefix`) is skipped:
//!   since Kubernetes 1.34 a name is any printable ASCII except `=`.
//! - A missing object or key is an error naming the variable, the object and the key —
//!   unless the reference is `optional`, in which case the variable (or source) is left out.
//! - ConfigMaps give their `data` (not `binaryData`), Secrets their `data` as UTF-8 text.
//! - `fieldRef` reads the Instance itself (its name, namespace, UID, labels, annotations and
//!   interface addresses: [`field_ref`]); a path it does not serve is an error naming the
//!   variable and the path.
//! - `resourceFieldRef` and `fileKeyRef` are not supported: an error says so.
//!
//! Values never reach a log line, an error, an Event or a status: errors name variables,
//! objects and keys only.
//!
//! Each object is read when the containers are made (create, or an update after the spec
//! changed or a container stopped). The instance's spec hash covers its spec only, so a
//! changed ConfigMap or Secret value, label or annotation does not restart running
//! containers; the new value is seen the next time a container is made — as with a Pod's
//! environment.
//!
//! ```
//! # use datum_provider_local::env::field_ref::InstanceFields;
//! # async fn example(
//! #     kube: kube::Client,
//! #     fields: &InstanceFields<'_>,
//! #     container: &datum_api::compute::SandboxContainer,
//! # ) -> Result<(), datum_provider_local::env::Error> {
//! // `KEY=value` pairs in the order they apply; later ones override earlier ones.
//! let vars = datum_provider_local::env::resolve(Some(&kube), fields, container).await?;
//! # let _ = vars; Ok(()) }
//! ```

pub mod field_ref;

use std::collections::BTreeMap;
use std::fmt;

use datum_api::compute::SandboxContainer;
use field_ref::InstanceFields;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

/// Errors from resolving a container's environment. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Kubernetes client was given to the provider.
    #[error(
        "container {container}: {what} needs the provider's Kubernetes client to read ConfigMaps and Secrets"
    )]
    NoClient {
        /// The container.
        container: String,
        /// `env NAME` or `envFrom[i]`.
        what: String,
    },
    /// The object is missing and the reference is not optional.
    #[error("container {container}: {what}: {object} does not exist")]
    Missing {
        /// The container.
        container: String,
        /// `env NAME` or `envFrom[i]`.
        what: String,
        /// `Kind namespace/name`.
        object: String,
    },
    /// The key is missing and the reference is not optional.
    #[error("container {container}: {what}: {object} has no key {key:?}")]
    MissingKey {
        /// The container.
        container: String,
        /// `env NAME`.
        what: String,
        /// `Kind namespace/name`.
        object: String,
        /// The key.
        key: String,
    },
    /// A value is not text, so it cannot be an environment variable.
    #[error("container {container}: {what}: key {key:?} of {object} is not UTF-8 text")]
    NotText {
        /// The container.
        container: String,
        /// `env NAME` or `envFrom[i]`.
        what: String,
        /// `Kind namespace/name`.
        object: String,
        /// The key.
        key: String,
    },
    /// A `fieldRef` whose path has no value here.
    #[error(
        "container {container}: env {variable}: valueFrom.fieldRef.fieldPath {path:?} {reason}"
    )]
    FieldPath {
        /// The container.
        container: String,
        /// The variable.
        variable: String,
        /// The `fieldPath`.
        path: String,
        /// Why it has no value.
        reason: field_ref::Error,
    },
    /// A `valueFrom` the local provider cannot serve.
    #[error(
        "container {container}: env {variable}: valueFrom.{selector} is not supported by the local provider (configMapKeyRef, secretKeyRef and fieldRef are)"
    )]
    Unsupported {
        /// The container.
        container: String,
        /// The variable.
        variable: String,
        /// The selector, e.g. `fieldRef`.
        selector: &'static str,
    },
    /// Reading an object failed.
    #[error("failed to read {object}: {message}")]
    Read {
        /// `Kind namespace/name`.
        object: String,
        /// The API error.
        message: String,
    },
}

/// The kind of object a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A ConfigMap (its `data`).
    ConfigMap,
    /// A Secret (its `data`).
    Secret,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        })
    }
}

/// `Kind namespace/name`, as errors name an object.
fn object(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

/// The objects a container's environment reads, by kind and name: their keys and values.
/// An object that does not exist is not in the map.
pub type Objects = BTreeMap<(Kind, String), BTreeMap<String, Vec<u8>>>;

/// The objects `container`'s `valueFrom` and `envFrom` refer to.
pub fn references(container: &SandboxContainer) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    for source in container.env_from.iter().flatten() {
        if let Some(c) = &source.config_map_ref {
            out.push((Kind::ConfigMap, c.name.clone()));
        }
        if let Some(s) = &source.secret_ref {
            out.push((Kind::Secret, s.name.clone()));
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(c) = &from.config_map_key_ref {
            out.push((Kind::ConfigMap, c.name.clone()));
        }
        if let Some(s) = &from.secret_key_ref {
            out.push((Kind::Secret, s.name.clone()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Reads each object `container` refers to, once, from `namespace`.
pub async fn read(
    kube: Option<&kube::Client>,
    namespace: &str,
    container: &SandboxContainer,
) -> Result<Objects, Error> {
    let wanted = references(container);
    let mut objects = Objects::new();
    if wanted.is_empty() {
        return Ok(objects);
    }
    let Some(kube) = kube else {
        let what = container
            .env
            .iter()
            .flatten()
            .find(|v| {
                v.value_from
                    .as_ref()
                    .is_some_and(|f| f.config_map_key_ref.is_some() || f.secret_key_ref.is_some())
            })
            .map(|v| format!("env {}", v.name))
            .unwrap_or_else(|| "envFrom".to_owned());
        return Err(Error::NoClient {
            container: container.name.clone(),
            what,
        });
    };
    for (kind, name) in wanted {
        let fail = |e: kube::Error| Error::Read {
            object: object(kind, namespace, &name),
            message: e.to_string(),
        };
        let data = match kind {
            Kind::ConfigMap => Api::<ConfigMap>::namespaced(kube.clone(), namespace)
                .get_opt(&name)
                .await
                .map_err(fail)?
                .map(|c| {
                    c.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect()
                }),
            Kind::Secret => Api::<Secret>::namespaced(kube.clone(), namespace)
                .get_opt(&name)
                .await
                .map_err(fail)?
                .map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect()
                }),
        };
        if let Some(data) = data {
            objects.insert((kind, name), data);
        }
    }
    Ok(objects)
}

/// Whether `name` may be an environment variable: printable ASCII except `=` (the rule
/// since Kubernetes 1.34).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The variables `container` sets, as `(name, value)` in the order they apply (a later one
/// overrides an earlier one of the same name), from `objects` read in the namespace of the
/// Instance `fields` describes.
pub fn assemble(
    container: &SandboxContainer,
    fields: &InstanceFields<'_>,
    objects: &Objects,
) -> Result<Vec<(String, String)>, Error> {
    let namespace = fields.namespace;
    let text = |what: &str, kind: Kind, name: &str, key: &str, value: &[u8]| {
        String::from_utf8(value.to_vec()).map_err(|_| Error::NotText {
            container: container.name.clone(),
            what: what.to_owned(),
            object: object(kind, namespace, name),
            key: key.to_owned(),
        })
    };
    let missing = |what: String, kind: Kind, name: &str| Error::Missing {
        container: container.name.clone(),
        what,
        object: object(kind, namespace, name),
    };
    let mut out = Vec::new();
    for (index, source) in container.env_from.iter().flatten().enumerate() {
        let what = format!("envFrom[{index}]");
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let refs = [
            source
                .config_map_ref
                .as_ref()
                .map(|c| (Kind::ConfigMap, &c.name, c.optional)),
            source
                .secret_ref
                .as_ref()
                .map(|s| (Kind::Secret, &s.name, s.optional)),
        ];
        for (kind, name, optional) in refs.into_iter().flatten() {
            let Some(data) = objects.get(&(kind, name.clone())) else {
                if optional == Some(true) {
                    continue;
                }
                return Err(missing(what, kind, name));
            };
            let mut skipped = Vec::new();
            for (key, value) in data {
                let variable = format!("{prefix}{key}");
                if !valid_name(&variable) {
                    skipped.push(variable);
                    continue;
                }
                out.push((variable, text(&what, kind, name, key, value)?));
            }
            if !skipped.is_empty() {
                tracing::warn!(
                    container = %container.name,
                    "keys {skipped:?} of {kind} {namespace}/{name} were skipped: they are not valid environment variable names"
                );
            }
        }
    }
    for var in container.env.iter().flatten() {
        let what = format!("env {}", var.name);
        let Some(from) = &var.value_from else {
            out.push((var.name.clone(), var.value.clone().unwrap_or_default()));
            continue;
        };
        let unsupported = |selector| Error::Unsupported {
            container: container.name.clone(),
            variable: var.name.clone(),
            selector,
        };
        let (kind, name, key, optional) = match (&from.config_map_key_ref, &from.secret_key_ref) {
            (Some(c), _) => (Kind::ConfigMap, &c.name, &c.key, c.optional),
            (None, Some(s)) => (Kind::Secret, &s.name, &s.key, s.optional),
            (None, None) if from.field_ref.is_some() => {
                let path = from
                    .field_ref
                    .as_ref()
                    .map(|f| f.field_path.as_str())
                    .unwrap_or_default();
                let value = field_ref::value(fields, path).map_err(|reason| Error::FieldPath {
                    container: container.name.clone(),
                    variable: var.name.clone(),
                    path: path.to_owned(),
                    reason,
                })?;
                out.push((var.name.clone(), value));
                continue;
            }
            (None, None) if from.resource_field_ref.is_some() => {
                return Err(unsupported("resourceFieldRef"));
            }
            (None, None) if from.file_key_ref.is_some() => return Err(unsupported("fileKeyRef")),
            (None, None) => continue,
        };
        let Some(data) = objects.get(&(kind, name.clone())) else {
            if optional == Some(true) {
                continue;
            }
            return Err(missing(what, kind, name));
        };
        let Some(value) = data.get(key) else {
            if optional == Some(true) {
                continue;
            }
            return Err(Error::MissingKey {
                container: container.name.clone(),
                what,
                object: object(kind, namespace, name),
                key: key.clone(),
            });
        };
        out.push((var.name.clone(), text(&what, kind, name, key, value)?));
    }
    Ok(out)
}

/// Reads what `container` refers to in the Instance's namespace and returns its variables,
/// as [`assemble`] does.
pub async fn resolve(
    kube: Option<&kube::Client>,
    fields: &InstanceFields<'_>,
    container: &SandboxContainer,
) -> Result<Vec<(String, String)>, Error> {
    let objects = read(kube, fields.namespace, container).await?;
    assemble(container, fields, &objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(spec: serde_json::Value) -> SandboxContainer {
        let mut value = json!({ "name": "app", "image": "example.org/app:1" });
        if let (Some(v), Some(extra)) = (value.as_object_mut(), spec.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(value).expect("a container")
    }

    fn objects() -> Objects {
        let map = |pairs: &[(&str, &[u8])]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect()
        };
        Objects::from([
            (
                (Kind::ConfigMap, "settings".to_owned()),
                map(&[("MODE", b"fast"), ("LEVEL", b"3")]),
            ),
            (
                (Kind::Secret, "creds".to_owned()),
                map(&[("token", b"s3cret"), ("binary", &[0xff, 0xfe])]),
            ),
        ])
    }

    static LABELS: BTreeMap<String, String> = BTreeMap::new();

    /// The Instance `web-0` in `ns`, with one interface.
    fn fields() -> InstanceFields<'static> {
        InstanceFields {
            name: "web-0",
            namespace: "ns",
            uid: "0000-1111",
            labels: &LABELS,
            annotations: &LABELS,
            interfaces: vec![field_ref::InterfaceFields {
                network_ip: Some("10.1.0.2".to_owned()),
                network_ipv6: None,
            }],
        }
    }

    fn apply(vars: Vec<(String, String)>) -> BTreeMap<String, String> {
        vars.into_iter().collect()
    }

    #[test]
    fn env_from_comes_first_and_env_overrides_it() {
        let c = container(json!({
            "envFrom": [
                { "configMapRef": { "name": "settings" } },
                { "prefix": "CM_", "configMapRef": { "name": "settings" } },
            ],
            "env": [
                { "name": "MODE", "value": "slow" },
                { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } },
                { "name": "LEVEL2", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "LEVEL" } } },
                { "name": "EMPTY" },
            ],
        }));
        assert_eq!(
            references(&c),
            vec![
                (Kind::ConfigMap, "settings".to_owned()),
                (Kind::Secret, "creds".to_owned())
            ]
        );
        let vars = assemble(&c, &fields(), &objects()).expect("resolves");
        assert_eq!(vars.first().map(|v| v.0.as_str()), Some("LEVEL"));
        assert_eq!(
            apply(vars),
            BTreeMap::from(
                [
                    ("MODE", "slow"),
                    ("LEVEL", "3"),
                    ("CM_MODE", "fast"),
                    ("CM_LEVEL", "3"),
                    ("TOKEN", "s3cret"),
                    ("LEVEL2", "3"),
                    ("EMPTY", ""),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
            )
        );
    }

    #[test]
    fn missing_objects_and_keys_fail_unless_optional_and_never_show_values() {
        let missing_key = container(json!({ "env": [
            { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "nope" } } },
        ] }));
        let e = assemble(&missing_key, &fields(), &objects())
            .expect_err("a missing key fails")
            .to_string();
        assert_eq!(
            e,
            "container app: env TOKEN: Secret ns/creds has no key \"nope\""
        );
        let missing_object = container(json!({ "env": [
            { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "gone", "key": "token" } } },
        ] }));
        let e = assemble(&missing_object, &fields(), &objects())
            .expect_err("a missing Secret fails")
            .to_string();
        assert_eq!(e, "container app: env TOKEN: Secret ns/gone does not exist");
        let missing_source = container(json!({ "envFrom": [{ "secretRef": { "name": "gone" } }] }));
        let e = assemble(&missing_source, &fields(), &objects())
            .expect_err("a missing envFrom source fails")
            .to_string();
        assert_eq!(
            e,
            "container app: envFrom[0]: Secret ns/gone does not exist"
        );
        let not_text = container(json!({ "env": [
            { "name": "B", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "binary" } } },
        ] }));
        let e = assemble(&not_text, &fields(), &objects())
            .expect_err("bytes that are not text fail")
            .to_string();
        assert!(e.contains("\"binary\"") && !e.contains("s3cret"), "{e}");

        let optional = container(json!({
            "envFrom": [{ "secretRef": { "name": "gone", "optional": true } }],
            "env": [
                { "name": "A", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "nope", "optional": true } } },
                { "name": "B", "valueFrom": { "configMapKeyRef": { "name": "gone", "key": "x", "optional": true } } },
            ],
        }));
        assert_eq!(
            assemble(&optional, &fields(), &objects()).expect("skipped"),
            []
        );
    }

    #[test]
    fn invalid_names_from_env_from_are_skipped_and_other_selectors_are_refused() {
        let c = container(json!({ "envFrom": [
            { "prefix": "BAD=", "configMapRef": { "name": "settings" } },
            { "prefix": "OK_", "secretRef": { "name": "creds" } },
        ] }));
        let mut objects = objects();
        objects.insert(
            (Kind::Secret, "creds".to_owned()),
            BTreeMap::from([("token".to_owned(), b"s3cret".to_vec())]),
        );
        assert_eq!(
            assemble(&c, &fields(), &objects).expect("resolves"),
            [("OK_token".to_owned(), "s3cret".to_owned())]
        );
        assert!(valid_name("1st.var-with space"));
        assert!(!valid_name("") && !valid_name("A=B") && !valid_name("é"));
        let resource = container(json!({ "env": [
            { "name": "CPU", "valueFrom": { "resourceFieldRef": { "resource": "limits.cpu" } } },
        ] }));
        let e = assemble(&resource, &fields(), &objects)
            .expect_err("resourceFieldRef is refused")
            .to_string();
        assert!(
            e.contains("env CPU: valueFrom.resourceFieldRef is not supported"),
            "{e}"
        );
    }

    #[test]
    fn field_refs_read_the_instance_and_unknown_paths_name_variable_and_path() {
        let c = container(json!({ "env": [
            { "name": "NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
            { "name": "NS", "valueFrom": { "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } } },
            { "name": "IP", "valueFrom": { "fieldRef": { "fieldPath": "status.networkInterfaces[0].assignments.networkIP" } } },
            { "name": "NAME", "value": "overridden" },
        ] }));
        assert!(references(&c).is_empty(), "fieldRef reads no object");
        assert_eq!(
            assemble(&c, &fields(), &Objects::new()).expect("resolves"),
            [
                ("NAME", "web-0"),
                ("NS", "ns"),
                ("IP", "10.1.0.2"),
                ("NAME", "overridden")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let unknown = container(json!({ "env": [
            { "name": "NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
        ] }));
        let e = assemble(&unknown, &fields(), &Objects::new())
            .expect_err("an unknown path fails")
            .to_string();
        assert!(
            e.starts_with(
                "container app: env NODE: valueFrom.fieldRef.fieldPath \"spec.nodeName\" is not supported: the local provider serves metadata.name"
            ),
            "{e}"
        );
        let second = container(json!({ "env": [
            { "name": "IP2", "valueFrom": { "fieldRef": { "fieldPath": "status.networkInterfaces[1].assignments.networkIP" } } },
        ] }));
        let e = assemble(&second, &fields(), &Objects::new())
            .expect_err("a missing interface fails")
            .to_string();
        assert_eq!(
            e,
            "container app: env IP2: valueFrom.fieldRef.fieldPath \"status.networkInterfaces[1].assignments.networkIP\" names interface 1, but the instance has 1"
        );
    }
}
