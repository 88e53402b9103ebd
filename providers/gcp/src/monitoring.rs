//! Usage figures from Cloud Monitoring: the CPU (and, where the Ops Agent runs, memory)
//! utilisation of the VMs the provider observes, as the percentages Datum's autoscaler
//! reads from `status.usage`. Autoscaling stays Datum's; this only reports.
//!
//! | metric | becomes |
//! |---|---|
//! | `compute.googleapis.com/instance/cpu/utilization` (fraction of the VM's vCPUs, the machine type the instance type maps to) | `cpuUtilization` = fraction × 100 |
//! | `agent.googleapis.com/memory/percent_used`, `state="used"` (Ops Agent only) | `memoryUtilization`; unset without the agent — Compute Engine has no built-in guest memory metric |
//!
//! **Cost.** Figures are fetched in rounds, per project: the first observe after a round
//! is [`UsageCache::interval`] old (60 s by default) starts the next one, which asks
//! `projects.timeSeries.list` once per metric for every running instance of the project
//! observed recently (`resource.labels.instance_id = one_of(...)`, 100 IDs a request),
//! mean-aligned over 60 s across the last five minutes (Monitoring shows a sample up to
//! 240 s late), newest point kept, every page of the answer read. Until then observes
//! read the cache, so each instance is asked about at most once per interval; an instance
//! first seen mid-round waits for the next round. Every request (each page is one) takes a
//! token from the project's rate-limit bucket.
//!
//! **Failure.** Monitoring never fails a reconcile: a failed or slow round (more than
//! [`DEADLINE`]) is logged at debug and the previous figures stay, so `status.usage`
//! keeps its old `observedAt` and goes stale for the autoscaler; a failed memory query
//! only leaves memory unset. The next try is a round later, not on the next observe.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datum_provider::Usage;
use serde_json::Value;

use crate::auth::form_encode as encode;
use crate::compute::{ApiError, Compute};
use crate::paging::every_page;

/// CPU utilisation of a Compute Engine instance, a fraction of its vCPUs.
pub const CPU_UTILIZATION: &str = "compute.googleapis.com/instance/cpu/utilization";
/// Memory in use, percent, as the Ops Agent reports it.
pub const MEMORY_PERCENT_USED: &str = "agent.googleapis.com/memory/percent_used";
/// The longest a round may take before its observe goes on without new figures.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Instance IDs per `timeSeries.list` request (keeps the filter short).
const BATCH: usize = 100;

/// The figures of each project's instances and when each project's round started.
#[derive(Debug)]
pub struct UsageCache {
    /// Least time between two rounds of one project.
    pub interval: Duration,
    projects: Mutex<HashMap<String, ProjectUsage>>,
}

#[derive(Debug, Default)]
struct ProjectUsage {
    /// Instance ID → last observe.
    seen: HashMap<String, Instant>,
    /// When the last round started.
    round: Option<Instant>,
    /// The instances the last round asked about.
    asked: HashSet<String>,
    /// Instance ID → figures.
    figures: HashMap<String, Usage>,
}

/// What an observe does about usage.
enum Step {
    /// The round is fresh: these are the figures.
    Cached(Option<Usage>),
    /// A round is due: ask about these instances.
    Fetch(Vec<String>),
}

impl UsageCache {
    /// An empty cache with rounds at least `interval` apart.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            projects: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ProjectUsage>) -> T) -> T {
        let mut guard = match self.projects.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Records the observe of `id` and says whether a round is due.
    fn step(&self, project: &str, id: &str) -> Step {
        let now = Instant::now();
        let interval = self.interval;
        self.with(|projects| {
            let p = projects.entry(project.to_owned()).or_default();
            p.seen.insert(id.to_owned(), now);
            if p.round.is_some_and(|at| now.duration_since(at) < interval) {
                let figures = p.asked.contains(id).then(|| p.figures.get(id).cloned());
                return Step::Cached(figures.flatten());
            }
            // Instances not observed for three intervals are gone (deleted, stopped).
            let horizon = interval.saturating_mul(3);
            p.seen.retain(|_, at| now.duration_since(*at) <= horizon);
            let seen = &p.seen;
            p.figures.retain(|i, _| seen.contains_key(i));
            p.round = Some(now);
            p.asked = p.seen.keys().cloned().collect();
            let mut ids: Vec<String> = p.asked.iter().cloned().collect();
            ids.sort();
            Step::Fetch(ids)
        })
    }

    /// Stores a round's answer (or keeps the old figures when it failed) and returns
    /// `id`'s.
    fn settle(
        &self,
        project: &str,
        id: &str,
        fetched: Option<HashMap<String, Usage>>,
    ) -> Option<Usage> {
        self.with(|projects| {
            let p = projects.entry(project.to_owned()).or_default();
            if let Some(figures) = fetched {
                p.figures = figures;
            }
            p.figures.get(id).cloned()
        })
    }
}

