//! Networks on the host: per Location a provider-owned namespace (loopback up, forwarding
//! on, the nftables isolation table), per network (a NetworkContext, or the network an
//! instance names) a bridge in it holding the gateway, and the attachments of instance
//! interfaces. Also the NetworkContext and Subnet clients: a context is its bridge; a
//! Subnet is recorded (its range is the network's, see [`crate::ipam`]).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use datum_api::networking::{NetworkContext, Subnet};
use datum_provider::{ExternalClient, ExternalResource, NetworkLive, Observation, PlatformError};

use crate::firewall::{self, BridgeRule};
use crate::ipam::{self, NetworkRange};
use crate::provider::LocalHost;
use crate::{bridge, names, netns};

/// Errors from managing networks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] netns::Error),
    /// A link operation failed.
    #[error(transparent)]
    Link(#[from] bridge::Error),
    /// Loading rules failed.
    #[error(transparent)]
    Firewall(#[from] firewall::Error),
    /// Allocating failed.
    #[error(transparent)]
    Ipam(#[from] ipam::Error),
    /// A record could not be written.
    #[error("failed to record {path}: {source}")]
    Record {
        /// The record.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<Error> for PlatformError {
    fn from(e: Error) -> Self {
        PlatformError {
            reason: "NetworkFailed".to_owned(),
            message: e.to_string(),
        }
    }
}

/// One network as it exists on the host.
#[derive(Clone, Debug)]
pub struct HostNetwork {
    /// The Location's namespace.
    pub location_netns: String,
    /// The bridge.
    pub bridge: String,
    /// The range.
    pub range: NetworkRange,
}

impl LocalHost {
    /// Makes sure the Location's namespace, the network's bridge and the rules exist.
    pub async fn ensure_network(
        &self,
        location: &str,
        network_key: &str,
    ) -> Result<HostNetwork, Error> {
        let _guard = self.network_lock.lock().await;
        let location_netns = self.names.location_netns(location);
        netns::ensure(&location_netns)?;
        netns::sysctl(&location_netns, "net.ipv4.ip_forward", "1")?;
        let link = bridge::Netlink::open(&location_netns)?;
        link.up("lo").await?;
        let range = self.ipam.network(network_key)?;
        let bridge_name = names::bridge(network_key);
        link.ensure_bridge(&bridge_name, range.gateway(), NetworkRange::PREFIX)
            .await?;
        self.refresh_firewall(&location_netns, &link).await?;
        Ok(HostNetwork {
            location_netns,
            bridge: bridge_name,
            range,
        })
    }

    async fn refresh_firewall(
        &self,
        location_netns: &str,
        link: &bridge::Netlink,
    ) -> Result<(), Error> {
        let present = link.links("br-").await?;
        let mut rules: Vec<BridgeRule> = self
            .ipam
            .networks()
            .into_iter()
            .map(|(key, range)| BridgeRule {
                bridge: names::bridge(&key),
                gateway: range.gateway(),
            })
            .filter(|r| present.contains(&r.bridge))
            .collect();
        rules.sort_by(|a, b| a.bridge.cmp(&b.bridge));
        firewall::apply(location_netns, &rules).await?;
        Ok(())
    }

    /// Removes the network's bridge when nothing is attached to it and no NetworkContext
    /// holds it, and the Location's namespace when it has no bridge left.
    pub async fn release_network(&self, location: &str, network_key: &str) -> Result<(), Error> {
        let _guard = self.network_lock.lock().await;
        let location_netns = self.names.location_netns(location);
        if !netns::exists(&location_netns) {
            return Ok(());
        }
        let held = std::fs::read_dir(self.state_dir.join("contexts"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|k| k == format!("{location}\n{network_key}"))
            });
        let link = bridge::Netlink::open(&location_netns)?;
        let bridge_name = names::bridge(network_key);
        if !held && link.ports(&bridge_name).await? == 0 {
            link.remove_link(&bridge_name).await?;
            self.ipam.release_network(network_key)?;
        }
        if link.links("br-").await?.is_empty() {
            drop(link);
            netns::remove(&location_netns)?;
        } else {
            self.refresh_firewall(&location_netns, &link).await?;
        }
        Ok(())
    }

    /// Attaches interface `index` of an instance to `network`, with `address`.
    pub async fn attach(
        &self,
        network: &HostNetwork,
        external_name: &str,
        instance_netns: &str,
        index: usize,
        address: Ipv4Addr,
    ) -> Result<(), Error> {
        let host_veth = names::host_veth(external_name, index);
        let peer_veth = names::peer_veth(external_name, index);
        let interface = names::instance_interface(index);
        bridge::ensure_attached(&bridge::Attachment {
            location_netns: &network.location_netns,
            bridge: &network.bridge,
            instance_netns,
            host_veth: &host_veth,
            peer_veth: &peer_veth,
            interface: &interface,
            address,
            prefix: NetworkRange::PREFIX,
            gateway: (index == 0).then(|| network.range.gateway()),
        })
        .await?;
        Ok(())
    }

    fn record(&self, kind: &str, external_name: &str) -> PathBuf {
        self.state_dir.join(kind).join(external_name)
    }

    fn write_record(&self, kind: &str, external_name: &str, body: &str) -> Result<(), Error> {
        let path = self.record(kind, external_name);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, body)
        };
        write().map_err(|source| Error::Record {
            path: path.clone(),
            source,
        })
    }

    fn remove_record(&self, kind: &str, external_name: &str) -> Result<(), Error> {
        let path = self.record(kind, external_name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Record { path, source: e })
            }
            _ => Ok(()),
        }
    }
}

