//! `datum-provider-sim`: the simulated provider as an operator process.

use clap::Parser;
use datum_provider_sim::SimProvider;

/// Runs the simulated provider against the cluster in KUBECONFIG (or in-cluster).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    run: datum_provider::cli::RunArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    datum_provider::cli::serve(SimProvider, Args::parse().run).await?;
    Ok(())
}
