//! `datum-control`: runs every control-plane controller (see the `datum_control` crate).
//!
//! One process per cluster is active at a time: replicas wait for a Lease
//! (`datum-control` in `--lease-namespace`) and start the controllers once they hold it;
//! losing it stops them. `/metrics`, `/healthz` and `/readyz` are served on
//! `--health-address` (ready once leading). SIGINT/SIGTERM stop the controllers gracefully
//! (in-flight reconciles finish) and release the Lease.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use datum_runtime::health::{self, Health};
use datum_runtime::leader::{Leadership, LeaseOptions};
use datum_runtime::metrics::Metrics;
use datum_runtime::shutdown;
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(name = "datum-control", about = "The Datum control plane controllers")]
struct Args {
    /// Manage namespaced objects in this namespace only (default: all namespaces).
    #[arg(long, env = "DATUM_CONTROL_NAMESPACE")]
    namespace: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(
        long,
        env = "DATUM_CONTROL_HEALTH_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    health_address: SocketAddr,
    /// The namespace of the leader-election Lease.
    #[arg(
        long,
        env = "DATUM_CONTROL_LEASE_NAMESPACE",
        default_value = "datum-system"
    )]
    lease_namespace: String,
    /// Run without leader election (one replica only).
    #[arg(long)]
    no_leader_election: bool,
    /// Reconciles each controller runs at once.
    #[arg(long, env = "DATUM_CONTROL_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            error!(%error, "datum-control failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await?;
    let shutdown = shutdown::on_signal();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let listener = health::bind(args.health_address).await?;
    let server = tokio::spawn(health::serve(
        listener,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));

    let mut leadership = if args.no_leader_election {
        None
    } else {
        let identity = std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("datum-control-{}", std::process::id()));
        Some(
            Leadership::start(
                client.clone(),
                LeaseOptions::new(&args.lease_namespace, "datum-control", identity),
            )
            .await?,
        )
    };
    if let Some(leader) = leadership.as_mut() {
        info!("waiting for the datum-control lease");
        tokio::select! {
            () = leader.acquired() => info!("acquired the datum-control lease"),
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    health.set_ready(true);

    let stop = shutdown.child_token();
    let watcher = leadership.map(|mut leader| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = leader.lost() => {
                    warn!("lost the datum-control lease; stopping the controllers");
                    stop.cancel();
                }
                () = stop.cancelled() => {}
            }
            leader
        })
    });
    let settings = datum_control::Settings {
        namespace: args.namespace,
        concurrency: args.concurrency.max(1),
        metrics,
        ..datum_control::Settings::default()
    };
    let stopped = stop.clone();
    datum_control::run(client, settings, async move { stopped.cancelled().await }).await;
    health.set_ready(false);
    stop.cancel();
    if let Some(watcher) = watcher {
        let leader = watcher.await?;
        if let Err(error) = leader.release().await {
            warn!(%error, "failed to release the lease");
        }
    }
    shutdown.cancel();
    server.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// The flags `config/manager/control` (and so the chart) gives datum-control are ones it
    /// accepts.
    #[test]
    fn the_shipped_deployments_flags_are_accepted() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/manager/control/deployment.yaml");
        let yaml = std::fs::read_to_string(&path).expect("the Deployment is readable");
        let args = datum_testenv::container_args(&yaml).expect("container args");
        assert!(!args.is_empty());
        super::Args::try_parse_from(std::iter::once("datum-control".to_owned()).chain(args))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
