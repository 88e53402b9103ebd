//! `datum deploy`: the quick way to run something — a Workload from flags (or the objects
//! of a file), applied with server-side apply, then a wait with progress until its
//! instances are Ready, and their addresses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use datum_api::compute::{Instance, Workload, labels};
use datum_api::networking::Network;
use indicatif::{ProgressBar, ProgressStyle};
use kube::api::{ListParams, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::connect::ConnectArgs;

/// The field manager of everything `datum deploy` applies.
const MANAGER: &str = "datum-deploy";

#[derive(clap::Args)]
#[command(after_help = "Examples:
  datum deploy hello --image 127.0.0.1:5000/hello:v1 --replicas 2 --port 8080
  datum deploy web --image nginx:1.27 --city LCL
  datum deploy web --image nginx:1.27 --location-selector topology.datum.net/city-code=LCL
  datum deploy -f workload.yaml")]
pub struct DeployArgs {
    /// The Workload's name (not needed with -f).
    #[arg(required_unless_present = "file")]
    name: Option<String>,
    /// The container image to run.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    image: Option<String>,
    /// Instances per Location.
    #[arg(long, visible_alias = "min", default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=1000))]
    replicas: i32,
    /// A port the container listens on (repeatable).
    #[arg(long = "port", value_parser = clap::value_parser!(u16).range(1..))]
    ports: Vec<u16>,
    /// Place in the Locations with these city codes (repeatable, or comma-separated).
    #[arg(long = "city", value_delimiter = ',', conflicts_with_all = ["locations", "selector"])]
    cities: Vec<String>,
    /// Place in these Locations (repeatable, or comma-separated) [default: local, the
    /// Location `datum up` makes]
    #[arg(long = "location", value_delimiter = ',', conflicts_with = "selector")]
    locations: Vec<String>,
    /// Place in the Locations whose labels or topology match, as KEY=VALUE (repeatable, or
    /// comma-separated; all must match).
    #[arg(long = "location-selector", value_delimiter = ',', value_parser = parse_label, id = "selector")]
    selector: Vec<(String, String)>,
    /// The Network to attach to; made (with automatic IPAM) when missing.
    #[arg(long, default_value = "default")]
    network: String,
    /// The instance type.
    #[arg(long, default_value = "datumcloud/d1-standard-2")]
    instance_type: String,
    /// Apply the objects in this YAML file (Workloads in either form, Networks, …) instead.
    #[arg(short = 'f', long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// How long to wait for the instances to be Ready (e.g. 90s, 5m; 0 to not wait).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// `90s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s or 5m"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?} is not a duration such as 90s or 5m")),
    }
}

/// `KEY=VALUE`, as a selector's label.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "{text:?} is not KEY=VALUE, e.g. topology.datum.net/city-code=LCL"
        )),
    }
}

/// The Workload the flags describe.
fn workload_from_flags(args: &DeployArgs, name: &str, image: &str) -> serde_json::Value {
    let ports: Vec<_> = args
        .ports
        .iter()
        .map(|p| json!({ "name": format!("port-{p}"), "port": p }))
        .collect();
    let mut placement = json!({
        "name": "default",
        "scaleSettings": { "minReplicas": args.replicas }
    });
    if !args.cities.is_empty() {
        placement["cityCodes"] = json!(args.cities);
    } else if !args.selector.is_empty() {
        let labels: serde_json::Map<String, serde_json::Value> = args
            .selector
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        placement["locationSelector"] = json!({ "matchLabels": labels });
    } else {
        let locations = if args.locations.is_empty() {
            vec![crate::defaults::LOCATION.to_owned()]
        } else {
            args.locations.clone()
        };
        placement["locations"] = locations.iter().map(|l| json!({ "name": l })).collect();
    }
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": { "name": name, "namespace": args.connect.namespace },
        "spec": {
            "template": { "spec": {
                "runtime": {
                    "resources": { "instanceType": args.instance_type },
                    "sandbox": { "containers": [{ "name": "app", "image": image, "ports": ports }] }
                },
                "networkInterfaces": [{ "network": { "name": args.network } }]
            }},
            "placements": [placement]
        }
    })
}

/// Applies one object with server-side apply; a namespaced one without a namespace goes to
/// `namespace`.
async fn apply(
    client: &Client,
    value: serde_json::Value,
    namespace: &str,
) -> anyhow::Result<datum_testenv::Applied> {
    datum_testenv::apply_object(client, value, Some(namespace), &PatchParams::apply(MANAGER))
        .await
        .map_err(|e| match e {
            datum_testenv::Error::UnknownKind(kind) => anyhow::anyhow!(
                "the cluster does not know {kind}; are the Datum CRDs installed (`datum crds | kubectl apply --server-side -f -`)?"
            ),
            other => anyhow::Error::new(other),
        })
}

