//! `env[].valueFrom.fieldRef`: the Kubernetes downward API with the Instance in the Pod's
//! place. The paths served:
//!
//! | `fieldPath` | value |
//! |---|---|
//! | `metadata.name`, `metadata.namespace`, `metadata.uid` | the Instance's |
//! | `metadata.labels['<key>']`, `metadata.annotations['<key>']` | that label or annotation; empty when unset, as for a Pod |
//! | `status.networkInterfaces[<i>].assignments.networkIP` | interface `i`'s address (IPv4, or IPv6 on an IPv6-only network) |
//! | `status.networkInterfaces[<i>].assignments.networkIPv6` | interface `i`'s IPv6 address on a dual-stack network; empty otherwise |
//!
//! `apiVersion` is not checked: the paths mean the same under any version of the Instance
//! (and under a Pod's `v1`, so manifests copied from Pods keep working). Any other path is an
//! error; the API accepts any string there, so this is where a typo surfaces.
//!
//! ```
//! use std::collections::BTreeMap;
//! use datum_provider_local::env::field_ref::{InstanceFields, InterfaceFields, value};
//!
//! let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
//! let none = BTreeMap::new();
//! let fields = InstanceFields {
//!     name: "web-0",
//!     namespace: "default",
//!     uid: "1234",
//!     labels: &labels,
//!     annotations: &none,
//!     interfaces: vec![InterfaceFields { network_ip: Some("10.0.0.2".to_owned()), network_ipv6: None }],
//! };
//! assert_eq!(value(&fields, "metadata.labels['app']").unwrap(), "web");
//! assert_eq!(value(&fields, "status.networkInterfaces[0].assignments.networkIP").unwrap(), "10.0.0.2");
//! assert!(value(&fields, "spec.nodeName").is_err());
//! ```

use std::collections::BTreeMap;

/// What a `fieldRef` can read of an Instance.
#[derive(Clone, Debug)]
pub struct InstanceFields<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.uid`.
    pub uid: &'a str,
    /// `metadata.labels`.
    pub labels: &'a BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: &'a BTreeMap<String, String>,
    /// Per interface, in `spec.networkInterfaces` order, the addresses its status will show.
    pub interfaces: Vec<InterfaceFields>,
}

/// The addresses of one interface, as `status.networkInterfaces[i].assignments` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceFields {
    /// `networkIP`.
    pub network_ip: Option<String>,
    /// `networkIPv6`.
    pub network_ipv6: Option<String>,
}

/// Why a `fieldPath` has no value. Its text follows the path in an error message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a path this provider serves.
    #[error(
        "is not supported: the local provider serves metadata.name, metadata.namespace, metadata.uid, metadata.labels['<key>'], metadata.annotations['<key>'] and status.networkInterfaces[<i>].assignments.networkIP or .networkIPv6"
    )]
    Unknown,
    /// An interface the Instance does not have.
    #[error("names interface {index}, but the instance has {count}")]
    NoInterface {
        /// The index in the path.
        index: usize,
        /// How many interfaces the Instance has.
        count: usize,
    },
}

/// The value at `path` of the Instance described by `fields`.
pub fn value(fields: &InstanceFields<'_>, path: &str) -> Result<String, Error> {
    match path {
        "metadata.name" => return Ok(fields.name.to_owned()),
        "metadata.namespace" => return Ok(fields.namespace.to_owned()),
        "metadata.uid" => return Ok(fields.uid.to_owned()),
        _ => {}
    }
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(fields.labels.get(key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(fields.annotations.get(key).cloned().unwrap_or_default());
    }
    let (index, field) = interface_field(path).ok_or(Error::Unknown)?;
    let interface = fields.interfaces.get(index).ok_or(Error::NoInterface {
        index,
        count: fields.interfaces.len(),
    })?;
    let address = match field {
        "networkIP" => &interface.network_ip,
        _ => &interface.network_ipv6,
    };
    Ok(address.clone().unwrap_or_default())
}

/// `key` of `<map>['key']`, as Kubernetes writes a subscripted path (single quotes).
fn subscript<'p>(path: &'p str, map: &str) -> Option<&'p str> {
    let key = path
        .strip_prefix(map)?
        .strip_prefix("['")?
        .strip_suffix("']")?;
    (!key.is_empty() && !key.contains('\'')).then_some(key)
}

/// `(i, field)` of `status.networkInterfaces[i].assignments.<field>`, field being
/// `networkIP` or `networkIPv6`.
fn interface_field(path: &str) -> Option<(usize, &str)> {
    let (index, rest) = path
        .strip_prefix("status.networkInterfaces[")?
        .split_once(']')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = rest.strip_prefix(".assignments.")?;
    matches!(field, "networkIP" | "networkIPv6").then_some((index.parse().ok()?, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(test: impl FnOnce(&InstanceFields<'_>)) {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let annotations = BTreeMap::from([("example.org/team".to_owned(), "edge".to_owned())]);
        let fields = InstanceFields {
            name: "web-0",
            namespace: "ns",
            uid: "0000-1111",
            labels: &labels,
            annotations: &annotations,
            interfaces: vec![
                InterfaceFields {
                    network_ip: Some("10.1.0.2".to_owned()),
                    network_ipv6: Some("fd00::2".to_owned()),
                },
                InterfaceFields {
                    network_ip: Some("fd01::5".to_owned()),
                    network_ipv6: None,
                },
            ],
        };
        test(&fields);
    }

    #[test]
    fn metadata_and_addresses_resolve() {
        with(|f| {
            for (path, want) in [
                ("metadata.name", "web-0"),
                ("metadata.namespace", "ns"),
                ("metadata.uid", "0000-1111"),
                ("metadata.labels['app']", "web"),
                ("metadata.labels['absent']", ""),
                ("metadata.annotations['example.org/team']", "edge"),
                (
                    "status.networkInterfaces[0].assignments.networkIP",
                    "10.1.0.2",
                ),
                (
                    "status.networkInterfaces[0].assignments.networkIPv6",
                    "fd00::2",
                ),
                (
                    "status.networkInterfaces[1].assignments.networkIP",
                    "fd01::5",
                ),
                ("status.networkInterfaces[1].assignments.networkIPv6", ""),
            ] {
                assert_eq!(value(f, path).as_deref(), Ok(want), "{path}");
            }
        });
    }

    #[test]
    fn other_paths_are_errors_never_panics() {
        with(|f| {
            for path in [
                "",
                "metadata.labels",
                "metadata.annotations",
                "metadata.labels[app]",
                "metadata.labels['']",
                "metadata.labels['a'b']",
                "metadata.labels['app'",
                "metadata.generateName",
                "spec.nodeName",
                "status.podIP",
                "status.networkInterfaces",
                "status.networkInterfaces[].assignments.networkIP",
                "status.networkInterfaces[-1].assignments.networkIP",
                "status.networkInterfaces[+0].assignments.networkIP",
                "status.networkInterfaces[0].assignments.externalIP",
                "status.networkInterfaces[0].assignments",
                "status.networkInterfaces[99999999999999999999999].assignments.networkIP",
                "metadata.name ",
            ] {
                assert_eq!(value(f, path), Err(Error::Unknown), "{path:?}");
            }
            assert_eq!(
                value(f, "status.networkInterfaces[2].assignments.networkIP"),
                Err(Error::NoInterface { index: 2, count: 2 })
            );
        });
    }
}
