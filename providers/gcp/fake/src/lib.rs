//! A local fake of the Compute Engine REST API (`/compute/v1/...`), the Secret Manager
//! subset the provider uses (`/v1/projects/<p>/secrets...`), Cloud Monitoring's
//! `timeSeries.list` for instance usage (`/v3/projects/<p>/timeSeries`) and Google's OAuth2
//! token endpoint (`/token`), listening on 127.0.0.1 only, for the GCP provider's tests.
//!
//! One [`FakeCompute`] holds the resources; each [`FakeCompute::listen`] opens another
//! listener over the same resources with its own [`Faults`], so ProviderConfigs pointing at
//! different listeners see one platform that behaves differently per config.
//!
//! | module | what it holds |
//! |---|---|
//! | [`compute`] | resources, operations, request IDs, the REST semantics |
//! | [`health`] | instance group membership, backend service health, the "port answers" test hook |
//! | [`secret_manager`] | secrets, versions, IAM policies |
//! | [`monitoring`] | CPU and memory figures per instance, `timeSeries.list` and its filter |
//! | [`paging`] | list paging of Compute Engine (`maxResults`), Secret Manager and Monitoring (`pageSize`): `pageToken`, `nextPageToken`, the page size test hooks |
//! | [`token`] | the JWT-bearer token endpoint |
//! | [`sts`] | Workload Identity Federation: STS token exchange and `generateAccessToken` |
//! | [`faults`] | injectable errors and hangs |
//! | [`errors`] | Google's JSON error bodies |
//!
//! A metadata server (`/computeMetadata/v1/`, see [`FakeCompute::serve_metadata_of`])
//! answers as one chosen instance would see it, so a test can run a VM's boot script.
//!
//! Every Compute Engine, Secret Manager and Monitoring call needs `Authorization: Bearer <token>` with a token this fake issued.

pub mod compute;
pub mod errors;
pub mod faults;
pub mod health;
pub mod monitoring;
pub mod paging;
pub mod secret_manager;
pub mod sts;
pub mod token;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use compute::Compute;
pub use faults::{Faults, InjectedError};
pub use monitoring::{Figures, Monitoring};
pub use secret_manager::SecretManager;

/// Starting the fake failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not bind.
    #[error("failed to listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

#[derive(Debug, Default)]
struct Shared {
    compute: Compute,
    secrets: SecretManager,
    monitoring: Monitoring,
    tokens: HashSet<String>,
    /// Tokens the metadata server gave "the VM": the default service account's.
    vm_tokens: HashSet<String>,
    /// The instance the metadata server answers for (a path below `/compute/v1/`).
    metadata_instance: Option<String>,
    trusted_keys: Vec<Vec<u8>>,
    issued: u64,
    federation: sts::Federation,
}

/// The fake: resources shared by all its listeners.
#[derive(Clone, Debug, Default)]
pub struct FakeCompute {
    shared: Arc<Mutex<Shared>>,
}

/// One listener: its URLs and faults.
#[derive(Clone, Debug)]
pub struct Listener {
    /// The API root to use as the provider's `endpoint`, e.g. `http://127.0.0.1:1234`.
    pub endpoint: String,
    /// The token endpoint to put in a service-account key's `token_uri`.
    pub token_uri: String,
    /// This listener's faults.
    pub faults: Faults,
}

impl FakeCompute {
    /// An empty fake; operations take `polls_to_done` polls to finish.
    pub fn new(polls_to_done: u32) -> Self {
        let fake = Self::default();
        fake.with(|s| s.compute.polls_to_done = polls_to_done);
        fake
    }

    /// Accepts only assertions signed by this key (DER `RSAPublicKey`).
    pub fn trust_key(&self, public_key_der: Vec<u8>) {
        self.with(|s| s.trusted_keys.push(public_key_der));
    }

    /// Reads or changes the resources.
    pub fn with_compute<T>(&self, f: impl FnOnce(&mut Compute) -> T) -> T {
        self.with(|s| f(&mut s.compute))
    }

    /// Reads or changes what Workload Identity Federation accepts.
    pub fn with_federation<T>(&self, f: impl FnOnce(&mut sts::Federation) -> T) -> T {
        self.with(|s| f(&mut s.federation))
    }

