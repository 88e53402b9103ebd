//! The Compute Engine REST client: authenticated JSON calls under
//! `<endpoint>/compute/v1/`, Google's error format parsed into [`ApiError`], deterministic
//! request IDs, and a token bucket per GCP project shared by every controller.
//!
//! | module | what it holds |
//! |---|---|
//! | [`instances`] | Datum Instance ↔ Compute instance (VM and COS sandbox host) |
//! | [`networks`] | NetworkContext ↔ VPC network (custom subnet mode) |
//! | [`subnetworks`] | Subnet ↔ subnetwork |
//! | [`firewalls`] | interface network policy ↔ firewall rules |
//! | [`network_policies`] | NetworkPolicy objects ↔ tag-targeted firewall rules, swept when unused |
//! | [`instance_templates`] | one instance template per WorkloadDeployment revision, collected when unused |
//! | [`health_checks`] | workload ports → a TCP health check per WorkloadDeployment, read back per instance for readiness |

pub mod firewalls;
pub mod health_checks;
pub mod instance_templates;
pub mod instances;
pub mod network_policies;
pub mod networks;
pub mod subnetworks;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datum_provider::PlatformError;
use datum_runtime::rate_limit::TokenBucket;
use serde_json::Value;

use crate::auth::TokenSource;
use crate::http::Transport;
use crate::monitoring::UsageCache;
use crate::paging::every_page;

/// A failed call, as Compute Engine reported it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (HTTP {status}, {reason})")]
pub struct ApiError {
    /// HTTP status (0 for transport failures).
    pub status: u16,
    /// `errors[].reason`, e.g. `notFound`, `alreadyExists`, `quotaExceeded`.
    pub reason: String,
    /// Google's message.
    pub message: String,
}

impl ApiError {
    /// A failure before any answer.
    pub fn transport(message: String) -> Self {
        Self {
            status: 0,
            reason: "unreachable".to_owned(),
            message,
        }
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// Whether the resource already exists.
    pub fn is_already_exists(&self) -> bool {
        self.status == 409 || self.reason == "alreadyExists"
    }

    fn from_body(status: u16, body: &[u8]) -> Self {
        let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &parsed["error"];
        let reason = error["errors"][0]["reason"]
            .as_str()
            .or_else(|| error["status"].as_str())
            .unwrap_or("unknown")
            .to_owned();
        let message = error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status} without a Google error body"));
        Self {
            status,
            reason,
            message,
        }
    }

    /// The condition reason and message for the SDK. Quota and rate-limit errors quote
    /// Google's message and say that the call backs off.
    pub fn to_platform(&self, what: &str) -> PlatformError {
        let (reason, advice) = match (self.status, self.reason.as_str()) {
            (_, "quotaExceeded" | "QUOTA_EXCEEDED") => {
                ("QuotaExceeded", "; backing off and retrying")
            }
            (429, _) | (_, "rateLimitExceeded" | "userRateLimitExceeded") => {
                ("RateLimited", "; backing off and retrying")
            }
            (401, _) => ("Unauthenticated", ""),
            (403, _) => ("PermissionDenied", ""),
            (404, _) => ("NotFound", ""),
            (409, _) => ("AlreadyExists", ""),
            (400 | 412, _) => ("InvalidRequest", ""),
            (0, _) => ("Unreachable", ""),
            _ => ("PlatformUnavailable", ""),
        };
        PlatformError {
            reason: reason.to_owned(),
            message: format!(
                "GCP {what}: {:?} (HTTP {}, {}){advice}",
                self.message, self.status, self.reason
            ),
        }
    }
}

/// Tunables of the client.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Default project for Locations that name none.
    pub default_project: Option<String>,
    /// Datum instance type → machine type.
    pub machine_types: BTreeMap<String, String>,
    /// Datum image → GCE image.
    pub images: BTreeMap<String, String>,
    /// Sustained calls per second, per project.
    pub requests_per_second: f64,
    /// Burst per project.
    pub burst: u32,
    /// First delay between operation polls.
    pub poll_interval: Duration,
    /// Longest wait for an operation.
    pub operation_timeout: Duration,
    /// The Secret Manager API root, e.g. `https://secretmanager.googleapis.com`.
    pub secret_manager_endpoint: String,
    /// The Cloud Monitoring API root, e.g. `https://monitoring.googleapis.com`.
    pub monitoring_endpoint: String,
    /// Least time between two usage rounds of one project ([`crate::monitoring`]).
    pub usage_interval: Duration,
}

