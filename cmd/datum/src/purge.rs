//! `datum down --purge`: before the state directory goes, everything the running system
//! made on this machine is removed the way a user would remove it — Workloads, Instances,
//! then Networks — so that the provider tears down its containers, VMs, bridges and network
//! namespaces. Deleting the directory first would strand all of them.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use anyhow::bail;
use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_api::networking::{Network, NetworkContext, Subnet};
use datum_api::short_form;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Deletes every object of kind `K` in every namespace.
async fn delete_all<K>(client: &Client) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    for object in Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await?
    {
        let namespace = object.namespace().unwrap_or_default();
        let api: Api<K> = Api::namespaced(client.clone(), &namespace);
        match api
            .delete(&object.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// How many objects of kind `K` exist, in every namespace.
async fn count<K>(client: &Client) -> anyhow::Result<usize>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    Ok(Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .len())
}

/// What is still there, e.g. `2 Instances`, or `None` when everything is gone.
async fn left(client: &Client, networks_too: bool) -> anyhow::Result<Option<String>> {
    let mut left = vec![(count::<Instance>(client).await?, "Instances")];
    if networks_too {
        left.push((count::<NetworkContext>(client).await?, "NetworkContexts"));
        left.push((count::<Subnet>(client).await?, "Subnets"));
    }
    let text: Vec<String> = left
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    Ok((!text.is_empty()).then(|| text.join(", ")))
}

/// Waits until nothing of `left` remains, showing what does.
async fn drain(
    client: &Client,
    networks_too: bool,
    bar: &ProgressBar,
    deadline: Instant,
) -> anyhow::Result<()> {
    while let Some(remaining) = left(client, networks_too).await? {
        bar.set_message(format!("waiting for the provider to remove {remaining}"));
        if Instant::now() > deadline {
            bail!(
                "{remaining} are still there, so the state was kept; see `datum status -A` and the provider's conditions, then run `datum down --purge` again"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Removes every Workload (both forms), Instance and Network, and waits until the provider
/// has released all of them (at most `timeout`).
pub async fn remove_everything(client: &Client, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("deleting Workloads and Instances");
    // The short form first: it would make its canonical Workload again.
    delete_all::<short_form::Workload>(client).await?;
    delete_all::<Workload>(client).await?;
    delete_all::<WorkloadDeployment>(client).await?;
    delete_all::<Instance>(client).await?;
    let outcome = async {
        drain(client, false, &bar, deadline).await?;
        // Networks only once no interface uses them: the provider releases a bridge (and the
        // namespace holding it) when its last context goes.
        bar.set_message("deleting Networks");
        delete_all::<Network>(client).await?;
        drain(client, true, &bar, deadline).await
    }
    .await;
    bar.finish_and_clear();
    outcome
}
