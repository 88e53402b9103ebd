//! The Secret Manager subset the provider uses (`/v1/projects/<p>/secrets...`), with the
//! REST semantics of `secretmanager.googleapis.com`:
//!
//! | call | answer |
//! |---|---|
//! | `POST secrets?secretId=<id>` | the Secret; `409 ALREADY_EXISTS` if it exists |
//! | `GET secrets/<id>`, `PATCH secrets/<id>?updateMask=labels` | the Secret; `404 NOT_FOUND` |
//! | `GET secrets?filter=labels.<k>=<v>` | `{"secrets": [...]}` |
//! | `POST secrets/<id>:addVersion` | the SecretVersion `.../versions/<n>`, state `ENABLED` |
//! | `GET secrets/<id>/versions/<n or latest>:access` | `{"name", "payload": {"data"}}` |
//! | `POST secrets/<id>:setIamPolicy`, `GET secrets/<id>:getIamPolicy` | the Policy |
//! | `DELETE secrets/<id>` | `{}`; every version goes with it |
//!
//! Errors are the `google.rpc.Status` JSON Secret Manager returns
//! (`{"error": {"code", "message", "status"}}`, no `errors[]`). Payloads are stored as the
//! base64 the client sent; [`SecretManager`]'s `Debug` never prints them.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::compute::Reply;
use crate::errors;

#[derive(Clone)]
struct Secret {
    labels: Value,
    /// base64 payloads, version `n` at index `n - 1`.
    versions: Vec<String>,
    policy: Value,
}

/// The secrets of every project.
#[derive(Default)]
pub struct SecretManager {
    secrets: BTreeMap<String, Secret>,
    /// Every mutating request as `METHOD path`, in order.
    pub log: Vec<String>,
}

