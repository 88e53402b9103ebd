//! What to do next with a deployment's Instances: a pure function of what exists.
//!
//! Slots are ordinals `0..replicas`; an Instance named `<deployment>-<ordinal>` fills its
//! slot. Anything else carrying the deployment's label — an ordinal at or above `replicas`,
//! or a name without a canonical numeric suffix (quirk Q11) — is surplus and deleted.
//!
//! `OrderedReady` (StatefulSet-like) does one step at a time, in this order:
//! 1. the lowest slot that is empty is created; a slot whose Instance is not available
//!    (not Ready, being deleted, or not yet running its template) blocks everything after;
//! 2. surplus Instances are deleted, highest ordinal first, each waiting for the previous
//!    to be gone;
//! 3. outdated Instances (another template hash) are updated, highest ordinal first; the
//!    updated Instance becomes unavailable until its provider runs the new template, which
//!    blocks the next update, so at most one is unavailable at a time.
//!
//! `Parallel` does every create, delete and update at once.
//!
//! ```
//! use datum_api::compute::InstanceManagementPolicy;
//! use datum_control::instance_control::plan::{self, Step};
//!
//! let steps = plan::plan("web-us-dfw", 2, InstanceManagementPolicy::OrderedReady, "h1", &[]);
//! assert_eq!(steps, [Step::Create(0)]);
//! ```

use datum_api::compute::InstanceManagementPolicy;

/// What the planner needs to know about one existing Instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub name: String,
    pub deleting: bool,
    /// `Ready=True`, and the provider runs the template in spec (when it reports one).
    pub available: bool,
    /// `spec.controller.templateHash`.
    pub template_hash: Option<String>,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the Instance of this ordinal.
    Create(u32),
    /// Bring this Instance to the current template.
    Update(String),
    /// Delete this surplus Instance.
    Delete(String),
}

/// The ordinal of `name` in `deployment`: `Some` only for `<deployment>-<n>` with `n`
/// written canonically (no sign, no leading zeros).
pub fn ordinal(deployment: &str, name: &str) -> Option<u32> {
    let suffix = name.strip_prefix(deployment)?.strip_prefix('-')?;
    let value: u32 = suffix.parse().ok()?;
    (value.to_string() == suffix).then_some(value)
}

/// The next steps for a deployment of `replicas` Instances at template `hash`.
pub fn plan(
    deployment: &str,
    replicas: u32,
    policy: InstanceManagementPolicy,
    hash: &str,
    instances: &[Observed],
) -> Vec<Step> {
    let slot = |i: u32| {
        instances
            .iter()
            .find(|o| ordinal(deployment, &o.name) == Some(i))
    };
    let mut surplus: Vec<(Option<u32>, &Observed)> = instances
        .iter()
        .map(|o| (ordinal(deployment, &o.name), o))
        .filter(|(ordinal, _)| ordinal.is_none_or(|n| n >= replicas))
        .collect();
    // Highest ordinal first; unparseable names (None) go before everything.
    surplus.sort_by(|a, b| {
        b.0.map(i64::from)
            .unwrap_or(i64::MAX)
            .cmp(&a.0.map(i64::from).unwrap_or(i64::MAX))
    });
    let mut outdated: Vec<(u32, &Observed)> = (0..replicas)
        .rev()
        .filter_map(|i| slot(i).map(|o| (i, o)))
        .filter(|(_, o)| !o.deleting && o.template_hash.as_deref() != Some(hash))
        .collect();
    outdated.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));

    match policy {
        InstanceManagementPolicy::Parallel => {
            let creates = (0..replicas)
                .filter(|i| slot(*i).is_none())
                .map(Step::Create);
            let deletes = surplus
                .iter()
                .filter(|(_, o)| !o.deleting)
                .map(|(_, o)| Step::Delete(o.name.clone()));
            let updates = outdated.iter().map(|(_, o)| Step::Update(o.name.clone()));
            creates.chain(deletes).chain(updates).collect()
        }
        InstanceManagementPolicy::OrderedReady => {
            for i in 0..replicas {
                match slot(i) {
                    None => return vec![Step::Create(i)],
                    Some(o) if o.deleting || !o.available => return Vec::new(),
                    Some(_) => {}
                }
            }
            if let Some((_, top)) = surplus.first() {
                return if top.deleting {
                    Vec::new()
                } else {
                    vec![Step::Delete(top.name.clone())]
                };
            }
            outdated
                .first()
                .map(|(_, o)| vec![Step::Update(o.name.clone())])
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceManagementPolicy::{OrderedReady, Parallel};

    fn observed(name: &str, available: bool, hash: &str) -> Observed {
        Observed {
            name: name.into(),
            deleting: false,
            available,
            template_hash: Some(hash.into()),
        }
    }

    #[test]
    fn ordinals_are_canonical_suffixes() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-012"), None);
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "web--1"), None);
        assert_eq!(ordinal("web", "other-1"), None);
        assert_eq!(ordinal("web", "web"), None);
    }

    #[test]
    fn ordered_ready_creates_in_order_and_waits() {
        assert_eq!(
            plan("d", 3, OrderedReady, "h", &[observed("d-0", true, "h")]),
            [Step::Create(1)]
        );
        assert!(plan("d", 3, OrderedReady, "h", &[observed("d-0", false, "h")]).is_empty());
    }

    #[test]
    fn ordered_ready_rolls_from_the_top_and_scales_down_from_the_top() {
        let all_old = [
            observed("d-0", true, "old"),
            observed("d-1", true, "old"),
            observed("d-2", true, "old"),
        ];
        assert_eq!(
            plan("d", 3, OrderedReady, "new", &all_old),
            [Step::Update("d-2".into())]
        );
        let top_new_unready = [
            observed("d-0", true, "old"),
            observed("d-1", true, "old"),
            observed("d-2", false, "new"),
        ];
        assert!(plan("d", 3, OrderedReady, "new", &top_new_unready).is_empty());
        let top_new_ready = [
            observed("d-0", true, "old"),
            observed("d-1", true, "old"),
            observed("d-2", true, "new"),
        ];
        assert_eq!(
            plan("d", 3, OrderedReady, "new", &top_new_ready),
            [Step::Update("d-1".into())]
        );
        assert_eq!(
            plan("d", 1, OrderedReady, "old", &all_old),
            [Step::Delete("d-2".into())]
        );
    }

    #[test]
    fn parallel_does_everything_at_once_and_odd_names_are_surplus() {
        let existing = [
            observed("d-0", false, "old"),
            observed("d-x", true, "h"),
            observed("d-5", true, "h"),
        ];
        let steps = plan("d", 3, Parallel, "h", &existing);
        assert_eq!(
            steps,
            [
                Step::Create(1),
                Step::Create(2),
                Step::Delete("d-x".into()),
                Step::Delete("d-5".into()),
                Step::Update("d-0".into())
            ]
        );
    }
}
