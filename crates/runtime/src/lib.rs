//! Process plumbing every Datum operator shares — the provider SDK and the control plane
//! alike. Nothing here knows about providers or Datum kinds.
//!
//! | module | what it holds |
//! |---|---|
//! | [`leader`] | leader election on a `coordination.k8s.io/v1` Lease |
//! | [`metrics`] | the Prometheus registry and reconcile counters, errors and durations |
//! | [`health`] | the HTTP server for `/metrics`, `/healthz` and `/readyz` |
//! | [`backoff`] | per-object exponential backoff with jitter, reset on success |
//! | [`freshness`] | which cached copies are known outdated, so no write starts from one |
//! | [`rate_limit`] | a token bucket for calls to an outside API |
//! | [`relist`] | a watch's changed objects, a re-list's held until the store has them |
//! | [`shutdown`] | graceful shutdown on SIGINT or SIGTERM |

pub mod backoff;
pub mod freshness;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod rate_limit;
pub mod relist;
pub mod shutdown;
