//! `datum-provider-example`: the example provider as an operator process, against the
//! cluster in KUBECONFIG (or in-cluster).

use clap::Parser;
use datum_provider_example::ExampleProvider;

/// Runs the example provider against the cluster in KUBECONFIG (or in-cluster).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    run: datum_provider::cli::RunArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // REPLACE THIS: the stand-in platform lives in this process and forgets everything when
    // it exits; a real provider's `connect` reaches the real platform.
    let provider = ExampleProvider::default();
    datum_provider::cli::serve(provider, Args::parse().run).await?;
    Ok(())
}
