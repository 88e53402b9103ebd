//! The operator's HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive and serving) and `/readyz` (its caches are synced and it can do work).
//!
//! A plain hyper 1 HTTP/1.1 server — hyper is already in the graph through kube, so no web
//! framework is pulled in for three fixed routes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), datum_runtime::health::Error> {
//! use std::sync::Arc;
//! use datum_runtime::{health::{self, Health}, metrics::Metrics, shutdown};
//!
//! let health = Arc::new(Health::default());
//! let listener = health::bind("127.0.0.1:8080".parse().unwrap()).await?;
//! tokio::spawn(health::serve(listener, Arc::new(Metrics::new()), health.clone(), shutdown::on_signal()));
//! health.set_ready(true);
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Errors of the health server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listen address failed.
    #[error("failed to listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// Accepting a connection failed.
    #[error("failed to accept a connection: {0}")]
    Accept(#[source] std::io::Error),
}

/// Whether the process is ready; shared between the server and whoever decides.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the process ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Binds the listen address (port 0 picks a free port; see `local_addr`).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })
}

/// Serves the three routes on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted.map_err(Error::Accept)?,
        };
        let metrics = metrics.clone();
        let health = health.clone();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            let response = respond(request.uri().path(), &metrics, &health);
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "health connection ended with an error");
            }
        });
    }
}

fn respond(path: &str, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok".to_owned()),
        "/readyz" if health.is_ready() => (StatusCode::OK, "text/plain", "ok".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready".to_owned(),
        ),
        "/metrics" => match metrics.encode() {
            Ok(text) => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "failed to encode metrics".to_owned(),
            ),
        },
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects");
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reads");
        response
    }

    #[tokio::test]
    async fn routes_answer_health_readiness_and_metrics() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binds");
        let address = listener.local_addr().expect("has an address");
        let metrics = Arc::new(Metrics::new());
        metrics.reconcile.start("instance").finish(true);
        let health = Arc::new(Health::default());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics, health.clone(), shutdown.clone()));

        assert!(get(address, "/healthz").await.starts_with("HTTP/1.0 200"));
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.0 503"));
        health.set_ready(true);
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.0 200"));
        let metrics = get(address, "/metrics").await;
        assert!(
            metrics.contains(r#"datum_reconcile_total{controller="instance"} 1"#),
            "{metrics}"
        );
        assert!(get(address, "/nope").await.starts_with("HTTP/1.0 404"));

        shutdown.cancel();
        server.await.expect("joins").expect("stops cleanly");
    }
}
