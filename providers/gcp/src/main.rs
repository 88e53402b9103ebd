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
    let args = Args::parse();
    // The control plane, for the ConfigMaps and Secrets of configMap/secret volumes.
    let kube = kube::Client::try_default().await.ok();
    let provider = GcpProvider {
        kube,
        ..GcpProvider::default()
    };
    datum_provider::cli::serve(provider, args.run).await?;
    Ok(())
}