impl std::fmt::Debug for SecretManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManager")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SecretManager {
    /// The names (`projects/<p>/secrets/<id>`) of every secret.
    pub fn names(&self) -> Vec<String> {
        self.secrets.keys().cloned().collect()
    }

    /// The latest payload of a secret, decoded from base64 (for tests).
    pub fn latest(&self, name: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let data = self.secrets.get(name)?.versions.last()?;
        base64::engine::general_purpose::STANDARD.decode(data).ok()
    }

    /// How many versions a secret has.
    pub fn version_count(&self, name: &str) -> usize {
        self.secrets.get(name).map_or(0, |s| s.versions.len())
    }

    /// The IAM policy of a secret.
    pub fn policy(&self, name: &str) -> Option<Value> {
        self.secrets.get(name).map(|s| s.policy.clone())
    }

    /// Answers one call; `path` is below `/v1/`. `caller` is the service account of a VM
    /// token (from the metadata server): such a caller may only access versions of
    /// secrets whose policy grants it `roles/secretmanager.secretAccessor`. Tokens of the
    /// provider's key may do everything.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        body: Option<Value>,
        caller: Option<&str>,
    ) -> Reply {
        if let Some(account) = caller
            && !self.may_access(method, path, account)
        {
            return errors::rpc(
                403,
                &format!(
                    "Permission 'secretmanager.versions.access' denied for resource '{path}' (or it may not exist)."
                ),
            );
        }
        if method != "GET" {
            self.log.push(format!("{method} {path}"));
        }
        let (resource, verb) = match path.rsplit_once(':') {
            Some((r, v)) => (r, Some(v)),
            None => (path, None),
        };
        let parts: Vec<&str> = resource.trim_matches('/').split('/').collect();
        match (method, parts.as_slice(), verb) {
            ("POST", ["projects", p, "secrets"], None) => self.create(p, query, body),
            ("GET", ["projects", p, "secrets"], None) => self.list(p, query),
            ("GET", ["projects", _, "secrets", _], None) => self.get(resource),
            ("PATCH", ["projects", _, "secrets", _], None) => self.patch(resource, query, body),
            ("DELETE", ["projects", _, "secrets", _], None) => self.delete(resource),
            ("POST", ["projects", _, "secrets", _], Some("addVersion")) => {
                self.add_version(resource, body)
            }
            ("POST", ["projects", _, "secrets", _], Some("setIamPolicy")) => {
                self.set_policy(resource, body)
            }
            ("GET", ["projects", _, "secrets", _], Some("getIamPolicy")) => {
                match self.secrets.get(resource) {
                    Some(s) => (200, s.policy.clone()),
                    None => not_found(resource),
                }
            }
            ("GET", ["projects", p, "secrets", s, "versions", v], Some("access")) => {
                self.access(p, s, v)
            }
            _ => errors::rpc(
                404,
                &format!("Method {method} {path} is not part of this fake's Secret Manager"),
            ),
        }
    }

    fn may_access(&self, method: &str, path: &str, account: &str) -> bool {
        let Some(secret) = path
            .strip_suffix(":access")
            .and_then(|p| p.split_once("/versions/"))
            .map(|(s, _)| s)
        else {
            return false;
        };
        let member = format!("serviceAccount:{account}");
        method == "GET"
            && self.secrets.get(secret).is_some_and(|s| {
                s.policy["bindings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| {
                        b["role"] == "roles/secretmanager.secretAccessor"
                            && b["members"]
                                .as_array()
                                .is_some_and(|m| m.iter().any(|m| m == member.as_str()))
                    })
            })
    }

    fn create(
        &mut self,
        project: &str,
        query: &HashMap<String, String>,
        body: Option<Value>,
    ) -> Reply {
        let Some(id) = query.get("secretId").filter(|id| valid_id(id)) else {
            return errors::rpc(
                400,
                "The secretId must be 1 to 255 characters of letters, digits, '-' and '_'.",
            );
        };
        let body = body.unwrap_or(Value::Null);
        if body["replication"].is_null() {
            return errors::rpc(400, "Secret.replication is required.");
        }
        let name = format!("projects/{project}/secrets/{id}");
        if self.secrets.contains_key(&name) {
            return errors::rpc(409, &format!("Secret [{name}] already exists."));
        }
        let secret = Secret {
            labels: body["labels"].clone(),
            versions: Vec::new(),
            policy: json!({ "version": 1, "etag": "BwAA" }),
        };
        self.secrets.insert(name.clone(), secret);
        self.get(&name)
    }

    fn describe(name: &str, secret: &Secret) -> Value {
        let mut out = json!({
            "name": name,
            "replication": { "automatic": {} },
            "createTime": "2026-01-01T00:00:00.000000Z",
            "etag": format!("\"v{}\"", secret.versions.len()),
        });
        if secret.labels.is_object() {
            out["labels"] = secret.labels.clone();
        }
        out
    }

    fn get(&self, name: &str) -> Reply {
        match self.secrets.get(name) {
            Some(s) => (200, Self::describe(name, s)),
            None => not_found(name),
        }
    }

    fn list(&self, project: &str, query: &HashMap<String, String>) -> Reply {
        let prefix = format!("projects/{project}/secrets/");
        // `filter=labels.<key>=<value>`, the one filter form the provider uses.
        let filter = query
            .get("filter")
            .map(|f| f.replace("%3D", "=").replace("%3A", ":"))
            .and_then(|f| {
                let (key, value) = f.strip_prefix("labels.")?.split_once('=')?;
                Some((key.to_owned(), value.to_owned()))
            });
        let secrets: Vec<Value> = self
            .secrets
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .filter(|(_, s)| {
                filter
                    .as_ref()
                    .is_none_or(|(k, v)| s.labels[k.as_str()] == v.as_str())
            })
            .map(|(n, s)| Self::describe(n, s))
            .collect();
        if secrets.is_empty() {
            return (200, json!({}));
        }
        (
            200,
            json!({ "secrets": secrets, "totalSize": secrets.len() }),
        )
    }

    fn patch(&mut self, name: &str, query: &HashMap<String, String>, body: Option<Value>) -> Reply {
        let Some(secret) = self.secrets.get_mut(name) else {
            return not_found(name);
        };
        if query.get("updateMask").map(String::as_str) != Some("labels") {
            return errors::rpc(
                400,
                "updateMask must name the fields to update, e.g. labels.",
            );
        }
        secret.labels = body.unwrap_or(Value::Null)["labels"].clone();
        self.get(name)
    }

    fn delete(&mut self, name: &str) -> Reply {
        match self.secrets.remove(name) {
            Some(_) => (200, json!({})),
            None => not_found(name),
        }
    }

    fn add_version(&mut self, name: &str, body: Option<Value>) -> Reply {
        let Some(secret) = self.secrets.get_mut(name) else {
            return not_found(name);
        };
        let Some(data) = body
            .as_ref()
            .and_then(|b| b["payload"]["data"].as_str())
            .map(str::to_owned)
        else {
            return errors::rpc(400, "SecretPayload.data is required.");
        };
        use base64::Engine as _;
        if base64::engine::general_purpose::STANDARD
            .decode(&data)
            .is_err()
        {
            return errors::rpc(
                400,
                "Invalid value at 'payload.data' (TYPE_BYTES), base64 expected.",
            );
        }
        if data.len() > 87_400 {
            return errors::rpc(400, "Secret Payload cannot be larger than 64KiB.");
        }
        secret.versions.push(data);
        let n = secret.versions.len();
        (
            200,
            json!({ "name": format!("{name}/versions/{n}"), "state": "ENABLED",
                "createTime": "2026-01-01T00:00:00.000000Z" }),
        )
    }

    fn set_policy(&mut self, name: &str, body: Option<Value>) -> Reply {
        let Some(secret) = self.secrets.get_mut(name) else {
            return not_found(name);
        };
        let mut policy = body.unwrap_or(Value::Null)["policy"].clone();
        if !policy.is_object() {
            return errors::rpc(
                400,
                "Request contains an invalid argument: policy is required.",
            );
        }
        policy["etag"] = json!("BwAB");
        secret.policy = policy.clone();
        (200, policy)
    }

    fn access(&self, project: &str, secret: &str, version: &str) -> Reply {
        let name = format!("projects/{project}/secrets/{secret}");
        let Some(s) = self.secrets.get(&name) else {
            return not_found(&name);
        };
        let index = match version {
            "latest" => s.versions.len(),
            n => n.parse().unwrap_or(0),
        };
        match index.checked_sub(1).and_then(|i| s.versions.get(i)) {
            Some(data) => (
                200,
                json!({ "name": format!("{name}/versions/{index}"), "payload": { "data": data } }),
            ),
            None => errors::rpc(
                404,
                &format!("Secret Version [{name}/versions/{version}] not found."),
            ),
        }
    }
}

