//! `datum-provider-example`: the example provider as an operator process, against the
//! cluster in KUBECONFIG (or in-cluster).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use datum_provider::Options;
use datum_provider_example::ExampleProvider;
use datum_runtime::leader::LeaseOptions;

/// Runs the example provider against the cluster in KUBECONFIG (or in-cluster).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The example ProviderConfig to connect with.
    #[arg(long, env = "EXAMPLE_PROVIDER_CONFIG", default_value = "default")]
    provider_config: String,
    /// Serve only Locations of this class.
    #[arg(long)]
    location_class_name: Option<String>,
    /// Watch only this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long)]
    health_address: Option<SocketAddr>,
    /// Hold this Lease (`namespace/name`) while acting.
    #[arg(long)]
    leader_elect: Option<String>,
    /// Reconciles in flight per kind.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Platform calls per second (burst: twice as many).
    #[arg(long, default_value_t = 20.0)]
    platform_rate: f64,
    /// Seconds between drift checks of synced objects.
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default().await?;
    let mut options = Options::new(args.provider_config);
    options.location_class_name = args.location_class_name;
    options.namespace = args.namespace;
    options.health_address = args.health_address;
    options.concurrency = args.concurrency;
    options.platform_rate = args.platform_rate;
    options.platform_burst = (args.platform_rate * 2.0).clamp(1.0, f64::from(u32::MAX)) as u32;
    options.resync = Duration::from_secs(args.resync_seconds);
    if let Some(lease) = args.leader_elect {
        let (namespace, name) = lease
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("--leader-elect must be namespace/name"))?;
        options.leader_election =
            Some(LeaseOptions::new(namespace, name, options.identity.clone()));
    }
    let shutdown = datum_runtime::shutdown::on_signal();
    // REPLACE THIS: the stand-in platform lives in this process and forgets everything when
    // it exits; a real provider's `connect` reaches the real platform.
    let provider = ExampleProvider::default();
    datum_provider::run(provider, client, options, shutdown).await?;
    Ok(())
}
