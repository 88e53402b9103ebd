//! The transport: one hyper client for `https` (rustls with the platform's roots) and
//! plain `http` (only ever to a loopback fake; the ProviderConfig's CEL rule enforces it),
//! with a per-request timeout. Headers are never logged: they carry the bearer token.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A transport failure (not an HTTP error status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform's TLS roots could not be loaded.
    #[error("failed to load TLS roots: {0}")]
    Roots(String),
    /// The request could not be built (bad URL).
    #[error("invalid request to {url}: {message}")]
    Request { url: String, message: String },
    /// Connecting or sending failed.
    #[error("request to {url} failed: {message}")]
    Send { url: String, message: String },
    /// No answer in time.
    #[error("request to {url} timed out after {seconds}s")]
    Timeout { url: String, seconds: u64 },
}

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// The HTTP client.
#[derive(Clone, Debug)]
pub struct Transport {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Transport {
    /// A client whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, Error> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::Roots(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// Sends one request.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<(String, &'static str)>,
    ) -> Result<Reply, Error> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let payload = match body {
            Some((body, content_type)) => {
                builder = builder.header("content-type", content_type);
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| Error::Request {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Error::Send {
                    url: url.to_owned(),
                    message: e.to_string(),
                })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Send {
                    url: url.to_owned(),
                    message: e.to_string(),
                })?
                .to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                url: url.to_owned(),
                seconds: self.timeout.as_secs(),
            })?
    }
}