/// Makes the Network `name` (automatic IPAM) when the namespace has none by that name.
async fn ensure_network(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let networks: Api<Network> = Api::namespaced(client.clone(), namespace);
    if networks.get_opt(name).await?.is_some() {
        return Ok(());
    }
    let network: Network = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": { "name": name }, "spec": { "ipam": { "mode": "Auto" } }
    }))?;
    match networks.create(&PostParams::default(), &network).await {
        Ok(_) => eprintln!("created Network {namespace}/{name} (automatic IPAM)"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context(format!("cannot create Network {namespace}/{name}")),
    }
    Ok(())
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let client = args.connect.client().await?;
    let namespace = args.connect.namespace.clone();
    let mut workloads = Vec::new();
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document)
                .with_context(|| format!("{} is not valid YAML", file.display()))?;
            if value.is_null() {
                continue;
            }
            let applied = apply(&client, value, &namespace).await?;
            eprintln!("applied {applied}");
            if applied.kind == "Workload"
                && let Some(ns) = applied.namespace
            {
                workloads.push((ns, applied.name));
            }
        }
    } else {
        let (Some(name), Some(image)) = (&args.name, &args.image) else {
            bail!("give a NAME and --image, or -f FILE");
        };
        ensure_network(&client, &namespace, &args.network).await?;
        let applied = apply(&client, workload_from_flags(&args, name, image), &namespace).await?;
        eprintln!("applied {applied}");
        workloads.push((namespace.clone(), applied.name));
    }
    if args.timeout.is_zero() {
        return Ok(());
    }
    for (ns, name) in workloads {
        wait_ready(&client, &ns, &name, args.timeout).await?;
        print_addresses(&client, &ns, &name).await?;
    }
    Ok(())
}

/// What the Workload says while it is not Ready yet.
fn progress_of(workload: Option<&Workload>) -> (Option<(i32, i32)>, String) {
    let Some(status) = workload.and_then(|w| w.status.as_ref()) else {
        return (None, "waiting for the controllers".to_owned());
    };
    let counts = (status.ready_replicas, status.desired_replicas);
    let reason = status
        .placements
        .iter()
        .flatten()
        .flat_map(|p| p.conditions.iter().flatten())
        .chain(status.conditions.iter().flatten())
        .find(|c| c.status != "True")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    (Some(counts), reason)
}

/// Waits until every wanted instance of the Workload is Ready, showing progress.
async fn wait_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let workloads: Api<Workload> = Api::namespaced(client.clone(), namespace);
    let instances: Api<Instance> = Api::namespaced(client.clone(), namespace);
    let of_workload = ListParams::default().labels(&format!("{}={name}", labels::WORKLOAD_NAME));
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    loop {
        let workload = workloads.get_opt(name).await?;
        let fresh = workload.as_ref().is_some_and(|w| {
            w.status.as_ref().and_then(|s| s.observed_generation) == w.metadata.generation
        });
        let (counts, mut reason) = progress_of(workload.as_ref());
        // An instance's own trouble (an image that cannot be pulled, say) says more than
        // the roll-up's "no available deployments".
        let mut members = instances.list(&of_workload).await?.items;
        members.sort_by_key(|i| i.name_any());
        if let Some(problem) = members.iter().find_map(crate::status::instance_problem) {
            reason = problem;
        }
        match counts {
            Some((ready, desired)) if fresh && desired > 0 && ready == desired => {
                bar.finish_and_clear();
                eprintln!("Workload {namespace}/{name}: {ready}/{desired} instances Ready");
                return Ok(());
            }
            Some((ready, desired)) => bar.set_message(format!(
                "{namespace}/{name}: {ready}/{desired} instances Ready {reason}"
            )),
            None => bar.set_message(format!("{namespace}/{name}: {reason}")),
        }
        if started.elapsed() > timeout {
            bar.finish_and_clear();
            let why = if reason.is_empty() {
                "the instances are not Ready yet".to_owned()
            } else {
                reason
            };
            bail!(
                "Workload {namespace}/{name} is not Ready after {timeout:?}: {why}. See `datum status {name} -n {namespace}`"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints each instance of the Workload with its location and addresses.
async fn print_addresses(client: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let instances: Api<Instance> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}={name}", labels::WORKLOAD_NAME);
    let mut list = instances
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    list.sort_by_key(|i| i.name_any());
    for instance in list {
        let location = instance
            .spec
            .location
            .as_ref()
            .map(|l| l.name.clone())
            .unwrap_or_default();
        println!(
            "{}\t{location}\t{}",
            instance.name_any(),
            crate::status::addresses(&instance).join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        deploy: DeployArgs,
    }

    fn placement(flags: &[&str]) -> serde_json::Value {
        let args = Cli::try_parse_from(
            ["deploy", "web", "--image", "i"]
                .iter()
                .chain(flags)
                .copied(),
        )
        .expect("the flags parse")
        .deploy;
        workload_from_flags(&args, "web", "i")["spec"]["placements"][0].clone()
    }

    #[test]
    fn placements_follow_the_flags() {
        assert_eq!(placement(&[])["locations"], json!([{ "name": "local" }]));
        assert_eq!(
            placement(&["--location", "a,b", "--location", "c"])["locations"],
            json!([{ "name": "a" }, { "name": "b" }, { "name": "c" }])
        );
        assert_eq!(
            placement(&["--city", "DFW,LCL"])["cityCodes"],
            json!(["DFW", "LCL"])
        );
        let selected = placement(&[
            "--location-selector",
            "topology.datum.net/city-code=LCL,tier=edge",
        ]);
        assert_eq!(
            selected["locationSelector"],
            json!({ "matchLabels": { "topology.datum.net/city-code": "LCL", "tier": "edge" } })
        );
        assert!(selected.get("locations").is_none());
        assert_eq!(
            placement(&["--min", "3"])["scaleSettings"]["minReplicas"],
            3
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        let parse = |flags: &[&str]| {
            Cli::try_parse_from(
                ["deploy", "web", "--image", "i"]
                    .iter()
                    .chain(flags)
                    .copied(),
            )
            .map(|_| ())
        };
        assert!(parse(&["--location-selector", "no-equals"]).is_err());
        assert!(parse(&["--city", "DFW", "--location", "a"]).is_err());
        assert!(parse(&["--location-selector", "a=b", "--location", "a"]).is_err());
        assert!(parse(&["--replicas", "1001"]).is_err());
    }
}