/// A connected client.
#[derive(Clone)]
pub struct Compute {
    transport: Transport,
    tokens: Arc<TokenSource>,
    base: String,
    pub(crate) settings: Settings,
    buckets: Arc<Mutex<HashMap<String, Arc<TokenBucket>>>>,
    /// Usage figures from Cloud Monitoring, per project.
    pub(crate) usage: Arc<UsageCache>,
    /// The control plane, for the ConfigMaps and Secrets of configMap/secret volumes.
    pub(crate) kube: Option<kube::Client>,
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compute")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Compute {
    /// A client for `endpoint` (e.g. `https://compute.googleapis.com`).
    pub fn new(
        transport: Transport,
        tokens: Arc<TokenSource>,
        endpoint: &str,
        settings: Settings,
    ) -> Self {
        Self {
            transport,
            tokens,
            base: format!("{}/compute/v1/", endpoint.trim_end_matches('/')),
            usage: Arc::new(UsageCache::new(settings.usage_interval)),
            settings,
            buckets: Arc::default(),
            kube: None,
        }
    }

    /// The same client, reading configMap and secret volumes through `kube`.
    pub fn with_kube(mut self, kube: Option<kube::Client>) -> Self {
        self.kube = kube;
        self
    }

    /// The full URL of a path such as `projects/p/global/networks/n`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// Waits for the project's rate limit.
    async fn throttle(&self, project: &str) {
        let bucket = {
            let mut buckets = match self.buckets.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            buckets
                .entry(project.to_owned())
                .or_insert_with(|| {
                    Arc::new(TokenBucket::new(
                        self.settings.requests_per_second,
                        self.settings.burst,
                    ))
                })
                .clone()
        };
        bucket.acquire().await;
    }

