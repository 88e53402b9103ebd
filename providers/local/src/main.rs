//! `datum-provider-local`: the local provider as an operator process. Optionally starts its
//! own containerd (root, state and socket under `--containerd-dir`) before serving.

use std::path::PathBuf;

use clap::Parser;
use datum_provider_local::LocalProvider;
use datum_provider_local::containerd::Daemon;

/// Runs the local provider against the cluster in KUBECONFIG (or in-cluster).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    run: datum_provider::cli::RunArgs,
    /// Start a containerd owned by the provider, with root, state and socket in this
    /// directory (otherwise the ProviderConfig's socket is used).
    #[arg(long)]
    containerd_dir: Option<PathBuf>,
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
    datum_provider_local::image::install_crypto_provider();
    let daemon = match &args.containerd_dir {
        Some(dir) => Some(Daemon::start(dir).await?),
        None => None,
    };
    let client = kube::Client::try_default().await?;
    let options = args.run.options()?;
    let shutdown = datum_runtime::shutdown::on_signal();
    let result = datum_provider::run(
        LocalProvider {
            kube: Some(client.clone()),
            ..LocalProvider::default()
        },
        client,
        options,
        shutdown,
    )
    .await;
    if let Some(daemon) = daemon {
        daemon.stop().await;
    }
    Ok(result?)
}
