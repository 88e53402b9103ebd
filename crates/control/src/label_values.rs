//! Object names as label values. A label value is at most 63 characters while a name may
//! have 253, so a name label is set only when the name fits; selection never relies on
//! them (the UID labels, always short, do that).
//!
//! ```
//! use std::collections::BTreeMap;
//! let mut labels = BTreeMap::new();
//! datum_control::label_values::insert_name(&mut labels, "k", "web");
//! datum_control::label_values::insert_name(&mut labels, "long", &"x".repeat(64));
//! assert_eq!(labels.len(), 1);
//! ```

use std::collections::BTreeMap;

/// The longest label value Kubernetes accepts.
pub const MAX_LENGTH: usize = 63;

/// Inserts `key=name` when `name` is a valid label value length.
pub fn insert_name(labels: &mut BTreeMap<String, String>, key: &str, name: &str) {
    if name.len() <= MAX_LENGTH {
        labels.insert(key.to_owned(), name.to_owned());
    }
}
