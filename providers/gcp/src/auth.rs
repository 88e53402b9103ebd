//! Google credentials, cached until a minute before they expire:
//! - from a service-account key file: the key signs a JWT (RS256) that the key's
//!   `token_uri` trades for an OAuth2 access token (the JWT-bearer grant). Tests point
//!   `token_uri` at the fake;
//! - through Workload Identity Federation ([`Federation`], the `external_account` flow):
//!   a subject token read from a file (the pod's projected Kubernetes service-account
//!   token, re-read each time as the kubelet rotates it) is exchanged at the Security
//!   Token Service (`POST https://sts.googleapis.com/v1/token`, RFC 8693 token exchange)
//!   for a federated access token, optionally traded for a service account's token with
//!   `iamcredentials` `generateAccessToken` (impersonation).
//!
//! Neither the private key nor a token is ever logged, formatted into an error, or put in
//! a status: [`ServiceAccountKey`] and [`TokenSource`] print as `<redacted>`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::Transport;

/// The scope the provider asks for: Compute Engine and Secret Manager (IAM decides what
/// the service account may actually do).
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Failures to read a key or get a token. Messages never contain key material or tokens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file is not a service-account key.
    #[error("the credentials are not a valid service-account key file: {0}")]
    InvalidKey(String),
    /// The token endpoint could not be reached.
    #[error("failed to reach the token endpoint {uri}: {source}")]
    Unreachable {
        uri: String,
        source: crate::http::Error,
    },
    /// The subject token file could not be read.
    #[error("failed to read the subject token file {path}: {source}")]
    SubjectToken {
        path: String,
        source: std::io::Error,
    },
    /// The STS or IAM Credentials endpoint refused the exchange.
    #[error("{what} at {uri} was refused (HTTP {status}): {error}")]
    Exchange {
        what: String,
        uri: String,
        status: u16,
        error: String,
    },
    /// The token endpoint refused the grant.
    #[error(
        "the token endpoint {uri} refused the service account {email} (HTTP {status}): {error}"
    )]
    Refused {
        uri: String,
        email: String,
        status: u16,
        error: String,
    },
}

