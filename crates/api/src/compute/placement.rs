//! Where a Workload runs: its placements.
//!
//! A placement picks Locations and says how many instances run in each; the control plane
//! makes one WorkloadDeployment per placement and Location. Locations are picked in one of
//! three ways, exactly one per placement:
//!
//! - `cityCodes` (older upstream, and what the product guides still show): every Location
//!   whose `topology.datum.net/city-code` is one of the codes;
//! - `locationSelector` (newer upstream): a label selector over Location topology; it must
//!   not be empty (an empty selector would mean "everywhere");
//! - `locations` (newer upstream): Locations by name.
//!
//! Newer upstream made `cityCodes` optional and turns it into a selector at admission; we
//! keep all three as written and let the controller resolve them, so old manifests apply
//! unchanged. Upstream's own rule allows only one of `locations`/`locationSelector`; we extend
//! "only one" to `cityCodes`, since combining them would need union-or-intersection semantics
//! nobody has asked for. Whichever is set must not be empty (`cityCodes` and `locations`
//! have `minItems: 1`; upstream's webhook also required a city code).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::references::LocationReference;
use super::scale::HorizontalScaleSettings;
use super::validation::{dns_label, limits};

/// A set of Locations and the scale settings for each of them.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "(has(self.cityCodes) ? 1 : 0) + (has(self.locationSelector) ? 1 : 0) + (has(self.locations) ? 1 : 0) == 1"
    )
    .message("a placement must choose its locations in exactly one way: set one of cityCodes, locationSelector or locations"),
    validation = Rule::new(
        "!has(self.locationSelector) \
         || (has(self.locationSelector.matchLabels) && size(self.locationSelector.matchLabels) > 0) \
         || (has(self.locationSelector.matchExpressions) && size(self.locationSelector.matchExpressions) > 0)"
    )
    .message("locationSelector must not be empty: an empty selector would select every location")
    .field_path(".locationSelector"),
)]
pub struct WorkloadPlacement {
    /// Name of the placement, unique within the Workload; part of its deployments' names.
    #[schemars(length(max = limits::NAME_LENGTH))]
    #[x_kube(validation = dns_label("placement name"))]
    pub name: String,

    /// City codes (e.g. `DFW`) whose Locations run the placement. Deprecated upstream in
    /// favour of `locationSelector` on `topology.datum.net/city-code`, still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::LOCATIONS))]
    pub city_codes: Option<Vec<String>>,

    /// Locations whose topology labels match run the placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_selector: Option<LabelSelector>,

    /// Locations, by name, that run the placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::LOCATIONS))]
    pub locations: Option<Vec<LocationReference>>,

    /// How many instances run in each Location.
    pub scale_settings: HorizontalScaleSettings,
}
