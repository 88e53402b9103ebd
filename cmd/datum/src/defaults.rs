//! The objects `datum up` creates so a first Workload has somewhere to run: a ProviderConfig
//! of the chosen provider (local or sim), a Location it serves, and the `default` Network in
//! namespace `default`. Applied with server-side apply, so a restart leaves them as they are.

use std::path::Path;

use anyhow::Context;
use kube::api::PatchParams;
use kube::{Api, Client};
use serde_json::json;

/// The ProviderConfig the sim provider connects with.
pub const PROVIDER_CONFIG: &str = "default";
/// The Location served on this machine.
pub const LOCATION: &str = "local";
/// Its city code, for placements by `cityCodes`.
pub const CITY_CODE: &str = "LCL";

/// Which provider serves the default Location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderChoice {
    /// Real containers, networks and VMs on this machine (needs root).
    Local,
    /// A simulated cloud: nothing runs, everything reports Ready.
    Sim,
}

impl ProviderChoice {
    /// The key under `Location.spec.provider`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Sim => "sim",
        }
    }
}

/// What the defaults are made from.
pub struct Settings<'a> {
    /// The provider serving the default Location.
    pub provider: ProviderChoice,
    /// Where provider state lives.
    pub dir: &'a Path,
    /// Loopback registries pulled from over plain HTTP.
    pub registries: &'a [String],
    /// The local provider's network-namespace prefix.
    pub netns_prefix: &'a str,
}

/// The default ProviderConfig.
fn provider_config(settings: &Settings<'_>) -> serde_json::Value {
    let (dir, registries) = (settings.dir, settings.registries);
    match settings.provider {
        ProviderChoice::Sim => json!({
            "apiVersion": "sim.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
            "metadata": {"name": PROVIDER_CONFIG},
            "spec": {"stateDir": dir.join("sim").display().to_string()}
        }),
        ProviderChoice::Local => json!({
            "apiVersion": "local.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
            "metadata": {"name": PROVIDER_CONFIG},
            "spec": {
                "stateDir": dir.join("local").display().to_string(),
                "containerd": {
                    "socket": dir.join("containerd/containerd.sock").display().to_string(),
                    "namespace": "datum"
                },
                "registries": registries
                    .iter()
                    .map(|host| json!({"host": host, "insecure": true}))
                    .collect::<Vec<_>>(),
                "network": {"namespacePrefix": settings.netns_prefix}
            }
        }),
    }
}

/// Applies the defaults.
pub async fn apply(client: &Client, settings: &Settings<'_>) -> anyhow::Result<()> {
    let provider = settings.provider;
    // A Location's provider is immutable, and Instances of the other provider may still be
    // placed there: switching would strand them, so say how to keep both apart instead.
    let locations: Api<datum_api::networking::Location> = Api::all(client.clone());
    if let Some(existing) = locations.get_opt(LOCATION).await?
        && let Some(other) = existing
            .provider_name()
            .filter(|name| *name != provider.key())
    {
        anyhow::bail!(
            "the Location `{LOCATION}` in {} is served by the {other} provider (an earlier `datum up --provider {other}`); run `datum up --provider {other}`, or give the {} provider its own state with --data-dir",
            settings.dir.display(),
            provider.key()
        );
    }
    let objects = [
        provider_config(settings),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": {"name": LOCATION},
            "spec": {
                "locationClassName": "self-managed",
                "topology": {"topology.datum.net/city-code": CITY_CODE},
                "provider": {provider.key(): {}}
            }
        }),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
            "metadata": {"name": "default", "namespace": "default"},
            "spec": {"ipam": {"mode": "Auto"}}
        }),
    ];
    let params = PatchParams::apply("datum-up");
    for value in objects {
        datum_testenv::apply_object(client, value, None, &params)
            .await
            .context("cannot create the defaults")?;
    }
    Ok(())
}
