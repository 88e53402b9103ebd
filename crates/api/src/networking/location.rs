//! Location: a place where instances can run, and the provider that runs them there.
//!
//! A Location is cluster-scoped: it describes shared infrastructure, and every project's
//! workloads and networks refer to it by name alone. (Some upstream revisions made it
//! namespaced; the upstream CRD this mirrors, and Datum's platform plane, have it
//! cluster-scoped. Manifests without a namespace, like upstream's `gcp-locations.yaml`,
//! apply either way.)
//!
//! `spec.provider` has exactly one key, the provider's name: `gcp` (typed, as upstream),
//! `local`, `sim`, or any custom provider's name with settings of its own shape. A provider
//! serves the Locations whose provider key is its own (see [`Location::provider_name`]).
//!
//! ```
//! use datum_api::networking::{GcpLocationProvider, Location, LocationProvider, LocationSpec};
//! use datum_api::networking::well_known::topology;
//!
//! let mut spec = LocationSpec::new(
//!     "datum-managed",
//!     LocationProvider::gcp(GcpLocationProvider {
//!         project_id: "datum-cloud-poc-1".into(),
//!         region: "us-south1".into(),
//!         zone: "us-south1-a".into(),
//!     }),
//! );
//! spec.topology.insert(topology::CITY_CODE.into(), "DFW".into());
//! let location = Location::new("gcp-us-south1-a", spec);
//! assert_eq!(location.provider_name(), Some("gcp"));
//! assert_eq!(location.city_code(), Some("DFW"));
//! ```

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::well_known::{provider, topology};

/// Where instances can run, and which provider runs them there.
// Every `printcolumn(...)` repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "networking.datumapis.com",
    version = "v1alpha",
    kind = "Location",
    status = "LocationStatus",
    derive = "PartialEq",
    doc = "A place where instances can run, and the provider that runs them there.",
    printcolumn(
        name = "Class",
        type_ = "string",
        json_path = ".spec.locationClassName"
    ),
    printcolumn(
        name = "City",
        type_ = "string",
        json_path = ".spec.topology.topology\\.datum\\.net/city-code"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        json_path = ".spec.topology.topology\\.datum\\.net/region"
    ),
    printcolumn(
        name = "Provider",
        type_ = "string",
        description = "The provider serving the location, with its settings",
        json_path = ".spec.provider"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LocationSpec {
    /// The location class, which says who operates the location's infrastructure.
    /// Documented values: `datum-managed`, `self-managed`.
    pub location_class_name: String,

    /// Where the location is. Arbitrary keys; well-known ones are
    /// `topology.datum.net/city-code` (for example `DFW`) and `topology.datum.net/region`
    /// (for example `us-east-1`).
    #[x_kube(validation = kube::core::Rule::new(
        "!('topology.datum.net/city-code' in self) || self['topology.datum.net/city-code'] != ''"
    ).message("topology.datum.net/city-code must not be empty when present"))]
    pub topology: BTreeMap<String, String>,

    /// The provider serving the location: exactly one key naming it (`gcp`, `local`, `sim`,
    /// or a custom provider) with that provider's settings. Immutable: moving a location to
    /// another provider would strand what the old one created; create a new Location.
    /// The API server rejects switching between `gcp`, `local`, `sim` and a custom provider,
    /// and any change to the `gcp` settings. Free-form settings and the names of custom
    /// providers are invisible to CEL, so changing those is not caught.
    #[x_kube(validation = crate::networking::validation::immutable("spec.provider"))]
    pub provider: LocationProvider,

    /// Where the location is on a map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
}

impl LocationSpec {
    /// A spec with the given class and provider and an empty topology.
    pub fn new(location_class_name: impl Into<String>, provider: LocationProvider) -> Self {
        Self {
            location_class_name: location_class_name.into(),
            topology: BTreeMap::new(),
            provider,
            coordinates: None,
        }
    }
}

