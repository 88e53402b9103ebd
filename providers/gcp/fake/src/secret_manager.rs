//! The Secret Manager subset the provider uses (`/v1/projects/<p>/secrets...`), with the
//! REST semantics of `secretmanager.googleapis.com`:
//!
//! | call | answer |
//! |---|---|
//! | `POST secrets?secretId=<id>` | the Secret; `409 ALREADY_EXISTS` if it exists |
//! | `GET secrets/<id>`, `PATCH secrets/<id>?updateMask=labels` | the Secret; `404 NOT_FOUND` |
//! | `GET secrets?filter=labels.<k>=<v>&pageSize=<n>&pageToken=<t>` | a page: `{"secrets": [...], "nextPageToken"}` ([`crate::paging`]); `totalSize` only without a filter |
//! | `POST secrets/<id>:addVersion` | the SecretVersion `.../versions/<n>`, state `ENABLED` |
//! | `GET secrets/<id>/versions/<n or latest>:access` | `{"name", "payload": {"data"}}` |
//! | `POST secrets/<id>:setIamPolicy`, `GET secrets/<id>:getIamPolicy` | the Policy |
//! | `DELETE secrets/<id>` | `{}`; every version goes with it |
//!
//! Errors are the `google.rpc.Status` JSON Secret Manager returns
//! (`{"error": {"code", "message", "status"}}`, no `errors[]`). Payloads are stored as the
//! base64 the client sent; [`SecretManager`]'s `Debug` never prints them.
//!
//! **Paging.** `pageSize` absent, 0 or above [`MAX_PAGE_SIZE`] is [`MAX_PAGE_SIZE`];
//! negative or not a number is `400 INVALID_ARGUMENT`, and so is a `pageToken` this fake
//! did not issue for the same project and filter. Secrets come in name order (Google lists
//! newest first; a client relies on neither). [`SecretManager::set_page_size`] is the test
//! hook that makes pages smaller than asked, as the API may.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::compute::Reply;
use crate::{errors, paging};