fn context_key(r: &ExternalResource<'_, NetworkContext>) -> (String, String) {
    (
        r.spec.location.name.clone(),
        names::network_key(r.namespace, &r.spec.network.name),
    )
}

impl ExternalClient<NetworkContext> for LocalHost {
    async fn observe(
        &self,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<Observation<NetworkLive>, PlatformError> {
        self.check_reachable().await?;
        if !self.record("contexts", &r.external_name).exists() {
            return Ok(Observation::Absent);
        }
        let (location, key) = context_key(r);
        let location_netns = self.names.location_netns(&location);
        let bridge_name = names::bridge(&key);
        let up_to_date = netns::exists(&location_netns)
            && bridge::Netlink::open(&location_netns)
                .map_err(Error::from)?
                .index(&bridge_name)
                .await
                .map_err(Error::from)?
                .is_some();
        Ok(Observation::Exists {
            id: r.external_name.clone(),
            up_to_date,
            live: NetworkLive {
                provider_id: Some(format!("local://{location_netns}/{bridge_name}")),
            },
        })
    }

    async fn create(
        &self,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<String, PlatformError> {
        self.check_reachable().await?;
        let (location, key) = context_key(r);
        self.write_record("contexts", &r.external_name, &format!("{location}\n{key}"))?;
        self.ensure_network(&location, &key).await?;
        self.hang_after_create().await;
        Ok(r.external_name.clone())
    }

    async fn update(
        &self,
        _id: &str,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<(), PlatformError> {
        self.check_reachable().await?;
        let (location, key) = context_key(r);
        self.ensure_network(&location, &key).await?;
        Ok(())
    }

    async fn delete(
        &self,
        _id: &str,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<(), PlatformError> {
        self.check_reachable().await?;
        let (location, key) = context_key(r);
        self.remove_record("contexts", &r.external_name)?;
        self.release_network(&location, &key).await?;
        Ok(())
    }
}

impl ExternalClient<Subnet> for LocalHost {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Subnet>,
    ) -> Result<Observation<NetworkLive>, PlatformError> {
        self.check_reachable().await?;
        Ok(if self.record("subnets", &r.external_name).exists() {
            Observation::Exists {
                id: r.external_name.clone(),
                up_to_date: true,
                live: NetworkLive {
                    provider_id: Some(format!("local://subnet/{}", r.external_name)),
                },
            }
        } else {
            Observation::Absent
        })
    }

    async fn create(&self, r: &ExternalResource<'_, Subnet>) -> Result<String, PlatformError> {
        self.check_reachable().await?;
        self.write_record("subnets", &r.external_name, r.name)?;
        self.hang_after_create().await;
        Ok(r.external_name.clone())
    }

    async fn update(
        &self,
        _id: &str,
        _r: &ExternalResource<'_, Subnet>,
    ) -> Result<(), PlatformError> {
        self.check_reachable().await
    }

    async fn delete(
        &self,
        _id: &str,
        r: &ExternalResource<'_, Subnet>,
    ) -> Result<(), PlatformError> {
        self.check_reachable().await?;
        Ok(self.remove_record("subnets", &r.external_name)?)
    }
}