/// The one provider serving a Location, keyed by its name.
///
/// `gcp` is typed as upstream. `local` and `sim` are this project's own providers; their
/// settings are free-form. Any other key is a custom provider, kept in [`Self::custom`].
///
/// "Exactly one key" is `minProperties: 1` / `maxProperties: 1` rather than CEL: the API
/// server hides keys it has no schema for (the custom providers) from CEL, and `size()` is
/// not defined on objects, so only the OpenAPI keywords can count every key. The API server
/// reports `spec.provider: Too many: 2: must have at most 1 item` or
/// `spec.provider … should have at least 1 properties`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct LocationProvider {
    /// Google Compute Engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpLocationProvider>,
    /// The local provider, which runs instances on the host it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<ProviderSettings>,
    /// The simulated cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<ProviderSettings>,
    /// Custom providers, by name. Their settings are not validated by the API server.
    #[serde(flatten)]
    pub custom: BTreeMap<String, Value>,
}

impl LocationProvider {
    /// A GCP provider.
    pub fn gcp(settings: GcpLocationProvider) -> Self {
        Self {
            gcp: Some(settings),
            ..Self::default()
        }
    }

    /// The local provider, with no settings.
    pub fn local() -> Self {
        Self {
            local: Some(ProviderSettings::default()),
            ..Self::default()
        }
    }

    /// The simulated provider, with no settings.
    pub fn sim() -> Self {
        Self {
            sim: Some(ProviderSettings::default()),
            ..Self::default()
        }
    }

    /// A provider by name with free-form settings. Known names land in their typed field;
    /// `gcp` settings that do not have GCP's shape are an error.
    pub fn named(name: &str, settings: Map<String, Value>) -> Result<Self, serde_json::Error> {
        let mut object = Map::new();
        object.insert(name.to_string(), Value::Object(settings));
        serde_json::from_value(Value::Object(object))
    }

    /// The provider's name, if exactly one provider is named.
    pub fn name(&self) -> Option<&str> {
        let mut names = self.names();
        let first = names.next()?;
        names.next().is_none().then_some(first)
    }

    /// Every provider named, in the order known providers first, then custom ones by name.
    /// A valid Location names exactly one.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let known = [
            (self.gcp.is_some(), provider::GCP),
            (self.local.is_some(), provider::LOCAL),
            (self.sim.is_some(), provider::SIM),
        ];
        known
            .into_iter()
            .filter_map(|(named, name)| named.then_some(name))
            .chain(self.custom.keys().map(String::as_str))
    }

    /// The settings of the provider called `name`, as JSON, if it is the one named here.
    pub fn settings(&self, name: &str) -> Option<Value> {
        let value = match name {
            provider::GCP => serde_json::to_value(self.gcp.as_ref()?),
            provider::LOCAL => serde_json::to_value(self.local.as_ref()?),
            provider::SIM => serde_json::to_value(self.sim.as_ref()?),
            custom => return self.custom.get(custom).cloned(),
        };
        value.ok()
    }
}

/// The GCP project, region and zone serving a Location.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GcpLocationProvider {
    /// The GCP project serving the location. For `datum-managed` locations, each distinct
    /// project needs a service account.
    #[schemars(length(min = 1))]
    pub project_id: String,
    /// The GCP region serving the location, for example `us-south1`.
    #[schemars(length(min = 1))]
    pub region: String,
    /// The GCP zone serving the location, for example `us-south1-a`.
    #[schemars(length(min = 1))]
    pub zone: String,
}

/// Free-form provider settings: a JSON object the API server stores without checking.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct ProviderSettings(pub Map<String, Value>);

impl JsonSchema for ProviderSettings {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProviderSettings".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Provider settings; free-form.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// A location's geographic coordinates, as decimal-degree strings (strings, as upstream, so
/// they survive every JSON and YAML tool without rounding).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Coordinates {
    /// Latitude in decimal degrees, in the range [-90, 90].
    #[schemars(regex(pattern = r"^-?\d{1,2}(\.\d+)?$"))]
    #[x_kube(validation = kube::core::Rule::new("double(self) >= -90.0 && double(self) <= 90.0")
        .message("latitude must be between -90 and 90"))]
    pub latitude: String,
    /// Longitude in decimal degrees, in the range [-180, 180].
    #[schemars(regex(pattern = r"^-?\d{1,3}(\.\d+)?$"))]
    #[x_kube(validation = kube::core::Rule::new("double(self) >= -180.0 && double(self) <= 180.0")
        .message("longitude must be between -180 and 180"))]
    pub longitude: String,
}

/// What is known about a Location. Nothing in network-services-operator writes it; providers
/// may report readiness here.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocationStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations of the location's state; `Ready` says whether it can take instances.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

