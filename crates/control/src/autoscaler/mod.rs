//! The autoscaler: moves a WorkloadDeployment's `spec.replicas` between `minReplicas` and
//! `maxReplicas` from the utilisation its Instances report in `status.usage`.
//!
//! Every [`AutoscalerSettings::interval`] it looks at each deployment whose scale settings
//! have `maxReplicas` and `metrics` ([`evaluate`]): the Ready Instances are the known ones,
//! a report counts when its `observedAt` is within [`AutoscalerSettings::freshness`], and
//! [`algorithm`] turns the figures into a target. A new target is written through the
//! `scale` subresource (so `kubectl scale` and this controller speak the same way), and
//! every decision that differs from the last one for that deployment is a Kubernetes Event
//! carrying the figures (`ScaledUp`, `ScaledDown`, `ScaleDownStabilised`,
//! `MetricsUnavailable`, `UnsupportedMetric`).
//!
//! State (the stabilisation window, the last decision) lives in memory; after a restart
//! the window is seeded with the current target, as the design asks.
//!
//! Only `averageUtilization` targets are acted on; `value` and `averageValue` are reported
//! as unsupported and the target holds.

pub mod algorithm;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use datum_api::compute::{Instance, MetricSpec, ResourceMetricName, WorkloadDeployment};
use datum_api::conditions;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use crate::context::Context;
use crate::placement::desired::is_autoscaled;
use algorithm::{Inputs, MetricFigures, Recommendation, Window};