fn not_found(name: &str) -> Reply {
    errors::rpc(
        404,
        &format!("Secret [{name}] not found or has no versions."),
    )
}

/// Secret IDs: 1 to 255 of `[a-zA-Z0-9_-]`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_version_access_delete() {
        let mut sm = SecretManager::default();
        let q: HashMap<_, _> = [("secretId".to_owned(), "s1".to_owned())].into();
        let body = json!({ "replication": { "automatic": {} } });
        assert_eq!(
            sm.handle("POST", "projects/p/secrets", &q, Some(body.clone()), None)
                .0,
            200
        );
        let dup = sm.handle("POST", "projects/p/secrets", &q, Some(body), None);
        assert_eq!(dup.0, 409);
        assert_eq!(dup.1["error"]["status"], "ALREADY_EXISTS");
        let none = HashMap::new();
        let missing = sm.handle(
            "GET",
            "projects/p/secrets/s1/versions/latest:access",
            &none,
            None,
            None,
        );
        assert_eq!(missing.0, 404);
        let v = sm.handle(
            "POST",
            "projects/p/secrets/s1:addVersion",
            &none,
            Some(json!({ "payload": { "data": "aGk=" } })),
            None,
        );
        assert_eq!(v.1["name"], "projects/p/secrets/s1/versions/1");
        let got = sm.handle(
            "GET",
            "projects/p/secrets/s1/versions/latest:access",
            &none,
            None,
            None,
        );
        assert_eq!(got.1["payload"]["data"], "aGk=");
        assert_eq!(
            sm.handle("DELETE", "projects/p/secrets/s1", &none, None, None)
                .0,
            200
        );
        let gone = sm.handle("DELETE", "projects/p/secrets/s1", &none, None, None);
        assert_eq!(
            sm.handle(
                "GET",
                "projects/p/secrets/s1/versions/1:access",
                &none,
                None,
                Some("vm@x")
            )
            .0,
            403,
            "a VM needs the accessor role"
        );
        assert_eq!(gone.0, 404);
        assert_eq!(gone.1["error"]["status"], "NOT_FOUND");
    }
}
