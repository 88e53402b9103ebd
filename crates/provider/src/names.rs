//! The finalizer and annotations the runtime puts on the objects a provider manages, all
//! under the provider's own domain `<name>.provider.datum.net`.
//!
//! ```
//! let names = datum_provider::names::Names::new("sim");
//! assert_eq!(names.finalizer, "sim.provider.datum.net/cleanup");
//! ```

/// The per-provider names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Held until the external resource is gone.
    pub finalizer: String,
    /// The external ID, recorded after a create or an adoption.
    pub external_id: String,
    /// Written before every create call; removed once the ID is recorded. Found set with no
    /// ID, it means a create was interrupted: the runtime observes by the deterministic
    /// external name and adopts what it finds, and creates again only when observe says
    /// nothing by that name exists.
    pub create_pending: String,
    /// The field manager of the runtime's writes.
    pub field_manager: String,
}

impl Names {
    /// The names of provider `provider`.
    pub fn new(provider: &str) -> Self {
        let domain = format!("{provider}.provider.datum.net");
        Self {
            finalizer: format!("{domain}/cleanup"),
            external_id: format!("{domain}/external-id"),
            create_pending: format!("{domain}/create-pending"),
            field_manager: format!("{provider}-provider"),
        }
    }
}