/// The most secrets a page holds, and the page size when `pageSize` is absent or 0 (the
/// API "decides" then).
pub const MAX_PAGE_SIZE: usize = 25_000;

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
    /// The test hook's cap on list pages.
    page_size: Option<usize>,
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

    /// Test hook: every `secrets.list` page holds at most `size` secrets (at least 1),
    /// whatever `pageSize` asks; `None` restores pages of `pageSize`.
    pub fn set_page_size(&mut self, size: Option<usize>) {
        self.page_size = size.map(|s| s.max(1));
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
        // A token is good for the same project and filter only.
        let list = format!(
            "{prefix}?filter={}",
            query.get("filter").map(String::as_str).unwrap_or_default()
        );
        let cursor = match paging::page_size_cursor(&list, query, MAX_PAGE_SIZE, self.page_size) {
            Ok(cursor) => cursor,
            Err(reply) => return reply,
        };
        let matching: Vec<(String, Value)> = self
            .secrets
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .filter(|(_, s)| {
                filter
                    .as_ref()
                    .is_none_or(|(k, v)| s.labels[k.as_str()] == v.as_str())
            })
            .map(|(n, s)| (n.clone(), Self::describe(n, s)))
            .collect();
        // `totalSize` is 0, so omitted, when a filter is set.
        let filtered = query.get("filter").is_some_and(|f| !f.is_empty());
        let total = if filtered { 0 } else { matching.len() };
        let mut reply = cursor.page(matching).into_reply(json!({}), "secrets");
        // proto3 JSON omits zeros too.
        if total > 0 {
            reply["totalSize"] = json!(total);
        }
        (200, reply)
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

    /// Secrets `s0`…`s{count-1}` labelled `t=a` and `other` labelled `t=b` in project `p`,
    /// created in reverse so name order is not creation order.
    fn with_secrets(count: usize) -> SecretManager {
        let mut sm = SecretManager::default();
        let ids = (0..count)
            .rev()
            .map(|i| (format!("s{i}"), "a"))
            .chain([("other".to_owned(), "b")]);
        for (id, label) in ids {
            let q = HashMap::from([("secretId".to_owned(), id)]);
            let body = json!({ "replication": { "automatic": {} }, "labels": { "t": label } });
            let created = sm.handle("POST", "projects/p/secrets", &q, Some(body), None);
            assert_eq!(created.0, 200, "{}", created.1);
        }
        sm
    }

    fn list(sm: &mut SecretManager, path: &str, query: &[(&str, &str)]) -> Reply {
        let query = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        sm.handle("GET", path, &query, None, None)
    }

    fn ids(reply: &Reply) -> Vec<String> {
        assert_eq!(reply.0, 200, "{}", reply.1);
        reply.1["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                s["name"]
                    .as_str()
                    .expect("named")
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    fn token(reply: &Reply) -> Option<String> {
        reply.1["nextPageToken"].as_str().map(str::to_owned)
    }

    const SECRETS: &str = "projects/p/secrets";
    const LABELLED: (&str, &str) = ("filter", "labels.t=a");

    #[test]
    fn list_pages_in_name_order_with_a_token_only_while_secrets_remain() {
        let mut sm = with_secrets(5);
        let first = list(&mut sm, SECRETS, &[LABELLED, ("pageSize", "2")]);
        assert_eq!(ids(&first), ["s0", "s1"]);
        assert_eq!(
            first.1["totalSize"],
            Value::Null,
            "0 with a filter: omitted"
        );
        let t1 = token(&first).expect("more remain");
        let second = list(
            &mut sm,
            SECRETS,
            &[LABELLED, ("pageSize", "2"), ("pageToken", &t1)],
        );
        assert_eq!(ids(&second), ["s2", "s3"]);
        let t2 = token(&second).expect("more remain");
        let last = list(
            &mut sm,
            SECRETS,
            &[LABELLED, ("pageSize", "2"), ("pageToken", &t2)],
        );
        assert_eq!(ids(&last), ["s4"]);
        assert_eq!(token(&last), None, "{}", last.1);

        // The same request gives the same page; a page ending at the last secret has no
        // token; without a filter every secret counts in totalSize.
        assert_eq!(
            list(&mut sm, SECRETS, &[LABELLED, ("pageSize", "2")]).1,
            first.1
        );
        let exact = list(&mut sm, SECRETS, &[LABELLED, ("pageSize", "5")]);
        assert_eq!(ids(&exact).len(), 5);
        assert_eq!(token(&exact), None);
        let all = list(&mut sm, SECRETS, &[]);
        assert_eq!(ids(&all), ["other", "s0", "s1", "s2", "s3", "s4"]);
        assert_eq!(all.1["totalSize"], 6);

        // A secret deleted between pages moves nothing still to come.
        let none = HashMap::new();
        assert_eq!(
            sm.handle("DELETE", "projects/p/secrets/s1", &none, None, None)
                .0,
            200
        );
        let second = list(
            &mut sm,
            SECRETS,
            &[LABELLED, ("pageSize", "2"), ("pageToken", &t1)],
        );
        assert_eq!(ids(&second), ["s2", "s3"]);

        // Another project's list is empty: `{}`.
        assert_eq!(list(&mut sm, "projects/q/secrets", &[]).1, json!({}));
    }

    #[test]
    fn page_size_absent_zero_or_too_big_gives_whole_pages_and_negative_is_invalid() {
        let mut sm = with_secrets(3);
        for size in [
            None,
            Some("0"),
            Some("25000"),
            Some("25001"),
            Some("1000000"),
        ] {
            let query: Vec<(&str, &str)> = size.map(|s| ("pageSize", s)).into_iter().collect();
            let page = list(&mut sm, SECRETS, &query);
            assert_eq!(ids(&page).len(), 4, "pageSize={size:?}");
            assert_eq!(token(&page), None);
        }
        for bad in ["-1", "two", "1.5"] {
            let reply = list(&mut sm, SECRETS, &[("pageSize", bad)]);
            assert_eq!(reply.0, 400, "pageSize={bad}: {}", reply.1);
            assert_eq!(reply.1["error"]["status"], "INVALID_ARGUMENT");
        }
    }

    #[test]
    fn a_token_the_fake_did_not_issue_for_this_list_is_invalid() {
        let mut sm = with_secrets(3);
        let first = list(&mut sm, SECRETS, &[LABELLED, ("pageSize", "1")]);
        let issued = token(&first).expect("more remain");
        let mut garbled = issued.clone();
        garbled.insert(1, 'x');
        for bad in ["nope".to_owned(), garbled, issued.replace('.', "")] {
            let reply = list(&mut sm, SECRETS, &[LABELLED, ("pageToken", &bad)]);
            assert_eq!(reply.0, 400, "pageToken={bad}: {}", reply.1);
            assert_eq!(reply.1["error"]["status"], "INVALID_ARGUMENT");
        }
        // A token is good for its own project and filter only.
        for (path, filter) in [
            (SECRETS, ("filter", "labels.t=b")),
            (SECRETS, ("filter", "")),
            ("projects/q/secrets", LABELLED),
        ] {
            let reply = list(&mut sm, path, &[filter, ("pageToken", &issued)]);
            assert_eq!(reply.0, 400, "{path} {filter:?}: {}", reply.1);
        }
        assert_eq!(
            ids(&list(&mut sm, SECRETS, &[LABELLED, ("pageToken", "")])).len(),
            3
        );
    }

    #[test]
    fn the_page_size_hook_caps_pages_whatever_page_size_asks() {
        let mut sm = with_secrets(5);
        sm.set_page_size(Some(2));
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = vec![LABELLED, ("pageSize", "25000")];
            if let Some(t) = &next {
                query.push(("pageToken", t));
            }
            let page = list(&mut sm, SECRETS, &query);
            pages += 1;
            let page_ids = ids(&page);
            assert!(page_ids.len() <= 2, "{page_ids:?}");
            seen.extend(page_ids);
            next = token(&page);
            if next.is_none() {
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4"]);
        assert_eq!(
            ids(&list(&mut sm, SECRETS, &[LABELLED, ("pageSize", "1")])),
            ["s0"]
        );
        assert_eq!(list(&mut sm, SECRETS, &[("pageSize", "-1")]).0, 400);
        sm.set_page_size(None);
        assert_eq!(ids(&list(&mut sm, SECRETS, &[LABELLED])).len(), 5);
    }

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
