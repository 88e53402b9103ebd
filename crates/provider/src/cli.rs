//! The command line every provider binary shares, so a provider's `main` is three lines:
//!
//! ```no_run
//! # struct MyProvider;
//! # fn demo<P: datum_provider::Provider>(provider: P) {
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! #[command(version, about = "Runs the my-cloud provider")]
//! struct Args {
//!     #[command(flatten)]
//!     run: datum_provider::cli::RunArgs,
//! }
//!
//! # async fn main_body<P: datum_provider::Provider>(provider: P) -> Result<(), datum_provider::cli::CliError> {
//! datum_provider::cli::serve(provider, Args::parse().run).await
//! # }
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use datum_runtime::leader::LeaseOptions;

use crate::external::Provider;
use crate::runtime::{Options, run};

/// Flags for running a provider against the cluster in KUBECONFIG (or in-cluster).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The ProviderConfig (cluster-scoped) to connect with.
    #[arg(long, env = "DATUM_PROVIDER_CONFIG", default_value = "default")]
    pub provider_config: String,
    /// Serve only Locations of this class.
    #[arg(long)]
    pub location_class_name: Option<String>,
    /// Watch only this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long)]
    pub health_address: Option<SocketAddr>,
    /// Hold this Lease (`namespace/name`) while acting.
    #[arg(long)]
    pub leader_elect: Option<String>,
    /// Reconciles in flight per kind.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Platform calls per second (burst: twice as many).
    #[arg(long, default_value_t = 20.0)]
    pub platform_rate: f64,
    /// Seconds between drift checks of synced objects.
    #[arg(long, default_value_t = 60)]
    pub resync_seconds: u64,
}

/// What can stop a provider binary.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--leader-elect must be namespace/name, got {0:?}")]
    LeaseName(String),
    #[error("failed to reach the cluster (set KUBECONFIG or run in-cluster): {0}")]
    Cluster(#[from] kube::Error),
    #[error("the provider runtime stopped: {0}")]
    Runtime(#[from] crate::runtime::Error),
}

impl RunArgs {
    /// The runtime [`Options`] these flags ask for.
    pub fn options(&self) -> Result<Options, CliError> {
        let mut options = Options::new(self.provider_config.clone());
        options.location_class_name = self.location_class_name.clone();
        options.namespace = self.namespace.clone();
        options.health_address = self.health_address;
        options.concurrency = self.concurrency;
        options.platform_rate = self.platform_rate;
        options.platform_burst = (self.platform_rate * 2.0).clamp(1.0, f64::from(u32::MAX)) as u32;
        options.resync = Duration::from_secs(self.resync_seconds);
        if let Some(lease) = &self.leader_elect {
            let (namespace, name) = lease
                .split_once('/')
                .ok_or_else(|| CliError::LeaseName(lease.clone()))?;
            options.leader_election =
                Some(LeaseOptions::new(namespace, name, options.identity.clone()));
        }
        Ok(options)
    }
}

/// Sets up logging (`RUST_LOG`, default `info`, to stderr), connects to the cluster and runs
/// `provider` until SIGINT or SIGTERM. For provider binaries; libraries call [`run`].
pub async fn serve<P: Provider>(provider: P, args: RunArgs) -> Result<(), CliError> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let options = args.options()?;
    let client = kube::Client::try_default().await?;
    let shutdown = datum_runtime::shutdown::on_signal();
    run(provider, client, options, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        run: RunArgs,
    }

    /// The flags `config/manager` (and so the chart) gives the sim, local and gcp providers
    /// are ones their binaries accept, with valid values.
    #[test]
    fn the_shipped_deployments_flags_are_accepted() {
        for provider in ["sim", "local", "gcp"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../config/manager/{provider}/deployment.yaml"));
            let yaml = std::fs::read_to_string(&path).expect("the Deployment is readable");
            let args = datum_testenv::container_args(&yaml).expect("container args");
            assert!(!args.is_empty(), "{} has args", path.display());
            let parsed = Args::try_parse_from(std::iter::once("provider".to_owned()).chain(args))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            parsed
                .run
                .options()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    #[test]
    fn flags_become_options() {
        let args = Args::parse_from([
            "p",
            "--provider-config",
            "c",
            "--platform-rate",
            "5",
            "--leader-elect",
            "ns/lease",
            "--resync-seconds",
            "7",
        ]);
        let options = args.run.options().expect("valid flags");
        assert_eq!(options.provider_config, "c");
        assert_eq!(options.platform_burst, 10);
        assert_eq!(options.resync, Duration::from_secs(7));
        assert!(options.leader_election.is_some());
    }

    #[test]
    fn a_lease_without_namespace_is_refused() {
        let args = Args::parse_from(["p", "--leader-elect", "lease"]);
        assert!(matches!(args.run.options(), Err(CliError::LeaseName(_))));
    }
}