impl Location {
    /// The name of the provider serving this location, if exactly one is named (which the
    /// CRD guarantees for stored objects).
    pub fn provider_name(&self) -> Option<&str> {
        self.spec.provider.name()
    }

    /// The location's city code (`topology.datum.net/city-code`), if set and non-empty.
    pub fn city_code(&self) -> Option<&str> {
        self.topology_value(topology::CITY_CODE)
    }

    /// The location's region (`topology.datum.net/region`), if set and non-empty.
    pub fn region(&self) -> Option<&str> {
        self.topology_value(topology::REGION)
    }

    /// The GCP settings, if GCP serves this location.
    pub fn gcp(&self) -> Option<&GcpLocationProvider> {
        self.spec.provider.gcp.as_ref()
    }

    fn topology_value(&self, key: &str) -> Option<&str> {
        self.spec
            .topology
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's `config/samples/gcp-locations.yaml`, verbatim.
    const GCP_LOCATIONS: &str = r#"apiVersion: networking.datumapis.com/v1alpha
kind: Location
metadata:
 name: gcp-us-south1-a
spec:
  locationClassName: datum-managed
  topology:
    topology.datum.net/city-code: DFW
  provider:
    gcp:
      projectId: datum-cloud-poc-1
      region: us-south1
      zone: us-south1-a
---
apiVersion: networking.datumapis.com/v1alpha
kind: Location
metadata:
 name: gcp-us-west1-a
spec:
  locationClassName: datum-managed
  topology:
    topology.datum.net/city-code: DLS
  provider:
    gcp:
      projectId: datum-cloud-poc-1
      region: us-west1
      zone: us-west1-a
---
apiVersion: networking.datumapis.com/v1alpha
kind: Location
metadata:
 name: gcp-europe-west2-a
spec:
  locationClassName: datum-managed
  topology:
    topology.datum.net/city-code: LHR
  provider:
    gcp:
      projectId: datum-cloud-poc-1
      region: europe-west2
      zone: europe-west2-a
"#;

    fn documents(yaml: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| Value::deserialize(doc).expect("sample is YAML"))
            .collect()
    }

    #[test]
    fn gcp_locations_sample_round_trips() {
        let codes: Vec<_> = documents(GCP_LOCATIONS)
            .into_iter()
            .map(|doc| {
                let location: Location =
                    serde_json::from_value(doc.clone()).expect("sample is a Location");
                assert_eq!(serde_json::to_value(&location).expect("serializes"), doc);
                assert_eq!(location.provider_name(), Some("gcp"));
                assert_eq!(
                    location.gcp().map(|gcp| gcp.project_id.as_str()),
                    Some("datum-cloud-poc-1")
                );
                location.city_code().map(str::to_string)
            })
            .collect();
        assert_eq!(
            codes,
            [Some("DFW".into()), Some("DLS".into()), Some("LHR".into())]
        );
    }

    #[test]
    fn custom_providers_keep_their_settings() {
        let provider: LocationProvider = serde_json::from_value(serde_json::json!({
            "acme": {"datacenter": "fra-7", "rack": 12}
        }))
        .expect("custom provider");
        assert_eq!(provider.name(), Some("acme"));
        assert_eq!(
            provider.settings("acme"),
            Some(serde_json::json!({"datacenter": "fra-7", "rack": 12}))
        );
        assert_eq!(
            serde_json::to_value(&provider).expect("serializes"),
            serde_json::json!({"acme": {"datacenter": "fra-7", "rack": 12}})
        );
    }

    #[test]
    fn provider_name_is_none_unless_exactly_one() {
        assert_eq!(LocationProvider::default().name(), None);
        let mut two = LocationProvider::local();
        two.sim = Some(ProviderSettings::default());
        assert_eq!(two.name(), None);
        assert_eq!(two.names().collect::<Vec<_>>(), ["local", "sim"]);
        assert_eq!(LocationProvider::sim().name(), Some("sim"));
    }

    #[test]
    fn named_puts_known_providers_in_their_fields() {
        let local = LocationProvider::named("local", Map::new()).expect("local");
        assert_eq!(local, LocationProvider::local());
        assert!(LocationProvider::named("gcp", Map::new()).is_err());
    }
}
