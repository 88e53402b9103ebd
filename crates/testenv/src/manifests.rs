//! Applying objects of any kind (RBAC files, Deployments, Datum objects) with server-side
//! apply, as `kubectl apply --server-side` does: for tests that install what `config/` ships,
//! and for `datum up`'s defaults and `datum deploy -f`.

use std::fmt;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};

use crate::Error;

/// An object that was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Its kind, e.g. `Workload`.
    pub kind: String,
    /// Its namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Server-side applies one object given as JSON. A namespaced object without a namespace
/// goes to `default_namespace` (an error when that is `None` too).
///
/// Errors: [`Error::Manifest`] for something that is not an object, [`Error::UnknownKind`]
/// when the API server does not serve its kind, [`Error::Rejected`] with the API server's
/// own message when it refuses it.
pub async fn apply_object(
    client: &Client,
    value: serde_json::Value,
    default_namespace: Option<&str>,
    params: &PatchParams,
) -> Result<Applied, Error> {
    let object: DynamicObject = serde_json::from_value(value)
        .map_err(|e| Error::Manifest(format!("not a Kubernetes object: {e}")))?;
    let types = object
        .types
        .clone()
        .ok_or_else(|| Error::Manifest("an object without apiVersion and kind".into()))?;
    let name = object
        .metadata
        .name
        .clone()
        .ok_or_else(|| Error::Manifest(format!("a {} without metadata.name", types.kind)))?;
    let (group, version) = types
        .api_version
        .split_once('/')
        .unwrap_or(("", &types.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &types.kind);
    // An unknown group is a 404 from the API server, an unknown kind in a known group a
    // discovery error; anything else (the server unreachable, say) is not about the kind.
    let (resource, caps) = pinned_kind(client, &gvk).await.map_err(|e| match e {
        kube::Error::Discovery(_) => {
            Error::UnknownKind(format!("{} {}", types.api_version, types.kind))
        }
        kube::Error::Api(status) if status.code == 404 => {
            Error::UnknownKind(format!("{} {}", types.api_version, types.kind))
        }
        other => other.into(),
    })?;
    let (api, namespace): (Api<DynamicObject>, _) = match caps.scope {
        Scope::Namespaced => {
            let namespace = object
                .metadata
                .namespace
                .as_deref()
                .or(default_namespace)
                .ok_or_else(|| {
                    Error::Manifest(format!("{} {name} names no namespace", types.kind))
                })?
                .to_owned();
            (
                Api::namespaced_with(client.clone(), &namespace, &resource),
                Some(namespace),
            )
        }
        Scope::Cluster => (Api::all_with(client.clone(), &resource), None),
    };
    let applied = Applied {
        kind: types.kind,
        namespace,
        name,
    };
    match api
        .patch(&applied.name, params, &Patch::Apply(&object))
        .await
    {
        Ok(_) => Ok(applied),
        Err(kube::Error::Api(status)) => Err(Error::Rejected {
            object: applied.to_string(),
            message: status.message,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Server-side applies every object in `yaml` (documents separated by `---`; empty ones are
/// skipped) as field manager `manager`, taking over conflicting fields. Namespaced objects
/// must name their namespace.
pub async fn apply_manifests(
    client: &Client,
    yaml: &str,
    manager: &str,
) -> Result<Vec<Applied>, Error> {
    let params = PatchParams::apply(manager).force();
    let mut applied = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)
            .map_err(|e| Error::Manifest(format!("not YAML: {e}")))?;
        if !value.is_null() {
            applied.push(apply_object(client, value, None, &params).await?);
        }
    }
    Ok(applied)
}

/// The `args` of the first container of the (single) Deployment in `yaml`: for tests that
/// check shipped manifests against the flags their binaries accept.
pub fn container_args(yaml: &str) -> Result<Vec<String>, Error> {
    let deployment: serde_json::Value = serde_yaml::from_str(yaml)
        .map_err(|e| Error::Manifest(format!("not one YAML document: {e}")))?;
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    serde_json::from_value(args.clone())
        .map_err(|_| Error::Manifest("the first container has no list of string args".into()))
}