    /// One call; `path` is below `compute/v1/` (or a full URL under it).
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        // A selfLink names its host; the call goes to this client's endpoint (an override
        // such as a private endpoint or a fake keeps Google's paths).
        let path = match path.strip_prefix(&self.base) {
            Some(rest) => rest,
            None if path.starts_with("http") => path
                .split_once("/compute/v1/")
                .map_or(path, |(_, rest)| rest),
            None => path,
        };
        let project = path
            .trim_start_matches('/')
            .split('/')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        self.send(method, &self.url(path), &project, query, body)
            .await
    }

    /// One call to any Google API URL, counted against `project`'s rate limit (one bucket
    /// per project across Compute Engine, Secret Manager and Cloud Monitoring).
    pub(crate) async fn send(
        &self,
        method: http::Method,
        url: &str,
        project: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.throttle(project).await;
        let mut url = url.to_owned();
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(value);
        }
        for attempt in 0..2 {
            let token = self.tokens.token().await.map_err(|e| ApiError {
                status: 401,
                reason: "authError".to_owned(),
                message: e.to_string(),
            })?;
            let reply = self
                .transport
                .send(
                    method.clone(),
                    &url,
                    &[("authorization", format!("Bearer {token}"))],
                    body.map(|b| (b.to_string(), "application/json")),
                )
                .await
                .map_err(|e| ApiError::transport(e.to_string()))?;
            if reply.status == 401 && attempt == 0 {
                self.tokens.invalidate().await;
                continue;
            }
            if (200..300).contains(&reply.status) {
                return serde_json::from_slice(&reply.body)
                    .map_err(|e| ApiError::transport(format!("unreadable reply from {url}: {e}")));
            }
            return Err(ApiError::from_body(reply.status, &reply.body));
        }
        Err(ApiError::transport(
            "authentication kept failing".to_owned(),
        ))
    }

    /// GET of a full URL (a `selfLink`).
    pub async fn get_url(&self, url: &str) -> Result<Value, ApiError> {
        self.call(http::Method::GET, url, &[], None).await
    }

    /// GET of a resource; `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self.call(http::Method::GET, path, &[], None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a collection, page by page (500 per page).
    pub async fn list(&self, collection: &str) -> Result<Vec<Value>, ApiError> {
        self.list_pages(http::Method::GET, collection, None).await
    }

    /// Every item a Compute Engine list method answers — a collection's `list`, or a
    /// `POST` one such as `instanceGroups.listInstances` with its `body` — page by page
    /// (500 per page) to the last ([`every_page`]).
    pub(crate) async fn list_pages(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Vec<Value>, ApiError> {
        every_page("items", |token| {
            let mut query = vec![("maxResults", "500".to_owned())];
            query.extend(token.map(|t| ("pageToken", crate::auth::form_encode(&t))));
            let method = method.clone();
            async move { self.call(method, path, &query, body).await }
        })
        .await
    }

    /// Inserts `body` into `collection` with a request ID derived from what is inserted,
    /// and waits for the operation. An existing resource of that name is adopted.
    pub async fn insert(&self, collection: &str, body: &Value) -> Result<(), ApiError> {
        self.insert_with(collection, body, &[]).await
    }

    /// [`Compute::insert`] with more query parameters (e.g. `sourceInstanceTemplate`).
    pub async fn insert_with(
        &self,
        collection: &str,
        body: &Value,
        query: &[(&str, String)],
    ) -> Result<(), ApiError> {
        let seed = format!("insert {collection} {query:?} {body}");
        let mut params = query.to_vec();
        params.push(("requestId", request_id(&seed)));
        let inserted = self.insert_once(collection, body, &params).await?;
        // Compute Engine answers a request ID it has seen with the original operation, even
        // when what that made has since been deleted (the same template made again after
        // it was collected): then insert again under a new ID.
        let name = body["name"].as_str().unwrap_or_default();
        if inserted
            && !name.is_empty()
            && self.get(&format!("{collection}/{name}")).await?.is_none()
        {
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let mut params = query.to_vec();
            params.push(("requestId", request_id(&format!("{seed} {nonce}"))));
            self.insert_once(collection, body, &params).await?;
        }
        Ok(())
    }

    /// One insert call, waited for: `true` when an operation ran, `false` when the resource
    /// already existed (adopted).
    async fn insert_once(
        &self,
        collection: &str,
        body: &Value,
        query: &[(&str, String)],
    ) -> Result<bool, ApiError> {
        match self
            .call(http::Method::POST, collection, query, Some(body))
            .await
        {
            Ok(operation) => self.wait(operation).await.map(|_| true),
            Err(e) if e.is_already_exists() => {
                tracing::info!(
                    collection,
                    name = body["name"].as_str().unwrap_or_default(),
                    "already exists; adopting"
                );
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes `path` and waits; already gone is success.
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        match self.call(http::Method::DELETE, path, &[], None).await {
            Ok(operation) => match self.wait(operation).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A custom verb (`setMetadata`, `setLabels`) on `path`, waited for.
    pub async fn act(&self, path: &str, verb: &str, body: &Value) -> Result<(), ApiError> {
        let operation = self
            .call(
                http::Method::POST,
                &format!("{path}/{verb}"),
                &[],
                Some(body),
            )
            .await?;
        self.wait(operation).await.map(|_| ())
    }
}

/// A UUID (version 5 layout) from SHA-256 of `seed`: the same request gets the same ID, so
/// Compute Engine answers a retried insert with the original operation.
pub fn request_id(seed: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A short stable hash of a JSON value, for "is it up to date" labels.
pub fn spec_hash(value: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.to_string().as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The network tags a Compute instance carries.
pub fn network_tags(instance: &Value) -> impl Iterator<Item = &str> {
    instance["tags"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// A GCE label value: lowercase letters, digits, `-` and `_`, at most 63 characters.
pub fn label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '_',
        })
        .take(63)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_stable_uuids() {
        let a = request_id("x");
        assert_eq!(a, request_id("x"));
        assert_ne!(a, request_id("y"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
    }

    #[test]
    fn quota_errors_quote_google() {
        let e = ApiError::from_body(
            403,
            br#"{"error":{"code":403,"message":"Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1.","errors":[{"reason":"quotaExceeded"}]}}"#,
        );
        let p = e.to_platform("insert of instance datum-x");
        assert_eq!(p.reason, "QuotaExceeded");
        assert!(
            p.message
                .contains("Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1."),
            "{}",
            p.message
        );
    }
}