impl Default for UsageCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl Compute {
    /// The usage of the running instance `id` (its numeric ID) in `project`: cached, or
    /// fetched in this project's next round. `None` when Monitoring has no figures (yet).
    pub async fn usage_of(&self, project: &str, id: &str) -> Option<Usage> {
        let ids = match self.usage.step(project, id) {
            Step::Cached(figures) => return figures,
            Step::Fetch(ids) => ids,
        };
        let fetched = match tokio::time::timeout(DEADLINE, self.fetch_usage(project, &ids)).await {
            Ok(Ok(figures)) => Some(figures),
            Ok(Err(e)) => {
                tracing::debug!(project, instances = ids.len(), error = %e, "Cloud Monitoring did not answer; usage figures go stale");
                None
            }
            Err(_) => {
                tracing::debug!(
                    project,
                    instances = ids.len(),
                    seconds = DEADLINE.as_secs(),
                    "Cloud Monitoring too slow; usage figures go stale"
                );
                None
            }
        };
        self.usage.settle(project, id, fetched)
    }

    /// CPU and memory of `ids`, in batches; instances without figures are left out.
    async fn fetch_usage(
        &self,
        project: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Usage>, ApiError> {
        let mut figures: HashMap<String, Usage> = HashMap::new();
        for batch in ids.chunks(BATCH) {
            for (id, cpu) in self.latest(project, CPU_UTILIZATION, "", batch).await? {
                figures.entry(id).or_default().cpu_utilization = Some(percent(cpu * 100.0));
            }
            match self
                .latest(
                    project,
                    MEMORY_PERCENT_USED,
                    " AND metric.labels.state = \"used\"",
                    batch,
                )
                .await
            {
                Ok(memory) => {
                    for (id, used) in memory {
                        figures.entry(id).or_default().memory_utilization = Some(percent(used));
                    }
                }
                Err(e) => {
                    tracing::debug!(project, error = %e, "no memory figures from Cloud Monitoring");
                }
            }
        }
        Ok(figures)
    }

    /// The newest mean-aligned value of `metric` per instance of `ids`.
    async fn latest(
        &self,
        project: &str,
        metric: &str,
        more: &str,
        ids: &[String],
    ) -> Result<Vec<(String, f64)>, ApiError> {
        let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
        let filter = format!(
            "metric.type = \"{metric}\" AND resource.type = \"gce_instance\" AND resource.labels.instance_id = one_of({}){more}",
            quoted.join(", ")
        );
        let end = k8s_openapi::jiff::Timestamp::now();
        let start = end
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(300))
            .unwrap_or(end);
        let url = format!(
            "{}/v3/projects/{project}/timeSeries",
            self.settings.monitoring_endpoint.trim_end_matches('/')
        );
        let query = [
            ("filter", encode(&filter)),
            ("interval.startTime", encode(&start.to_string())),
            ("interval.endTime", encode(&end.to_string())),
            ("aggregation.alignmentPeriod", "60s".to_owned()),
            ("aggregation.perSeriesAligner", "ALIGN_MEAN".to_owned()),
        ];
        let series = every_page("timeSeries", |token| {
            let mut query = query.to_vec();
            query.extend(token.map(|t| ("pageToken", encode(&t))));
            let url = &url;
            async move {
                self.send(http::Method::GET, url, project, &query, None)
                    .await
            }
        })
        .await?;
        Ok(newest_points(&series))
    }
}

/// `(instance_id, value)` of each series' newest point (the API lists points newest first).
fn newest_points(series: &[Value]) -> Vec<(String, f64)> {
    series
        .iter()
        .filter_map(|series| {
            let id = series["resource"]["labels"]["instance_id"].as_str()?;
            let value = &series["points"][0]["value"];
            let number = value["doubleValue"]
                .as_f64()
                .or_else(|| value["int64Value"].as_str()?.parse().ok())?;
            Some((id.to_owned(), number))
        })
        .collect()
}

/// A whole percentage, clamped to 0..=1000 (shared-core VMs burst above 100).
fn percent(value: f64) -> i32 {
    if value.is_finite() {
        value.round().clamp(0.0, 1000.0) as i32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newest_point_per_instance() {
        let series = [
            json!({ "resource": { "labels": { "instance_id": "1" } },
              "points": [{ "value": { "doubleValue": 0.75 } }, { "value": { "doubleValue": 0.1 } }] }),
            json!({ "resource": { "labels": { "instance_id": "2" } }, "points": [] }),
        ];
        assert_eq!(newest_points(&series), vec![("1".to_owned(), 0.75)]);
        assert!(newest_points(&[]).is_empty());
        assert_eq!(percent(0.755 * 100.0), 76);
        assert_eq!(percent(f64::NAN), 0);
        assert_eq!(encode("a = \"b\""), "a%20%3D%20%22b%22");
    }

    #[test]
    fn one_round_per_interval_and_late_comers_wait() {
        let cache = UsageCache::new(Duration::from_secs(60));
        assert!(matches!(cache.step("p", "1"), Step::Fetch(ids) if ids == ["1"]));
        let mut fetched = HashMap::new();
        fetched.insert(
            "1".to_owned(),
            Usage {
                cpu_utilization: Some(75),
                memory_utilization: None,
            },
        );
        let usage = cache.settle("p", "1", Some(fetched));
        assert_eq!(usage.and_then(|u| u.cpu_utilization), Some(75));
        // Within the interval: cached, and an instance the round did not ask about waits.
        assert!(matches!(cache.step("p", "1"), Step::Cached(Some(_))));
        assert!(matches!(cache.step("p", "2"), Step::Cached(None)));
        // Another project has its own round.
        assert!(matches!(cache.step("q", "3"), Step::Fetch(_)));
    }
}
