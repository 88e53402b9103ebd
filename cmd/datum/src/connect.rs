//! Which cluster the client commands (`deploy`, `status`) talk to: `--kubeconfig`, else
//! `$KUBECONFIG`, else the kubeconfig a `datum up` on this machine wrote.

use std::path::PathBuf;

use anyhow::Context;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Flags every client command shares.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// The kubeconfig to use [default: $KUBECONFIG, else the one `datum up` wrote]
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace to work in.
    #[arg(short = 'n', long, default_value = "default", global = true)]
    pub namespace: String,
    /// The directory of `datum up`, for its kubeconfig
    /// [default: $XDG_DATA_HOME/datum or ~/.local/share/datum]
    #[arg(long, env = "DATUM_HOME", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl ConnectArgs {
    /// The cluster of the `datum up` whose state is in `dir`.
    pub fn of_data_dir(dir: &std::path::Path) -> Self {
        ConnectArgs {
            kubeconfig: Some(dir.join("kubeconfig")),
            namespace: "default".to_owned(),
            data_dir: Some(dir.to_path_buf()),
        }
    }

    /// The kubeconfig file to read.
    fn kubeconfig_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.kubeconfig {
            return Ok(path.clone());
        }
        if let Some(path) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => crate::up::default_data_dir()?,
        };
        let path = dir.join("kubeconfig");
        anyhow::ensure!(
            path.exists(),
            "no cluster to talk to: start one with `datum up`, or pass --kubeconfig (or set KUBECONFIG)"
        );
        Ok(path)
    }

    /// A client of the cluster.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let path = self.kubeconfig_path()?;
        anyhow::ensure!(
            path.is_file(),
            "the kubeconfig {} does not exist; pass an existing --kubeconfig (or KUBECONFIG), or start a cluster with `datum up`",
            path.display()
        );
        let kubeconfig = Kubeconfig::read_from(&path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("the kubeconfig {} is not usable", path.display()))?;
        let client = Client::try_from(config)?;
        client.apiserver_version().await.with_context(|| {
            format!(
                "the API server in {} does not answer; is `datum up` running?",
                path.display()
            )
        })?;
        Ok(client)
    }
}
