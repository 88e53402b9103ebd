//! `datum status`: Locations, Workloads and their instances with addresses, at a glance.

use datum_api::compute::{Instance, Workload, labels};
use datum_api::networking::Location;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::connect::ConnectArgs;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  datum status
  datum status hello
  datum status -A")]
pub struct StatusArgs {
    /// Show only this Workload and its instances.
    name: Option<String>,
    /// Workloads and instances of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// The instance's addresses, every interface and family.
pub fn addresses(instance: &Instance) -> Vec<String> {
    instance
        .status
        .iter()
        .flat_map(|s| s.network_interfaces.iter().flatten())
        .filter_map(|i| i.assignments.as_ref())
        .flat_map(|a| {
            [
                a.network_ip.clone(),
                a.network_ipv6.clone(),
                a.external_ip.clone(),
            ]
        })
        .flatten()
        .collect()
}

fn is_true(conditions: Option<&Vec<Condition>>, type_: &str) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// `Ready`, `Running`, or the reason of the first condition that is not true.
fn instance_state(instance: &Instance) -> String {
    let conditions = instance.status.as_ref().and_then(|s| s.conditions.as_ref());
    if is_true(conditions, "Ready") {
        return "Ready".to_owned();
    }
    if is_true(conditions, "Running") {
        return "Running".to_owned();
    }
    conditions
        .into_iter()
        .flatten()
        .find(|c| c.status != "True")
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| "Pending".to_owned())
}

/// Why a not-Ready instance is not Ready: `name: Reason: message` of its Ready condition
/// (or of the first condition that is not true, while Ready is unset).
pub fn instance_problem(instance: &Instance) -> Option<String> {
    let conditions = instance.status.as_ref().and_then(|s| s.conditions.as_ref());
    if is_true(conditions, "Ready") {
        return None;
    }
    let conditions: Vec<&Condition> = conditions.into_iter().flatten().collect();
    let why = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .or_else(|| conditions.iter().find(|c| c.status != "True"))?;
    Some(format!(
        "{}: {}: {}",
        instance.name_any(),
        why.reason,
        why.message
    ))
}

/// A line of left-aligned columns.
fn row(widths: &[usize], cells: &[String]) -> String {
    cells
        .iter()
        .zip(widths)
        .map(|(c, w)| format!("{c:<w$}"))
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_owned()
}

/// Prints `rows` under `header`, columns as wide as their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    println!("{}", row(&widths, &header));
    for r in rows {
        println!("{}", row(&widths, r));
    }
}

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = args.connect.client().await?;
    print_status(&client, &args).await
}

async fn print_status(client: &Client, args: &StatusArgs) -> anyhow::Result<()> {
    let namespace = &args.connect.namespace;
    let (workloads, instances): (Api<Workload>, Api<Instance>) = if args.all_namespaces {
        (Api::all(client.clone()), Api::all(client.clone()))
    } else {
        (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        )
    };

    let mut locations = Api::<Location>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    locations.sort_by_key(|l| l.name_any());
    let rows: Vec<Vec<String>> = locations
        .iter()
        .map(|l| {
            vec![
                l.name_any(),
                l.provider_name().unwrap_or_default().to_owned(),
                l.spec
                    .topology
                    .get(datum_api::networking::well_known::topology::CITY_CODE)
                    .cloned()
                    .unwrap_or_default(),
                // Nothing may have judged the Location yet: `-`, not `false`.
                l.status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .find(|c| c.type_ == "Ready")
                    .map_or_else(|| "-".to_owned(), |c| c.status.clone()),
            ]
        })
        .collect();
    println!("LOCATIONS");
    table(&["NAME", "PROVIDER", "CITY", "READY"], &rows);

    let mut list = workloads.list(&ListParams::default()).await?.items;
    if let Some(name) = &args.name {
        list.retain(|w| &w.name_any() == name);
        anyhow::ensure!(
            !list.is_empty(),
            "no Workload {name} in namespace {namespace}; `datum status` lists them all"
        );
    }
    list.sort_by_key(|w| (w.namespace(), w.name_any()));
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            let status = w.status.clone().unwrap_or_default();
            let conditions = status.conditions.as_ref();
            let note = conditions
                .into_iter()
                .flatten()
                .find(|c| c.status != "True")
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "Available".to_owned());
            vec![
                w.namespace().unwrap_or_default(),
                w.name_any(),
                format!("{}/{}", status.ready_replicas, status.desired_replicas),
                note,
            ]
        })
        .collect();
    println!("\nWORKLOADS");
    table(&["NAMESPACE", "NAME", "READY", "STATUS"], &rows);

    let mut params = ListParams::default();
    let selector;
    if let Some(name) = &args.name {
        selector = format!("{}={name}", labels::WORKLOAD_NAME);
        params = params.labels(&selector);
    }
    let mut list = instances.list(&params).await?.items;
    list.sort_by_key(|i| (i.namespace(), i.name_any()));
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i.namespace().unwrap_or_default(),
                i.name_any(),
                i.labels()
                    .get(labels::WORKLOAD_NAME)
                    .cloned()
                    .unwrap_or_default(),
                i.spec
                    .location
                    .as_ref()
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                instance_state(i),
                addresses(i).join(","),
            ]
        })
        .collect();
    println!("\nINSTANCES");
    table(
        &[
            "NAMESPACE",
            "NAME",
            "WORKLOAD",
            "LOCATION",
            "STATE",
            "ADDRESSES",
        ],
        &rows,
    );
    Ok(())
}
