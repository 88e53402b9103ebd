//! Installing CRDs and waiting until the API server serves them.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::Error;

const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Server-side applies every CRD, then waits until each is `Established`. Idempotent, so
/// concurrent tests may all call it.
pub async fn install_crds(client: &Client, crds: &[CustomResourceDefinition]) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("datum").force();
    for crd in crds {
        api.patch(&crd.name_any(), &params, &Patch::Apply(crd))
            .await?;
    }
    let started = Instant::now();
    for crd in crds {
        let name = crd.name_any();
        loop {
            let current = api.get(&name).await?;
            let conditions = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default();
            let status_of = |t: &str| {
                conditions
                    .iter()
                    .find(|c| c.type_ == t)
                    .map(|c| c.status.clone())
            };
            if status_of("Established").as_deref() == Some("True") {
                break;
            }
            if let Some(rejected) = conditions
                .iter()
                .find(|c| c.type_ == "NamesAccepted" && c.status == "False")
            {
                return Err(Error::CrdNotEstablished {
                    name,
                    detail: rejected.message.clone().unwrap_or_default(),
                });
            }
            if started.elapsed() > ESTABLISH_TIMEOUT {
                return Err(Error::CrdNotEstablished {
                    name,
                    detail: format!("conditions: {conditions:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
