//! Process plumbing every Datum operator shares — the provider SDK and the control plane
//! alike. Nothing here knows about providers or Datum kinds.
//!
//! | module | what it holds |
//! |---|---|
//! | [`leader`] | leader election on a `coordination.k8s.io/v1` Lease |
//! | [`metrics`] | the Prometheus registry and reconcile counters, errors and durations |
//! | [`health`] | the HTTP server for `/metrics`, `/healthz` and `/readyz` |
//! | [`backoff`] | per-object exponential backoff with jitter, reset on success |
//! | [`rate_limit`] | a token bucket for calls to an outside API |
//! | [`shutdown`] | graceful shutdown on SIGINT or SIGTERM |

pub mod backoff;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod rate_limit;
pub mod shutdown;
