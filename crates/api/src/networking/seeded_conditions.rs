//! The `status` defaults of the networking CRDs: conditions seeded `Unknown`/`Pending`.
//!
//! Upstream CRDs declare a `default:` for `status`, so a freshly created object already reads
//! "Ready: Unknown, Pending, Waiting for controller" before any controller has seen it, and
//! `kubectl get` shows that rather than an empty column. The seeds are reproduced exactly,
//! down to the 1970 transition time, because tools compare against them.
//!
//! Each function is a schemars transform for a status struct:
//! `#[schemars(transform = seeded_conditions::ready)]`.

use schemars::Schema;
use serde_json::{Value, json};

use super::well_known::{condition_types, reasons};

/// The transition time of a seeded condition.
pub const SEED_TRANSITION_TIME: &str = "1970-01-01T00:00:00Z";

/// Seeds `Ready`.
pub(crate) fn ready(schema: &mut Schema) {
    seed(schema, &[condition_types::READY]);
}

/// Seeds `Allocated`, `Programmed` and `Ready`, in that order.
pub(crate) fn allocated_programmed_ready(schema: &mut Schema) {
    seed(
        schema,
        &[
            condition_types::ALLOCATED,
            condition_types::PROGRAMMED,
            condition_types::READY,
        ],
    );
}

/// The value of the seeded `status`, for conditions of the given types.
pub fn seeded_status(types: &[&str]) -> Value {
    let conditions: Vec<Value> = types
        .iter()
        .map(|type_| {
            json!({
                "lastTransitionTime": SEED_TRANSITION_TIME,
                "message": reasons::PENDING_MESSAGE,
                "reason": reasons::PENDING,
                "status": "Unknown",
                "type": type_,
            })
        })
        .collect();
    json!({ "conditions": conditions })
}

fn seed(schema: &mut Schema, types: &[&str]) {
    schema.insert("default".into(), seeded_status(types));
}
