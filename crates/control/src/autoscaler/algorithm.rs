//! The autoscaling arithmetic, free of I/O so every rule is unit-tested: the ratio with its
//! dead zone, the bounds, the half-must-report rule, and the scale-down stabilisation window.
//!
//! Per metric (compute-api-latest §12): `ratio = average utilisation / target`; within
//! `1 ± tolerance` nothing changes; otherwise `desired = ceil(current × ratio)`, clamped to
//! `minReplicas..=maxReplicas`. The largest desired value over the metrics wins. Scaling up
//! is immediate; scaling down goes only to the highest recommendation of the stabilisation
//! window. With fewer than half of the known Instances reporting, the target holds.
//!
//! ```
//! use datum_control::autoscaler::algorithm::{recommend, Inputs, MetricFigures};
//!
//! let inputs = Inputs { min: 1, max: 10, current: 2, known: 2, tolerance: 0.1,
//!     metrics: vec![MetricFigures { name: "cpu".into(), target: 50, reports: vec![100, 100] }] };
//! assert_eq!(recommend(&inputs).desired(), Some(4));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One metric's target and the fresh per-instance reports of it (utilisation percent).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricFigures {
    pub name: String,
    pub target: i32,
    pub reports: Vec<i32>,
}

/// Everything one decision depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    pub min: i32,
    pub max: i32,
    /// The current target (`spec.replicas`, or `minReplicas`).
    pub current: i32,
    /// Instances counted as known (Ready, not being deleted).
    pub known: usize,
    pub tolerance: f64,
    pub metrics: Vec<MetricFigures>,
}

/// What the figures say.
#[derive(Clone, Debug, PartialEq)]
pub enum Recommendation {
    /// Too few reports to decide; keep the current target.
    Hold { reporting: usize, known: usize },
    /// The figures ask for `desired` (possibly equal to the current target).
    Desired { desired: i32, explanation: String },
}

impl Recommendation {
    pub fn desired(&self) -> Option<i32> {
        match self {
            Self::Desired { desired, .. } => Some(*desired),
            Self::Hold { .. } => None,
        }
    }
}

/// The recommendation for `inputs`.
pub fn recommend(inputs: &Inputs) -> Recommendation {
    let reporting = inputs
        .metrics
        .iter()
        .map(|m| m.reports.len())
        .min()
        .unwrap_or(0);
    if inputs.known == 0 || reporting * 2 < inputs.known {
        return Recommendation::Hold {
            reporting,
            known: inputs.known,
        };
    }
    let max = inputs.max.max(inputs.min);
    let current = inputs.current.clamp(inputs.min, max);
    let mut desired = inputs.min;
    let mut parts = Vec::new();
    for metric in &inputs.metrics {
        let average = metric.reports.iter().map(|v| f64::from(*v)).sum::<f64>()
            / metric.reports.len().max(1) as f64;
        let ratio = average / f64::from(metric.target.max(1));
        let wanted = if (ratio - 1.0).abs() <= inputs.tolerance {
            current
        } else {
            let raw = (f64::from(current) * ratio).ceil();
            (raw.min(f64::from(i32::MAX)) as i32).clamp(inputs.min, max)
        };
        parts.push(format!(
            "{} average {:.1}% of target {}% (ratio {:.2}, {} reports) wants {}",
            metric.name,
            average,
            metric.target,
            ratio,
            metric.reports.len(),
            wanted
        ));
        desired = desired.max(wanted);
    }
    Recommendation::Desired {
        desired: desired.clamp(inputs.min, max),
        explanation: parts.join("; "),
    }
}

/// Recent recommendations of one deployment, for scale-down stabilisation.
#[derive(Clone, Debug, Default)]
pub struct Window {
    entries: VecDeque<(Instant, i32)>,
}

impl Window {
    /// A window seeded with `current` (after a restart the current target is the history).
    pub fn seeded(now: Instant, current: i32) -> Self {
        Self {
            entries: VecDeque::from([(now, current)]),
        }
    }

    /// Records `desired` at `now` and returns the target to apply: `desired` when scaling
    /// up, else the highest recommendation within `length`.
    pub fn stabilise(&mut self, now: Instant, length: Duration, current: i32, desired: i32) -> i32 {
        self.entries.push_back((now, desired));
        while self
            .entries
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > length)
        {
            self.entries.pop_front();
        }
        if desired >= current {
            return desired;
        }
        let highest = self
            .entries
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(desired);
        highest.min(current).max(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(current: i32, known: usize, reports: Vec<i32>) -> Inputs {
        Inputs {
            min: 1,
            max: 5,
            current,
            known,
            tolerance: 0.1,
            metrics: vec![MetricFigures {
                name: "cpu".into(),
                target: 50,
                reports,
            }],
        }
    }

    #[test]
    fn ratio_bounds_and_tolerance() {
        assert_eq!(recommend(&inputs(2, 2, vec![100, 100])).desired(), Some(4));
        assert_eq!(
            recommend(&inputs(2, 2, vec![500, 500])).desired(),
            Some(5),
            "capped at max"
        );
        assert_eq!(
            recommend(&inputs(2, 2, vec![1, 1])).desired(),
            Some(1),
            "floored at min"
        );
        assert_eq!(
            recommend(&inputs(2, 2, vec![54, 54])).desired(),
            Some(2),
            "within 10%"
        );
        assert_eq!(
            recommend(&inputs(2, 2, vec![56, 56])).desired(),
            Some(3),
            "outside 10%"
        );
    }

    #[test]
    fn holds_when_fewer_than_half_report() {
        assert_eq!(
            recommend(&inputs(4, 4, vec![100])),
            Recommendation::Hold {
                reporting: 1,
                known: 4
            }
        );
        assert_eq!(recommend(&inputs(4, 4, vec![100, 100])).desired(), Some(5));
        assert!(matches!(
            recommend(&inputs(1, 0, vec![])),
            Recommendation::Hold { .. }
        ));
    }

    #[test]
    fn largest_metric_wins() {
        let mut both = inputs(2, 2, vec![25, 25]);
        both.metrics.push(MetricFigures {
            name: "memory".into(),
            target: 50,
            reports: vec![100, 100],
        });
        assert_eq!(recommend(&both).desired(), Some(4));
    }

    #[test]
    fn scale_down_waits_for_the_window_scale_up_does_not() {
        let start = Instant::now();
        let window_length = Duration::from_secs(30);
        let mut window = Window::seeded(start, 4);
        assert_eq!(
            window.stabilise(start + Duration::from_secs(1), window_length, 4, 2),
            4
        );
        assert_eq!(
            window.stabilise(start + Duration::from_secs(20), window_length, 4, 2),
            4
        );
        assert_eq!(
            window.stabilise(start + Duration::from_secs(40), window_length, 4, 2),
            2
        );
        assert_eq!(
            window.stabilise(start + Duration::from_secs(41), window_length, 2, 5),
            5
        );
    }
}