/// The fields of a service-account key file the provider uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// Must be `service_account`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The service account's email.
    pub client_email: String,
    /// The PKCS#8 PEM private key.
    private_key: String,
    /// The key's ID, sent as the JWT's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Where to trade the JWT for a token.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses and checks a key file; the signing key must load.
    pub fn parse(bytes: &[u8]) -> Result<(Self, ring::signature::RsaKeyPair), Error> {
        let key: Self = serde_json::from_slice(bytes).map_err(|e| {
            Error::InvalidKey(format!(
                "not service-account key JSON ({})",
                e.classify_name()
            ))
        })?;
        if key.kind != "service_account" {
            return Err(Error::InvalidKey(format!(
                "type is {:?}, expected \"service_account\"",
                key.kind
            )));
        }
        let der = pem_body(&key.private_key)
            .ok_or_else(|| Error::InvalidKey("private_key is not a PEM PRIVATE KEY".to_owned()))?;
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| Error::InvalidKey(format!("private_key is not an RSA PKCS#8 key: {e}")))?;
        Ok((key, pair))
    }
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    /// The error's category, without echoing any of the input.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing or mistyped fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The DER inside `-----BEGIN PRIVATE KEY-----` … `-----END PRIVATE KEY-----`.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let body: String = pem
        .get(start..end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// Workload Identity Federation: where the subject token is and where it is exchanged.
#[derive(Clone, Debug)]
pub struct Federation {
    /// The workload identity pool provider,
    /// `//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
    pub audience: String,
    /// The file holding the subject token (a JWT).
    pub subject_token_file: std::path::PathBuf,
    /// The STS token endpoint, `https://sts.googleapis.com/v1/token` unless overridden.
    pub sts_url: String,
    /// The IAM Credentials API root, `https://iamcredentials.googleapis.com` unless
    /// overridden.
    pub iam_credentials_url: String,
    /// The service account to impersonate, if any.
    pub service_account_email: Option<String>,
}

enum Grant {
    Key {
        key: ServiceAccountKey,
        // Boxed: the key pair is several times the size of the other variant.
        signer: Box<ring::signature::RsaKeyPair>,
    },
    Federated(Federation),
}

/// Hands out access tokens, fetching a new one when the cached one nears expiry.
pub struct TokenSource {
    grant: Grant,
    transport: Transport,
    cached: Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TokenSource");
        match &self.grant {
            Grant::Key { key, .. } => d.field("key", key),
            Grant::Federated(federation) => d.field("federation", federation),
        };
        d.field("token", &"<redacted>").finish()
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (everything but RFC 3986's
/// unreserved characters is escaped, so it also serves for URL query values).
pub(crate) fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A refusal's reason from an OAuth (`error`, `error_description`) or `google.rpc.Status`
/// (`error.status`, `error.message`) body.
fn refusal(body: &[u8]) -> String {
    let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = match &body["error"] {
        serde_json::Value::String(code) => format!(
            "{code} {}",
            body["error_description"].as_str().unwrap_or_default()
        ),
        error => format!(
            "{} {}",
            error["status"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or_default()
        ),
    };
    text.trim().to_owned()
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

impl TokenSource {
    /// A token source for a parsed key.
    pub fn new(
        key: ServiceAccountKey,
        signer: ring::signature::RsaKeyPair,
        transport: Transport,
    ) -> Self {
        Self {
            grant: Grant::Key {
                key,
                signer: Box::new(signer),
            },
            transport,
            cached: Mutex::new(None),
        }
    }

    /// A token source for Workload Identity Federation.
    pub fn federated(federation: Federation, transport: Transport) -> Self {
        Self {
            grant: Grant::Federated(federation),
            transport,
            cached: Mutex::new(None),
        }
    }

    /// The service account's email (the impersonated one when federating; empty when
    /// the federated identity is used as is).
    pub fn email(&self) -> &str {
        match &self.grant {
            Grant::Key { key, .. } => &key.client_email,
            Grant::Federated(f) => f.service_account_email.as_deref().unwrap_or_default(),
        }
    }

    /// A valid access token.
    pub async fn token(&self) -> Result<String, Error> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, expires_in) = match &self.grant {
            Grant::Key { key, signer } => self.key_token(key, signer).await?,
            Grant::Federated(federation) => self.federated_token(federation).await?,
        };
        let lifetime = Duration::from_secs(expires_in.saturating_sub(60).max(1));
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime,
        });
        Ok(token)
    }

    /// Subject token → STS federated token → (optionally) the service account's token.
    async fn federated_token(&self, f: &Federation) -> Result<(String, u64), Error> {
        let subject = tokio::fs::read_to_string(&f.subject_token_file)
            .await
            .map_err(|source| Error::SubjectToken {
                path: f.subject_token_file.display().to_string(),
                source,
            })?;
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", f.audience.as_str()),
            ("scope", SCOPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject.trim()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let reply = self
            .transport
            .send(
                http::Method::POST,
                &f.sts_url,
                &[],
                Some((form, "application/x-www-form-urlencoded")),
            )
            .await
            .map_err(|source| Error::Unreachable {
                uri: f.sts_url.clone(),
                source,
            })?;
        let exchange = |what: &str, uri: &str, status: u16, error: String| Error::Exchange {
            what: what.to_owned(),
            uri: uri.to_owned(),
            status,
            error,
        };
        if reply.status != 200 {
            return Err(exchange(
                &format!("the token exchange for {}", f.audience),
                &f.sts_url,
                reply.status,
                refusal(&reply.body),
            ));
        }
        let federated: TokenReply = serde_json::from_slice(&reply.body).map_err(|_| {
            exchange(
                "the token exchange",
                &f.sts_url,
                reply.status,
                "the reply has no access_token".to_owned(),
            )
        })?;
        let Some(email) = &f.service_account_email else {
            return Ok((federated.access_token, federated.expires_in));
        };
        let uri = format!(
            "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
            f.iam_credentials_url.trim_end_matches('/')
        );
        let body = serde_json::json!({ "scope": [SCOPE], "lifetime": "3600s" });
        let reply = self
            .transport
            .send(
                http::Method::POST,
                &uri,
                &[(
                    "authorization",
                    format!("Bearer {}", federated.access_token),
                )],
                Some((body.to_string(), "application/json")),
            )
            .await
            .map_err(|source| Error::Unreachable {
                uri: uri.clone(),
                source,
            })?;
        let what = format!("impersonation of {email}");
        if reply.status != 200 {
            return Err(exchange(&what, &uri, reply.status, refusal(&reply.body)));
        }
        let parsed: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let token = parsed["accessToken"].as_str().ok_or_else(|| {
            exchange(
                &what,
                &uri,
                reply.status,
                "the reply has no accessToken".to_owned(),
            )
        })?;
        // The lifetime asked for; `expireTime` says the same.
        Ok((token.to_owned(), 3600))
    }

    /// The JWT-bearer grant of a service-account key.
    async fn key_token(
        &self,
        key: &ServiceAccountKey,
        signer: &ring::signature::RsaKeyPair,
    ) -> Result<(String, u64), Error> {
        let assertion = assertion(key, signer)?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let uri = key.token_uri.clone();
        let reply = self
            .transport
            .send(
                http::Method::POST,
                &uri,
                &[],
                Some((form, "application/x-www-form-urlencoded")),
            )
            .await
            .map_err(|source| Error::Unreachable {
                uri: uri.clone(),
                source,
            })?;
        if reply.status != 200 {
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            let error = format!(
                "{} {}",
                body["error"].as_str().unwrap_or("error"),
                body["error_description"].as_str().unwrap_or_default()
            );
            return Err(Error::Refused {
                uri,
                email: key.client_email.clone(),
                status: reply.status,
                error: error.trim().to_owned(),
            });
        }
        let parsed: TokenReply =
            serde_json::from_slice(&reply.body).map_err(|_| Error::Refused {
                uri: uri.clone(),
                email: key.client_email.clone(),
                status: reply.status,
                error: "the reply has no access_token".to_owned(),
            })?;
        Ok((parsed.access_token, parsed.expires_in))
    }

    /// Forgets the cached token (after a 401).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// The signed JWT: `{alg: RS256, kid}` . `{iss, scope, aud, iat, exp}` . signature.
fn assertion(
    key: &ServiceAccountKey,
    signer: &ring::signature::RsaKeyPair,
) -> Result<String, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = &key.private_key_id {
        header["kid"] = serde_json::json!(kid);
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + 3600,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; signer.public().modulus_len()];
    signer
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .map_err(|_| Error::InvalidKey("the private key cannot sign".to_owned()))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_key_file_is_refused_without_echoing_it() {
        let err = ServiceAccountKey::parse(
            br#"{"type":"service_account","client_email":"a@b","private_key":"SECRET-MATERIAL"}"#,
        )
        .expect_err("refused");
        assert!(!err.to_string().contains("SECRET-MATERIAL"), "{err}");
        let err = ServiceAccountKey::parse(b"SECRET-MATERIAL").expect_err("refused");
        assert!(!err.to_string().contains("SECRET-MATERIAL"), "{err}");
    }
}
