//! The Cloud Monitoring subset the provider reads usage through:
//! `GET /v3/projects/<p>/timeSeries` (`projects.timeSeries.list`) for the two metrics of
//! Compute Engine instances the provider asks for, with the test hook that sets an
//! instance's figures ([`Monitoring::set_usage`]).
//!
//! | metric type | resource | value |
//! |---|---|---|
//! | `compute.googleapis.com/instance/cpu/utilization` | `gce_instance` | fraction of the vCPUs in use (0–1, more when bursting); metric labels `instance_name` |
//! | `agent.googleapis.com/memory/percent_used` | `gce_instance` | percent, one series per metric label `state` (`used`, `free`, …); only where the Ops Agent runs |
//!
//! **Filter.** The subset of the monitoring filter language the provider uses: clauses
//! joined by `AND`, each `<selector> = "<value>"` or `<selector> = one_of("<a>", "<b>", …)`,
//! selectors `metric.type`, `resource.type`, `metric.labels.<key>`,
//! `resource.labels.<key>` (`label` is accepted for `labels`). Exactly one `metric.type`
//! is required, as the API requires; anything else is `400 INVALID_ARGUMENT`.
//!
//! **Answer.** `{"timeSeries": [{"metric": {"type", "labels"}, "resource": {"type",
//! "labels": {"project_id", "instance_id", "zone"}}, "metricKind": "GAUGE", "valueType":
//! "DOUBLE", "points": [{"interval": {"startTime", "endTime"}, "value": {"doubleValue"}}]}]}`
//! — one series per matching instance with figures, one point covering the request's
//! interval (or its alignment period, with an aligner); `timeSeries` is omitted when
//! nothing matches, as proto3 JSON omits empty lists.
//!
//! **Paging** ([`crate::paging`]). `pageSize` absent, 0 or above [`MAX_PAGE_SIZE`] is
//! [`MAX_PAGE_SIZE`] (each series has one point, so series and points count alike);
//! `nextPageToken` while series remain, a `pageToken` good for the same project and filter
//! only. Series come in the order of their instance's path, then metric labels.
//! [`Monitoring::set_page_size`] is the test hook that makes pages smaller than asked.
//!
//! **Errors** (`google.rpc.Status`): `400 INVALID_ARGUMENT` for a bad or missing filter, a
//! missing `interval.endTime`, a malformed `aggregation.alignmentPeriod`, a negative
//! `pageSize` or a `pageToken` this fake did not issue for the list; `403
//! PERMISSION_DENIED` for a project whose `monitoring.timeSeries.list` the test withdrew
//! ([`Monitoring::deny`]); `404 NOT_FOUND` for a project the fake has no resource in, and
//! for a metric type it does not know.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use crate::compute::{Compute, Reply};
use crate::{errors, paging};

/// CPU utilization of a Compute Engine instance, a fraction of its vCPUs.
pub const CPU_UTILIZATION: &str = "compute.googleapis.com/instance/cpu/utilization";
/// Memory in use as the Ops Agent reports it, percent, per `state`.
pub const MEMORY_PERCENT_USED: &str = "agent.googleapis.com/memory/percent_used";
/// The most points a page holds, and the page size when `pageSize` is absent or 0.
pub const MAX_PAGE_SIZE: usize = 100_000;

/// What Cloud Monitoring knows of one instance.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// `cpu/utilization`, a fraction (0.75 is 75 % of the vCPUs).
    pub cpu: Option<f64>,
    /// The Ops Agent's `memory/percent_used` with `state="used"`, percent; `None` when no
    /// agent runs (Compute Engine has no built-in guest memory metric).
    pub memory_percent: Option<f64>,
}

/// The figures of every instance, and who may read them.
#[derive(Debug, Default)]
pub struct Monitoring {
    /// Instance path (below `/compute/v1/`) → figures.
    figures: HashMap<String, Figures>,
    /// Projects whose `monitoring.timeSeries.list` is denied.
    denied: BTreeSet<String>,
    /// The test hook's cap on list pages.
    page_size: Option<usize>,
    /// Every `timeSeries.list` page answered, as the filter it carried.
    pub queries: Vec<String>,
}

impl Monitoring {
    /// Test hook: the figures of the instance at `path` (below `/compute/v1/`, e.g.
    /// `projects/p/zones/z/instances/i`); `None` forgets them (no data points).
    pub fn set_usage(&mut self, path: &str, figures: Option<Figures>) {
        let path = path.trim_matches('/').to_owned();
        match figures {
            Some(f) => self.figures.insert(path, f),
            None => self.figures.remove(&path),
        };
    }

