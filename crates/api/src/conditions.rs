//! Condition helpers shared by every controller and provider.
//!
//! Conditions follow the Kubernetes convention (`metav1.Condition`): one entry per `type`,
//! `observedGeneration` records the generation the writer acted on, and
//! `lastTransitionTime` moves only when `status` changes — a new reason or message alone
//! keeps the old time, so "since when has this been False?" stays answerable.
//!
//! ```
//! use datum_api::conditions::{self, ConditionStatus};
//!
//! let mut list = Vec::new();
//! let changed = conditions::set(&mut list, conditions::new("Ready", ConditionStatus::False, "Pending", "waiting", 1));
//! assert!(changed);
//! assert!(!conditions::is_true(&list, "Ready"));
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The three statuses a condition can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// The wire form: `"True"`, `"False"` or `"Unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// `True` when `ok`, else `False`.
    pub fn from_bool(ok: bool) -> Self {
        if ok { Self::True } else { Self::False }
    }
}

/// A condition stamped with the current time.
pub fn new(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    observed_generation: i64,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.as_str().to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: Some(observed_generation),
        last_transition_time: Time(Timestamp::now()),
    }
}

/// The condition of `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    has_status(conditions, type_, ConditionStatus::True)
}

/// Whether the condition of `type_` is present with the given status.
pub fn has_status(conditions: &[Condition], type_: &str, status: ConditionStatus) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == status.as_str())
}

/// Inserts or updates `condition` by type. Keeps the existing `lastTransitionTime` unless
/// the status changed. Returns whether anything (status, reason, message or generation)
/// changed, so callers can skip a status write when nothing did.
pub fn set(conditions: &mut Vec<Condition>, mut condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        None => {
            conditions.push(condition);
            true
        }
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            let changed = existing.status != condition.status
                || existing.reason != condition.reason
                || existing.message != condition.message
                || existing.observed_generation != condition.observed_generation;
            *existing = condition;
            changed
        }
    }
}

/// Removes the condition of `type_`; returns whether one was there.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut list = vec![Condition {
            last_transition_time: at(100),
            ..new("Ready", ConditionStatus::False, "Pending", "waiting", 1)
        }];

        let changed = set(
            &mut list,
            new(
                "Ready",
                ConditionStatus::False,
                "Provisioning",
                "creating",
                2,
            ),
        );
        assert!(changed, "reason, message and generation changed");
        assert_eq!(list[0].last_transition_time, at(100));
        assert_eq!(list[0].reason, "Provisioning");
        assert_eq!(list[0].observed_generation, Some(2));

        let changed = set(
            &mut list,
            new("Ready", ConditionStatus::True, "Running", "up", 2),
        );
        assert!(changed);
        assert_ne!(list[0].last_transition_time, at(100));
        assert!(is_true(&list, "Ready"));
    }

    #[test]
    fn identical_condition_reports_no_change() {
        let mut list = Vec::new();
        assert!(set(
            &mut list,
            new("Programmed", ConditionStatus::True, "Done", "ok", 3)
        ));
        let stamped = list[0].last_transition_time.clone();
        assert!(!set(
            &mut list,
            new("Programmed", ConditionStatus::True, "Done", "ok", 3)
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, stamped);
    }

    #[test]
    fn conditions_are_kept_per_type() {
        let mut list = Vec::new();
        set(
            &mut list,
            new("Programmed", ConditionStatus::True, "Done", "ok", 1),
        );
        set(
            &mut list,
            new("Running", ConditionStatus::Unknown, "Pending", "", 1),
        );
        assert_eq!(list.len(), 2);
        assert!(has_status(&list, "Running", ConditionStatus::Unknown));
        assert!(!is_true(&list, "Missing"));
        assert!(remove(&mut list, "Running"));
        assert!(!remove(&mut list, "Running"));
        assert_eq!(list.len(), 1);
    }
}