    /// Reads or changes the secrets.
    pub fn with_secrets<T>(&self, f: impl FnOnce(&mut SecretManager) -> T) -> T {
        self.with(|s| f(&mut s.secrets))
    }

    /// Reads or changes what Cloud Monitoring reports (see [`Monitoring::set_usage`]).
    pub fn with_monitoring<T>(&self, f: impl FnOnce(&mut Monitoring) -> T) -> T {
        self.with(|s| f(&mut s.monitoring))
    }

    /// Makes the metadata server (`/computeMetadata/v1/`) answer as if it ran on the
    /// instance at `path`: its metadata items under `instance/attributes/<key>` and tokens
    /// of the project's default service account under
    /// `instance/service-accounts/default/token` — what a boot script on that VM sees.
    pub fn serve_metadata_of(&self, path: &str) {
        self.with(|s| s.metadata_instance = Some(path.trim_matches('/').to_owned()));
    }

    /// Opens a listener on 127.0.0.1 with fresh faults.
    pub async fn listen(&self) -> Result<Listener, Error> {
        let socket = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::Bind)?;
        let address = socket.local_addr().map_err(Error::Bind)?;
        let endpoint = format!("http://{address}");
        self.with(|s| {
            if s.compute.link_prefix.is_empty() {
                s.compute.link_prefix = format!("{endpoint}/compute/v1/");
            }
        });
        let faults = Faults::default();
        let listener = Listener {
            token_uri: format!("{endpoint}/token"),
            endpoint,
            faults: faults.clone(),
        };
        let fake = self.clone();
        let token_uri = listener.token_uri.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    continue;
                };
                let (fake, faults, token_uri) = (fake.clone(), faults.clone(), token_uri.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (fake, faults, token_uri) =
                            (fake.clone(), faults.clone(), token_uri.clone());
                        async move { fake.serve(request, &faults, &token_uri).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(listener)
    }

    /// The address a listener serves, for tests that need it.
    pub fn address(listener: &Listener) -> Option<SocketAddr> {
        listener.endpoint.strip_prefix("http://")?.parse().ok()
    }

    async fn serve(
        &self,
        request: Request<Incoming>,
        faults: &Faults,
        token_uri: &str,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let method = parts.method.as_str().to_owned();
        let path = parts.uri.path().to_owned();
        let query = parse_query(parts.uri.query().unwrap_or_default());
        let authorization = parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        let flavor = parts
            .headers
            .get("metadata-flavor")
            .and_then(|v| v.to_str().ok())
            == Some("Google");
        if let Some(key) = path.strip_prefix("/computeMetadata/v1/") {
            let (status, text) = if flavor {
                self.metadata(key)
            } else {
                (403, "Missing Metadata-Flavor:Google header.".to_owned())
            };
            let mut response = Response::new(Full::new(Bytes::from(text)));
            *response.status_mut() =
                hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
            return Ok(response);
        }
        let bearer = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let impersonate = path
            .strip_prefix("/v1/projects/-/serviceAccounts/")
            .and_then(|rest| rest.strip_suffix(":generateAccessToken"))
            .map(str::to_owned);
        let (status, reply) = if path == "/token" && method == "POST" {
            self.issue_token(&String::from_utf8_lossy(&bytes), token_uri)
        } else if path == "/v1/token" && method == "POST" {
            self.exchange(&String::from_utf8_lossy(&bytes))
        } else if let Some(email) = impersonate.filter(|_| method == "POST") {
            let body = serde_json::from_slice::<Value>(&bytes).ok();
            self.impersonate(&bearer, &email, body.as_ref())
        } else if path.starts_with("/compute/v1/")
            || path.starts_with("/v1/")
            || path.starts_with("/v3/")
        {
            let token = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default();
            let body = serde_json::from_slice::<Value>(&bytes).ok();
            let vm = self.with(|s| s.vm_tokens.contains(token));
            if !vm && !self.with(|s| s.tokens.contains(token)) {
                token::unauthenticated()
            } else if vm && !path.starts_with("/v1/") {
                (
                    403,
                    errors::body(
                        403,
                        "forbidden",
                        "The VM's service account has no Compute Engine role here",
                    ),
                )
            } else if let Some(error) = faults.request_error(&method, &path) {
                (
                    error.code,
                    errors::body(error.code, &error.reason, &error.message),
                )
            } else if let Some(api_path) = path.strip_prefix("/v3/") {
                self.with(|s| s.monitoring.handle(&method, api_path, &query, &s.compute))
            } else if let Some(api_path) = path.strip_prefix("/v1/") {
                let caller = vm.then_some(compute::DEFAULT_SERVICE_ACCOUNT);
                self.with(|s| s.secrets.handle(&method, api_path, &query, body, caller))
            } else {
                let api_path = path.trim_start_matches("/compute/v1/");
                match compute::Target::parse(api_path) {
                    None if method == "GET" => self.with(|s| s.compute.project(api_path)),
                    None => errors::not_found(api_path),
                    Some(target) => {
                        let is_insert = method == "POST"
                            && target.name.is_none()
                            && target.kind != "operations";
                        let op_error = if is_insert {
                            faults.operation_error(&path)
                        } else {
                            None
                        };
                        let reply = self
                            .with(|s| s.compute.handle(&method, &target, &query, body, op_error));
                        // The resources a Datum object records the ID of; the helpers
                        // made before them (templates, firewall rules) answer normally.
                        let recorded = matches!(
                            target.kind.as_str(),
                            "instances" | "networks" | "subnetworks"
                        );
                        if is_insert && recorded && reply.0 == 200 && faults.hangs_after_insert() {
                            std::future::pending::<()>().await;
                        }
                        reply
                    }
                }
            }
        } else {
            errors::not_found(&path)
        };
        tracing::debug!(%method, %path, status, "fake compute");
        let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
        *response.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        Ok(response)
    }

    fn metadata(&self, key: &str) -> (u16, String) {
        self.with(|s| {
            let Some(instance) = s
                .metadata_instance
                .as_ref()
                .and_then(|p| s.compute.resource(p))
            else {
                return (404, "no instance".to_owned());
            };
            if key == "instance/service-accounts/default/token" {
                s.issued += 1;
                let token = format!("ya29.fake-vm-{}", s.issued);
                s.vm_tokens.insert(token.clone());
                let reply =
                    json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" });
                return (200, reply.to_string());
            }
            let value = key.strip_prefix("instance/attributes/").and_then(|name| {
                instance["metadata"]["items"]
                    .as_array()?
                    .iter()
                    .find(|i| i["key"] == name)?["value"]
                    .as_str()
                    .map(str::to_owned)
            });
            match value {
                Some(v) => (200, v),
                None => (404, format!("{key} not found")),
            }
        })
    }

    fn issue_token(&self, form: &str, token_uri: &str) -> (u16, Value) {
        self.with(|s| {
            let expect = token::Expectation {
                audience: token_uri,
                trusted_keys: &s.trusted_keys,
            };
            match token::check_grant(form, &expect) {
                Ok(_) => {
                    s.issued += 1;
                    let token = format!("ya29.fake-{}", s.issued);
                    s.tokens.insert(token.clone());
                    (
                        200,
                        json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" }),
                    )
                }
                Err(reply) => reply,
            }
        })
    }

    /// STS: a federated access token for an accepted subject token.
    fn exchange(&self, form: &str) -> (u16, Value) {
        self.with(|s| match s.federation.exchange(form) {
            Ok(()) => {
                s.issued += 1;
                let token = format!("ya29.fake-sts-{}", s.issued);
                s.tokens.insert(token.clone());
                s.federation.federated.insert(token.clone());
                (
                    200,
                    json!({
                        "access_token": token,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                        "token_type": "Bearer",
                        "expires_in": 3599,
                    }),
                )
            }
            Err(reply) => reply,
        })
    }

    /// IAM Credentials `generateAccessToken`: the service account's token for a federated
    /// caller allowed to impersonate it.
    fn impersonate(&self, bearer: &str, email: &str, body: Option<&Value>) -> (u16, Value) {
        self.with(|s| {
            let known = s.tokens.contains(bearer);
            match s.federation.may_impersonate(bearer, known, email, body) {
                Ok(()) => {
                    s.issued += 1;
                    let token = format!("ya29.fake-sa-{}", s.issued);
                    s.tokens.insert(token.clone());
                    (
                        200,
                        json!({ "accessToken": token, "expireTime": "2026-01-01T01:00:00Z" }),
                    )
                }
                Err(reply) => reply,
            }
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        let mut guard = match self.shared.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes (a malformed escape stays as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