    /// Test hook: withdraws (`true`) or restores `monitoring.timeSeries.list` on `project`.
    pub fn deny(&mut self, project: &str, denied: bool) {
        if denied {
            self.denied.insert(project.to_owned());
        } else {
            self.denied.remove(project);
        }
    }

    /// Test hook: every `timeSeries.list` page holds at most `size` series (at least 1),
    /// whatever `pageSize` asks; `None` restores pages of `pageSize`.
    pub fn set_page_size(&mut self, size: Option<usize>) {
        self.page_size = size.map(|s| s.max(1));
    }

    /// Answers one call; `path` is below `/v3/`.
    pub(crate) fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        compute: &Compute,
    ) -> Reply {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let project = match (method, parts.as_slice()) {
            ("GET", ["projects", p, "timeSeries"]) => *p,
            _ => return errors::rpc(404, &format!("Method not found: {method} /v3/{path}")),
        };
        if self.denied.contains(project) {
            return errors::rpc(
                403,
                &format!(
                    "Permission monitoring.timeSeries.list denied (or the resource may not exist) on projects/{project}."
                ),
            );
        }
        let prefix = format!("projects/{project}/");
        if !compute.resources.keys().any(|k| k.starts_with(&prefix)) {
            return errors::rpc(
                404,
                &format!("Project projects/{project} not found or deleted."),
            );
        }
        let filter_text = query.get("filter").map(String::as_str).unwrap_or_default();
        let filter = match Filter::parse(filter_text) {
            Ok(f) => f,
            Err(reason) => {
                return errors::rpc(
                    400,
                    &format!("Field filter had an invalid value of \"{filter_text}\": {reason}"),
                );
            }
        };
        let Some(end) = query.get("interval.endTime").filter(|t| timestamp(t)) else {
            return errors::rpc(
                400,
                "Field interval.endTime had an invalid value: an RFC 3339 timestamp is required",
            );
        };
        let start = match query.get("interval.startTime") {
            Some(t) if !timestamp(t) => {
                return errors::rpc(
                    400,
                    &format!("Field interval.startTime had an invalid value of \"{t}\""),
                );
            }
            Some(t) => t.clone(),
            None => end.clone(),
        };
        let aligner = query
            .get("aggregation.perSeriesAligner")
            .filter(|a| a.as_str() != "ALIGN_NONE");
        let period = query.get("aggregation.alignmentPeriod");
        let period_seconds = match period {
            Some(p) => match p.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return errors::rpc(
                        400,
                        &format!(
                            "Field aggregation.alignmentPeriod had an invalid value of \"{p}\""
                        ),
                    );
                }
            },
            None => None,
        };
        if aligner.is_some() && period_seconds.is_none() {
            return errors::rpc(
                400,
                "Field aggregation.alignmentPeriod must be set when aggregation.perSeriesAligner is",
            );
        }
        let (metric_type, series_labels): (&str, Vec<BTreeMap<&str, String>>) =
            match filter.metric_type.as_str() {
                CPU_UTILIZATION => (CPU_UTILIZATION, vec![BTreeMap::new()]),
                MEMORY_PERCENT_USED => (
                    MEMORY_PERCENT_USED,
                    ["used", "free"]
                        .iter()
                        .map(|s| BTreeMap::from([("state", (*s).to_owned())]))
                        .collect(),
                ),
                other => {
                    return errors::rpc(
                        404,
                        &format!("Cannot find metric(s) that match type = \"{other}\"."),
                    );
                }
            };
        // A token is good for the same project and filter only.
        let list = format!("projects/{project}/timeSeries?filter={filter_text}");
        let cursor = match paging::page_size_cursor(&list, query, MAX_PAGE_SIZE, self.page_size) {
            Ok(cursor) => cursor,
            Err(reply) => return reply,
        };
        self.queries.push(filter_text.to_owned());
        let mut series = Vec::new();
        for (path, figures) in &self.figures {
            let Some(instance) = compute.resources.get(path) else {
                continue;
            };
            let segments: Vec<&str> = path.split('/').collect();
            let ["projects", p, "zones", zone, "instances", name] = segments.as_slice() else {
                continue;
            };
            if *p != project {
                continue;
            }
            let value = match metric_type {
                CPU_UTILIZATION => figures.cpu,
                _ => figures.memory_percent,
            };
            let Some(value) = value else { continue };
            let resource_labels = BTreeMap::from([
                ("project_id", (*p).to_owned()),
                (
                    "instance_id",
                    instance["id"].as_str().unwrap_or_default().to_owned(),
                ),
                ("zone", (*zone).to_owned()),
            ]);
            if !filter.matches("resource.type", "gce_instance")
                || !filter.matches_labels("resource", &resource_labels)
            {
                continue;
            }
            for labels in &series_labels {
                let mut metric_labels = labels.clone();
                if metric_type == CPU_UTILIZATION {
                    metric_labels.insert("instance_name", (*name).to_owned());
                }
                if !filter.matches_labels("metric", &metric_labels) {
                    continue;
                }
                let point_value = match metric_labels.get("state").map(String::as_str) {
                    Some("free") => 100.0 - value,
                    _ => value,
                };
                let interval = match period_seconds {
                    Some(_) => json!({ "startTime": start, "endTime": end }),
                    None => json!({ "startTime": end, "endTime": end }),
                };
                let key = format!("{path} {metric_labels:?}");
                series.push((key, json!({
                    "metric": { "type": metric_type, "labels": metric_labels },
                    "resource": { "type": "gce_instance", "labels": resource_labels },
                    "metricKind": "GAUGE",
                    "valueType": "DOUBLE",
                    "points": [{ "interval": interval, "value": { "doubleValue": point_value } }],
                })));
            }
        }
        (200, cursor.page(series).into_reply(json!({}), "timeSeries"))
    }
}

