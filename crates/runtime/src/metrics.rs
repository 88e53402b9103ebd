//! The Prometheus registry an operator exposes on `/metrics`, with the reconcile metrics
//! every controller records (built on `prometheus-client`, the official Rust client).
//!
//! Metric names, all labelled by `controller`:
//! - `datum_reconcile_total` — reconciles started;
//! - `datum_reconcile_errors_total` — reconciles that failed;
//! - `datum_reconcile_duration_seconds` — a histogram of reconcile durations;
//! - `datum_leader` — 1 while this process holds its Lease, else 0.
//!
//! ```
//! use datum_runtime::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! let timer = metrics.reconcile.start("instance");
//! timer.finish(true);
//! let text = metrics.encode().unwrap();
//! assert!(text.contains(r#"datum_reconcile_total{controller="instance"} 1"#));
//! ```

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The process's metrics and the registry that exports them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Counters and durations of reconciles.
    pub reconcile: ReconcileMetrics,
    /// 1 while this process leads.
    pub leader: Gauge,
}

/// Counters and durations of reconciles, by controller.
#[derive(Debug, Clone)]
pub struct ReconcileMetrics {
    total: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding the reconcile metrics and the leader gauge.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("datum");
        let reconcile = ReconcileMetrics {
            total: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        let leader = Gauge::default();
        registry.register("reconcile", "Reconciles started", reconcile.total.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed",
            reconcile.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took",
            reconcile.duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds its Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconcile,
            leader,
        }
    }

    /// The registry, to add metrics of one's own before the server starts.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl ReconcileMetrics {
    /// Counts a reconcile of `controller` and starts its clock.
    pub fn start(&self, controller: &str) -> ReconcileTimer {
        let labels = vec![("controller", controller.to_owned())];
        self.total.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self.clone(),
            labels,
            started: Instant::now(),
        }
    }
}

/// A reconcile in progress; [`ReconcileTimer::finish`] records its outcome and duration.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: ReconcileMetrics,
    labels: Labels,
    started: Instant,
}

impl ReconcileTimer {
    /// Records the duration, and an error unless `ok`.
    pub fn finish(self, ok: bool) {
        if !ok {
            self.metrics.errors.get_or_create(&self.labels).inc();
        }
        self.metrics
            .duration
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_durations_are_recorded_per_controller() {
        let metrics = Metrics::new();
        metrics.reconcile.start("instance").finish(false);
        metrics.reconcile.start("instance").finish(true);
        metrics.reconcile.start("subnet").finish(true);
        metrics.leader.set(1);
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains(r#"datum_reconcile_total{controller="instance"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"datum_reconcile_errors_total{controller="instance"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"datum_reconcile_errors_total{controller="subnet"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"datum_reconcile_duration_seconds_count{controller="subnet"} 1"#),
            "{text}"
        );
        assert!(text.contains("datum_leader 1"), "{text}");
    }
}
