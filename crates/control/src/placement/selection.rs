//! Which Locations a placement selects.
//!
//! A placement picks Locations one way: `cityCodes` (the Location's
//! `topology.datum.net/city-code`), `locationSelector` (a label selector over the
//! Location's `metadata.labels` together with its `spec.topology`, so both
//! `topology.datum.net/region=us-central1` and ordinary labels work) or `locations` (names).
//! Only eligible Locations count: not being deleted, and `Ready` either absent (nobody
//! reports readiness for that Location) or `True`. The result is sorted by name, so the
//! deployments derived from it are deterministic.
//!
//! ```
//! use datum_api::compute::WorkloadPlacement;
//! use datum_control::placement::selection;
//!
//! let placement = WorkloadPlacement { name: "us".into(), city_codes: Some(vec!["DFW".into()]), ..Default::default() };
//! assert_eq!(selection::describe(&placement), "cityCodes [DFW]");
//! assert!(selection::select(&placement, &[]).is_empty());
//! ```

use std::collections::BTreeMap;

use datum_api::compute::WorkloadPlacement;
use datum_api::conditions;
use datum_api::networking::Location;
use datum_api::networking::well_known::condition_types;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

/// The eligible Locations `placement` selects, sorted by name.
pub fn select<'a>(placement: &WorkloadPlacement, locations: &'a [Location]) -> Vec<&'a Location> {
    let matcher = Matcher::new(placement);
    let mut selected: Vec<&Location> = locations
        .iter()
        .filter(|location| is_eligible(location) && matcher.matches(location))
        .collect();
    selected.sort_by_key(|location| location.name_any());
    selected.dedup_by_key(|location| location.name_any());
    selected
}

/// Whether a Location may receive deployments: not deleting, and not reported un-Ready.
pub fn is_eligible(location: &Location) -> bool {
    if location.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let conditions = location
        .status
        .as_ref()
        .map(|status| status.conditions.as_slice())
        .unwrap_or_default();
    match conditions::get(conditions, condition_types::READY) {
        None => true,
        Some(_) => conditions::is_true(conditions, condition_types::READY),
    }
}

/// How `placement` picks Locations, for messages: `cityCodes [DFW]`,
/// `locationSelector {region=x}`, `locations [a, b]`.
pub fn describe(placement: &WorkloadPlacement) -> String {
    if let Some(codes) = &placement.city_codes {
        return format!("cityCodes [{}]", codes.join(", "));
    }
    if let Some(names) = &placement.locations {
        let names: Vec<&str> = names.iter().map(|l| l.name.as_str()).collect();
        return format!("locations [{}]", names.join(", "));
    }
    if let Some(selector) = &placement.location_selector {
        return match Selector::try_from(selector.clone()) {
            Ok(selector) => format!("locationSelector {{{selector}}}"),
            Err(error) => format!("locationSelector (invalid: {error})"),
        };
    }
    "no location choice".to_owned()
}

enum Matcher<'a> {
    CityCodes(&'a [String]),
    Names(Vec<&'a str>),
    Selector(Selector),
    Nothing,
}

impl<'a> Matcher<'a> {
    fn new(placement: &'a WorkloadPlacement) -> Self {
        if let Some(codes) = &placement.city_codes {
            return Self::CityCodes(codes);
        }
        if let Some(names) = &placement.locations {
            return Self::Names(names.iter().map(|l| l.name.as_str()).collect());
        }
        match placement.location_selector.clone().map(Selector::try_from) {
            // An empty selector would select everything; the CRD rejects it, and so do we.
            Some(Ok(selector)) if selector.clone().into_iter().next().is_some() => {
                Self::Selector(selector)
            }
            _ => Self::Nothing,
        }
    }

    fn matches(&self, location: &Location) -> bool {
        match self {
            Self::CityCodes(codes) => location
                .city_code()
                .is_some_and(|city| codes.iter().any(|code| code == city)),
            Self::Names(names) => names.contains(&location.name_any().as_str()),
            Self::Selector(selector) => selector.matches(&selectable_labels(location)),
            Self::Nothing => false,
        }
    }
}

/// A Location's labels and topology, as one map a selector is matched against (topology
/// wins where both have a key).
fn selectable_labels(location: &Location) -> BTreeMap<String, String> {
    let mut labels = location.labels().clone();
    labels.extend(location.spec.topology.clone());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::compute::LocationReference;
    use datum_api::networking::well_known::topology;
    use datum_api::networking::{LocationProvider, LocationSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn location(name: &str, city: &str, region: &str) -> Location {
        let mut spec = LocationSpec::new("datum-managed", LocationProvider::sim());
        spec.topology
            .insert(topology::CITY_CODE.into(), city.into());
        spec.topology.insert(topology::REGION.into(), region.into());
        Location::new(name, spec)
    }

    fn placement() -> WorkloadPlacement {
        WorkloadPlacement {
            name: "p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn city_codes_selector_and_names_each_select() {
        let all = [
            location("b", "DFW", "us"),
            location("a", "DFW", "us"),
            location("c", "LHR", "eu"),
        ];
        let by_city = WorkloadPlacement {
            city_codes: Some(vec!["DFW".into()]),
            ..placement()
        };
        let names: Vec<String> = select(&by_city, &all)
            .iter()
            .map(|l| l.name_any())
            .collect();
        assert_eq!(names, ["a", "b"]);

        let by_selector = WorkloadPlacement {
            location_selector: Some(LabelSelector {
                match_labels: Some([(topology::REGION.to_owned(), "eu".to_owned())].into()),
                ..Default::default()
            }),
            ..placement()
        };
        let names: Vec<String> = select(&by_selector, &all)
            .iter()
            .map(|l| l.name_any())
            .collect();
        assert_eq!(names, ["c"]);

        let by_name = WorkloadPlacement {
            locations: Some(vec![
                LocationReference::new("c"),
                LocationReference::new("zz"),
            ]),
            ..placement()
        };
        assert_eq!(select(&by_name, &all).len(), 1);
    }

    #[test]
    fn empty_selector_selects_nothing_and_unready_locations_are_skipped() {
        let mut unready = location("a", "DFW", "us");
        unready.status = Some(datum_api::networking::LocationStatus {
            conditions: vec![conditions::new(
                "Ready",
                conditions::ConditionStatus::False,
                "Down",
                "",
                1,
            )],
            ..Default::default()
        });
        let all = [unready, location("b", "DFW", "us")];
        let empty = WorkloadPlacement {
            location_selector: Some(LabelSelector::default()),
            ..placement()
        };
        assert!(select(&empty, &all).is_empty());
        let by_city = WorkloadPlacement {
            city_codes: Some(vec!["DFW".into()]),
            ..placement()
        };
        let names: Vec<String> = select(&by_city, &all)
            .iter()
            .map(|l| l.name_any())
            .collect();
        assert_eq!(names, ["b"]);
    }
}