/// The autoscaler's knobs.
#[derive(Clone, Debug)]
pub struct AutoscalerSettings {
    /// How often each autoscaled deployment is evaluated (design: 15 s).
    pub interval: Duration,
    /// Scale-down goes only to the highest recommendation within this window (design: 30–60 s).
    pub scale_down_stabilisation: Duration,
    /// The dead zone around a ratio of 1.0 (design: ±10 %).
    pub tolerance: f64,
    /// How old a usage report may be and still count.
    pub freshness: Duration,
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            scale_down_stabilisation: Duration::from_secs(45),
            tolerance: 0.1,
            freshness: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AutoscalerError {
    #[error("failed to write the scale of deployment {0}")]
    Scale(String, #[source] kube::Error),
}

#[derive(Default)]
struct DeploymentState {
    window: Option<Window>,
    last_decision: Option<String>,
}

/// Runs the autoscaler until `shutdown` completes.
pub async fn run(context: Context, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let mut states: HashMap<String, DeploymentState> = HashMap::new();
    let mut ticker = tokio::time::interval(context.settings().autoscaler.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {
                if let Err(error) = evaluate_all(&context, &mut states).await {
                    warn!(%error, source = ?std::error::Error::source(&error), "autoscaling pass failed");
                }
            }
        }
    }
}

async fn evaluate_all(
    context: &Context,
    states: &mut HashMap<String, DeploymentState>,
) -> Result<(), AutoscalerError> {
    let deployments: Vec<WorkloadDeployment> = context
        .caches()
        .deployments
        .store()
        .state()
        .iter()
        .map(|d| d.as_ref().clone())
        .collect();
    let autoscaled: Vec<&WorkloadDeployment> = deployments
        .iter()
        .filter(|d| {
            d.metadata.deletion_timestamp.is_none() && is_autoscaled(&d.spec.scale_settings)
        })
        .collect();
    states.retain(|uid, _| {
        autoscaled
            .iter()
            .any(|d| d.uid().as_deref() == Some(uid.as_str()))
    });
    for deployment in autoscaled {
        let state = states
            .entry(deployment.uid().unwrap_or_default())
            .or_default();
        if let Err(error) = evaluate(context, deployment, state).await {
            warn!(deployment = %deployment.name_any(), %error, "autoscaling a deployment failed");
        }
    }
    Ok(())
}

/// One decision for one deployment.
async fn evaluate(
    context: &Context,
    deployment: &WorkloadDeployment,
    state: &mut DeploymentState,
) -> Result<(), AutoscalerError> {
    let settings = &context.settings().autoscaler;
    let namespace = deployment.namespace().unwrap_or_default();
    let scale = &deployment.spec.scale_settings;
    let min = scale.min_replicas;
    let max = scale.max_replicas.unwrap_or(min).max(min);
    let current = deployment.spec.replicas.unwrap_or(min);
    let instances = cached_instances(context, deployment, &namespace);
    let known: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter(|i| {
            i.status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .is_some_and(|c| conditions::is_true(c, "Ready"))
        })
        .collect();
    let metrics = match figures(
        scale.metrics.as_deref().unwrap_or_default(),
        &known,
        settings.freshness,
    ) {
        Ok(metrics) => metrics,
        Err(unsupported) => {
            return decide(
                context,
                deployment,
                state,
                ("UnsupportedMetric", format!("Hold{current}")),
                unsupported,
                EventType::Warning,
            )
            .await;
        }
    };
    let inputs = Inputs {
        min,
        max,
        current,
        known: known.len(),
        tolerance: settings.tolerance,
        metrics,
    };
    let now = Instant::now();
    let window = state
        .window
        .get_or_insert_with(|| Window::seeded(now, current));
    match algorithm::recommend(&inputs) {
        Recommendation::Hold { reporting, known } => {
            let note = format!(
                "holding at {current} replicas: only {reporting} of {known} ready instances reported fresh usage (at least half must)"
            );
            decide(
                context,
                deployment,
                state,
                ("MetricsUnavailable", format!("Hold{current}")),
                note,
                EventType::Warning,
            )
            .await
        }
        Recommendation::Desired {
            desired,
            explanation,
        } => {
            let target = window.stabilise(now, settings.scale_down_stabilisation, current, desired);
            if target == current && desired < current {
                let note = format!(
                    "keeping {current} replicas (recommended {desired}, stabilisation window {}s): {explanation}",
                    settings.scale_down_stabilisation.as_secs()
                );
                return decide(
                    context,
                    deployment,
                    state,
                    ("ScaleDownStabilised", format!("Keep{current}Over{desired}")),
                    note,
                    EventType::Normal,
                )
                .await;
            }
            if target == current {
                state.last_decision = None;
                return Ok(());
            }
            write_scale(context, deployment, &namespace, target).await?;
            let reason = if target > current {
                "ScaledUp"
            } else {
                "ScaledDown"
            };
            let note = format!(
                "scaled from {current} to {target} replicas (min {min}, max {max}): {explanation}"
            );
            info!(deployment = %deployment.name_any(), from = current, to = target, %explanation, "autoscaled");
            state.last_decision = None;
            decide(
                context,
                deployment,
                state,
                (reason, format!("Scale{current}To{target}")),
                note,
                EventType::Normal,
            )
            .await
        }
    }
}

fn figures(
    metrics: &[MetricSpec],
    known: &[&Instance],
    freshness: Duration,
) -> Result<Vec<MetricFigures>, String> {
    let now = Timestamp::now();
    let fresh = |i: &&&Instance| {
        i.status
            .as_ref()
            .and_then(|s| s.usage.as_ref())
            .is_some_and(|u| {
                let age = now.duration_since(u.observed_at.0);
                age.as_secs() >= -1 && (age.as_secs() as u64) <= freshness.as_secs()
            })
    };
    let mut result = Vec::new();
    for metric in metrics {
        let Some(resource) = &metric.resource else {
            continue;
        };
        let Some(target) = resource.target.average_utilization else {
            return Err(format!(
                "metric {:?} has no averageUtilization target; only averageUtilization is supported",
                resource.name
            ));
        };
        let reports = known
            .iter()
            .filter(fresh)
            .filter_map(|i| {
                let usage = i.status.as_ref()?.usage.as_ref()?;
                match resource.name {
                    ResourceMetricName::Cpu => usage.cpu_utilization,
                    ResourceMetricName::Memory => usage.memory_utilization,
                }
            })
            .collect();
        let name = match resource.name {
            ResourceMetricName::Cpu => "cpu",
            ResourceMetricName::Memory => "memory",
        };
        result.push(MetricFigures {
            name: name.to_owned(),
            target,
            reports,
        });
    }
    Ok(result)
}

/// The deployment's Instances, from the shared cache.
fn cached_instances(
    context: &Context,
    deployment: &WorkloadDeployment,
    namespace: &str,
) -> Vec<Instance> {
    context
        .caches()
        .instances
        .indexed(&deployment.uid().unwrap_or_default())
        .into_iter()
        .filter(|i| i.namespace().as_deref() == Some(namespace))
        .map(|i| i.as_ref().clone())
        .collect()
}

async fn write_scale(
    context: &Context,
    deployment: &WorkloadDeployment,
    namespace: &str,
    replicas: i32,
) -> Result<(), AutoscalerError> {
    let api: Api<WorkloadDeployment> = context.api_in(namespace);
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    api.patch_scale(
        &deployment.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| AutoscalerError::Scale(deployment.name_any(), e))?;
    Ok(())
}

/// Records a decision as an Event, unless it repeats the last one for this deployment.
/// The action names the figures (`Scale2To4`, `Keep4Over1`, `Hold3`): the event recorder
/// folds events with the same reason and action into one series, and distinct decisions
/// must stay distinct events.
async fn decide(
    context: &Context,
    deployment: &WorkloadDeployment,
    state: &mut DeploymentState,
    (reason, action): (&str, String),
    note: String,
    type_: EventType,
) -> Result<(), AutoscalerError> {
    let key = format!("{reason}: {note}");
    if state.last_decision.as_deref() == Some(key.as_str()) {
        return Ok(());
    }
    state.last_decision = Some(key);
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action,
        secondary: None,
    };
    if let Err(error) = context
        .recorder()
        .publish(&event, &deployment.object_ref(&()))
        .await
    {
        warn!(deployment = %deployment.name_any(), %error, "failed to record autoscaling event");
    }
    Ok(())
}
