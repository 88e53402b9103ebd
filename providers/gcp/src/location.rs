//! Where a resource goes: `Location.spec.provider.gcp` (`projectId`, `region`, `zone`), with
//! the ProviderConfig's `projectId` as the default project.

use serde::Deserialize;

/// The Location says too little to place a resource.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No project in the Location nor in the ProviderConfig.
    #[error(
        "the Location's spec.provider.gcp names no projectId and the ProviderConfig has no default projectId"
    )]
    NoProject,
    /// A zonal or regional resource in a Location without `zone` / `region`.
    #[error("the Location's spec.provider.gcp has no {0}")]
    Missing(&'static str),
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    zone: Option<String>,
}

/// A resolved placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The GCP project.
    pub project: String,
    /// The region, if the Location names one.
    pub region: Option<String>,
    /// The zone, if the Location names one.
    pub zone: Option<String>,
}

impl Placement {
    /// Reads the Location's settings (`Null` when the Location is gone).
    pub fn resolve(
        settings: &serde_json::Value,
        default_project: Option<&str>,
    ) -> Result<Self, Error> {
        let s: Settings = serde_json::from_value(settings.clone()).unwrap_or_default();
        let project = s
            .project_id
            .filter(|p| !p.is_empty())
            .or_else(|| default_project.map(str::to_owned))
            .ok_or(Error::NoProject)?;
        Ok(Self {
            project,
            region: s.region.filter(|r| !r.is_empty()),
            zone: s.zone.filter(|z| !z.is_empty()),
        })
    }

    /// The zone, or an error naming what is missing.
    pub fn zone(&self) -> Result<&str, Error> {
        self.zone.as_deref().ok_or(Error::Missing("zone"))
    }

    /// The region: the Location's, else derived from the zone (`us-central1-a` → `us-central1`).
    pub fn region(&self) -> Result<String, Error> {
        if let Some(region) = &self.region {
            return Ok(region.clone());
        }
        let zone = self.zone()?;
        zone.rsplit_once('-')
            .map(|(r, _)| r.to_owned())
            .ok_or(Error::Missing("region"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_wins_over_default_and_region_comes_from_zone() {
        let p = Placement::resolve(
            &serde_json::json!({"projectId": "p1", "zone": "us-east1-b"}),
            Some("d"),
        )
        .expect("resolves");
        assert_eq!(p.project, "p1");
        assert_eq!(p.region().expect("a region"), "us-east1");
        let p = Placement::resolve(&serde_json::Value::Null, Some("d")).expect("resolves");
        assert_eq!(p.project, "d");
        assert!(p.zone().is_err());
        assert!(Placement::resolve(&serde_json::Value::Null, None).is_err());
    }
}