/// Whether `text` looks like an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, fractions and
/// offsets allowed).
fn timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
        && text[..4].bytes().all(|b| b.is_ascii_digit())
}

/// A parsed filter: the metric type and the allowed values of every other selector.
#[derive(Debug, Default)]
struct Filter {
    metric_type: String,
    /// Selector (`resource.labels.zone`) → the values it may take.
    clauses: BTreeMap<String, Vec<String>>,
}

impl Filter {
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("a filter naming exactly one metric type is required".to_owned());
        }
        let mut filter = Self::default();
        let mut metric_types = Vec::new();
        for clause in split_and(text) {
            let (selector, value) = clause
                .split_once('=')
                .ok_or_else(|| format!("expected `selector = value` in {:?}", clause.trim()))?;
            let selector = selector.trim();
            let selector = selector
                .strip_prefix("metric.label.")
                .map(|k| format!("metric.labels.{k}"))
                .or_else(|| {
                    selector
                        .strip_prefix("resource.label.")
                        .map(|k| format!("resource.labels.{k}"))
                })
                .unwrap_or_else(|| selector.to_owned());
            let known = selector == "metric.type"
                || selector == "resource.type"
                || selector
                    .strip_prefix("metric.labels.")
                    .or_else(|| selector.strip_prefix("resource.labels."))
                    .is_some_and(|k| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
            if !known {
                return Err(format!("unsupported selector {selector:?}"));
            }
            let values = values(value.trim())?;
            if selector == "metric.type" {
                metric_types.extend(values);
                continue;
            }
            if filter.clauses.insert(selector.clone(), values).is_some() {
                return Err(format!("{selector} is restricted twice"));
            }
        }
        match metric_types.as_slice() {
            [one] => filter.metric_type = one.clone(),
            _ => return Err("a filter must name exactly one metric type".to_owned()),
        }
        Ok(filter)
    }

    fn matches(&self, selector: &str, value: &str) -> bool {
        self.clauses
            .get(selector)
            .is_none_or(|allowed| allowed.iter().any(|a| a == value))
    }

    /// Whether every `<kind>.labels.<key>` clause admits `labels` (a label the series lacks
    /// matches nothing).
    fn matches_labels(&self, kind: &str, labels: &BTreeMap<&str, String>) -> bool {
        let prefix = format!("{kind}.labels.");
        self.clauses.iter().all(|(selector, allowed)| {
            let Some(key) = selector.strip_prefix(&prefix) else {
                return true;
            };
            labels
                .get(key)
                .is_some_and(|v| allowed.iter().any(|a| a == v))
        })
    }
}

