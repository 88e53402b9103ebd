//! `datum-provider-gcp`: the GCP provider as an operator process. The ProviderConfig's
//! per-project `rateLimit` applies inside the SDK's own `--platform-rate` ceiling.

use clap::Parser;
use datum_provider_gcp::GcpProvider;

/// Runs the GCP provider against the cluster in KUBECONFIG (or in-cluster).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    run: datum_provider::cli::RunArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    datum_provider::cli::serve(GcpProvider::default(), Args::parse().run).await?;
    Ok(())
}