/// The clauses of `text`, split at ` AND ` outside quotes.
fn split_and(text: &str) -> Vec<String> {
    let mut clauses = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && c.is_whitespace() {
            let after = rest.trim_start();
            if let Some(tail) = after.strip_prefix("AND")
                && tail.starts_with(char::is_whitespace)
            {
                clauses.push(std::mem::take(&mut current));
                rest = tail;
                continue;
            }
        }
        current.push(c);
        rest = &rest[c.len_utf8()..];
    }
    clauses.push(current);
    clauses
}

/// `"x"` or `one_of("a", "b")` → the values.
fn values(text: &str) -> Result<Vec<String>, String> {
    if let Some(inner) = text
        .strip_prefix("one_of(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let values: Result<Vec<String>, String> =
            inner.split(',').map(|v| quoted(v.trim())).collect();
        let values = values?;
        return if values.is_empty() {
            Err("one_of needs at least one value".to_owned())
        } else {
            Ok(values)
        };
    }
    quoted(text).map(|v| vec![v])
}

fn quoted(text: &str) -> Result<String, String> {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|v| !v.contains('"'))
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a quoted string, not {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compute_with_instance() -> (Compute, String) {
        let mut compute = Compute::default();
        let path = "projects/p/zones/us-central1-a/instances/vm-1".to_owned();
        compute.seed(&path, json!({ "name": "vm-1" }));
        (compute, path)
    }

    fn query(filter: &str) -> HashMap<String, String> {
        HashMap::from([
            ("filter".to_owned(), filter.to_owned()),
            (
                "interval.startTime".to_owned(),
                "2026-01-01T00:00:00Z".to_owned(),
            ),
            (
                "interval.endTime".to_owned(),
                "2026-01-01T00:05:00Z".to_owned(),
            ),
            ("aggregation.alignmentPeriod".to_owned(), "60s".to_owned()),
            (
                "aggregation.perSeriesAligner".to_owned(),
                "ALIGN_MEAN".to_owned(),
            ),
        ])
    }

    #[test]
    fn cpu_of_the_instances_named() {
        let (compute, path) = compute_with_instance();
        let id = compute.resource(&path).expect("seeded")["id"].clone();
        let mut m = Monitoring::default();
        m.set_usage(
            &path,
            Some(Figures {
                cpu: Some(0.75),
                memory_percent: None,
            }),
        );
        let filter = format!(
            "metric.type = \"{CPU_UTILIZATION}\" AND resource.type = \"gce_instance\" AND resource.labels.instance_id = one_of({id}, \"999\")"
        );
        let (status, body) = m.handle("GET", "projects/p/timeSeries", &query(&filter), &compute);
        assert_eq!(status, 200, "{body}");
        let series = &body["timeSeries"][0];
        assert_eq!(series["points"][0]["value"]["doubleValue"], 0.75);
        assert_eq!(series["resource"]["labels"]["instance_id"], id);
        assert_eq!(series["metric"]["labels"]["instance_name"], "vm-1");
        assert_eq!(
            series["points"][0]["interval"]["endTime"],
            "2026-01-01T00:05:00Z"
        );

        // No agent: no memory series.
        let filter =
            format!("metric.type = \"{MEMORY_PERCENT_USED}\" AND metric.labels.state = \"used\"");
        let (status, body) = m.handle("GET", "projects/p/timeSeries", &query(&filter), &compute);
        assert_eq!((status, body), (200, json!({})));
    }

    #[test]
    fn memory_is_the_used_state() {
        let (compute, path) = compute_with_instance();
        let mut m = Monitoring::default();
        m.set_usage(
            &path,
            Some(Figures {
                cpu: None,
                memory_percent: Some(40.0),
            }),
        );
        let filter =
            format!("metric.type = \"{MEMORY_PERCENT_USED}\" AND metric.labels.state = \"used\"");
        let (_, body) = m.handle("GET", "projects/p/timeSeries", &query(&filter), &compute);
        let series = body["timeSeries"].as_array().expect("series");
        assert_eq!(series.len(), 1);
        assert_eq!(series[0]["points"][0]["value"]["doubleValue"], 40.0);
    }

    /// `instance_name`s of a page's series, and its token.
    fn page(reply: &Reply) -> (Vec<String>, Option<String>) {
        assert_eq!(reply.0, 200, "{}", reply.1);
        let names = reply.1["timeSeries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                s["metric"]["labels"]["instance_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        (names, reply.1["nextPageToken"].as_str().map(str::to_owned))
    }

    #[test]
    fn series_are_paged_in_instance_order_with_a_token_only_while_series_remain() {
        let mut compute = Compute::default();
        let mut m = Monitoring::default();
        for i in (0..5).rev() {
            let path = format!("projects/p/zones/us-central1-a/instances/vm-{i}");
            compute.seed(&path, json!({ "name": format!("vm-{i}") }));
            m.set_usage(
                &path,
                Some(Figures {
                    cpu: Some(0.5),
                    memory_percent: None,
                }),
            );
        }
        let cpu = format!("metric.type = \"{CPU_UTILIZATION}\"");
        let ask = |m: &mut Monitoring, extra: &[(&str, &str)]| {
            let mut q = query(&cpu);
            q.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            m.handle("GET", "projects/p/timeSeries", &q, &compute)
        };
        let (first, t1) = page(&ask(&mut m, &[("pageSize", "2")]));
        assert_eq!(first, ["vm-0", "vm-1"]);
        let t1 = t1.expect("more remain");
        let (second, t2) = page(&ask(&mut m, &[("pageSize", "2"), ("pageToken", &t1)]));
        assert_eq!(second, ["vm-2", "vm-3"]);
        let (last, none) = page(&ask(
            &mut m,
            &[("pageSize", "2"), ("pageToken", &t2.expect("more"))],
        ));
        assert_eq!((last, none), (vec!["vm-4".to_owned()], None));
        for size in ["0", "5", "100000", "100001"] {
            let (all, token) = page(&ask(&mut m, &[("pageSize", size)]));
            assert_eq!((all.len(), token), (5, None), "pageSize={size}");
        }
        assert_eq!(m.queries.len(), 7, "one query per page answered");

        // The hook caps pages whatever pageSize asks.
        m.set_page_size(Some(1));
        let (one, t) = page(&ask(&mut m, &[("pageSize", "100000")]));
        assert_eq!(one, ["vm-0"]);
        let (next, _) = page(&ask(&mut m, &[("pageToken", &t.expect("more remain"))]));
        assert_eq!(next, ["vm-1"]);
        m.set_page_size(None);
        assert_eq!(page(&ask(&mut m, &[])).0.len(), 5);

        // Bad sizes and tokens, and another filter's token, are 400 and not answered.
        let answered = m.queries.len();
        let mut garbled = t1.clone();
        garbled.insert(1, 'x');
        for bad in [
            [("pageSize", "-1"), ("pageToken", "")],
            [("pageSize", "two"), ("pageToken", "")],
            [("pageSize", "2"), ("pageToken", "nope")],
            [("pageSize", "2"), ("pageToken", garbled.as_str())],
        ] {
            let (status, body) = ask(&mut m, &bad);
            assert_eq!(status, 400, "{bad:?}: {body}");
            assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        }
        let mut other = query(&format!(
            "{cpu} AND resource.labels.zone = \"us-central1-a\""
        ));
        other.insert("pageToken".to_owned(), t1);
        assert_eq!(
            m.handle("GET", "projects/p/timeSeries", &other, &compute).0,
            400
        );
        assert_eq!(m.queries.len(), answered);
    }

    #[test]
    fn documented_errors() {
        let (compute, _) = compute_with_instance();
        let mut m = Monitoring::default();
        let cpu = format!("metric.type = \"{CPU_UTILIZATION}\"");
        for bad in [
            "",
            "resource.type = \"gce_instance\"",
            "metric.type = cpu",
            "metric.type = \"a\" OR x",
        ] {
            let (status, body) = m.handle("GET", "projects/p/timeSeries", &query(bad), &compute);
            assert_eq!(status, 400, "{bad}: {body}");
            assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        }
        let mut no_end = query(&cpu);
        no_end.remove("interval.endTime");
        assert_eq!(
            m.handle("GET", "projects/p/timeSeries", &no_end, &compute)
                .0,
            400
        );
        assert_eq!(
            m.handle("GET", "projects/nope/timeSeries", &query(&cpu), &compute)
                .0,
            404
        );
        let unknown = "metric.type = \"custom.googleapis.com/x\"";
        assert_eq!(
            m.handle("GET", "projects/p/timeSeries", &query(unknown), &compute)
                .0,
            404
        );
        m.deny("p", true);
        let (status, body) = m.handle("GET", "projects/p/timeSeries", &query(&cpu), &compute);
        assert_eq!(status, 403);
        assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
        m.deny("p", false);
        assert_eq!(
            m.handle("GET", "projects/p/timeSeries", &query(&cpu), &compute)
                .0,
            200
        );
    }
}
