//! Networks on the host: per Location a provider-owned namespace (loopback up, forwarding
//! on, the nftables isolation table), per network (a NetworkContext, or the network an
//! instance names) a bridge in it holding the gateway, and the attachments of instance
//! interfaces. Also the NetworkContext and Subnet clients: a context is its bridge; a
//! Subnet is recorded with the range the control plane's IPAM allocated, and its gateway
//! (the range's second address, which IPAM never hands out) goes on the bridge. Instances
//! configure the addresses IPAM assigned them; [`crate::ipam`] is the fallback for
//! instances that come without (e.g. a provider run without the control plane's IPAM).

use std::net::IpAddr;
use std::path::PathBuf;

use datum_api::networking::{NetworkContext, Subnet};
use datum_provider::{ExternalClient, ExternalResource, NetworkLive, Observation, PlatformError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::firewall::{self, BridgeRule, Fragment, Ruleset};
use crate::ipam;
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
}

/// A Subnet as the provider recorded it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubnetRecord {
    /// The Subnet's namespace (its network's).
    pub namespace: String,
    /// Its NetworkContext.
    pub network_context: String,
    /// Its Location.
    pub location: String,
    /// Its range, once allocated.
    pub cidr: Option<IpNet>,
}

impl SubnetRecord {
    /// The gateway of the range and its prefix length: the second address.
    pub fn gateway(&self) -> Option<(IpAddr, u8)> {
        let cidr = self.cidr?;
        let gateway = match cidr.network() {
            IpAddr::V4(n) => IpAddr::V4(u32::from(n).checked_add(1)?.into()),
            IpAddr::V6(n) => IpAddr::V6(u128::from(n).checked_add(1)?.into()),
        };
        Some((gateway, cidr.prefix_len()))
    }

    /// The network's key (`namespace/name`): the context is named `<network>-<location>`.
    pub fn network_key(&self) -> Option<String> {
        let network = self
            .network_context
            .strip_suffix(&format!("-{}", self.location))?;
        Some(names::network_key(&self.namespace, network))
    }
}

/// Where one policy file of a Location namespace lives.
fn policy_dir(state_dir: &std::path::Path, location_netns: &str) -> PathBuf {
    state_dir.join("policies").join(location_netns)
}

impl LocalHost {
    /// Makes sure the Location's namespace, the network's bridge (holding `gateways`) and
    /// the rules exist.
    pub async fn ensure_network(
        &self,
        location: &str,
        network_key: &str,
        gateways: &[(IpAddr, u8)],
    ) -> Result<HostNetwork, Error> {
        let _guard = self.network_lock.lock().await;
        let location_netns = self.names.location_netns(location);
        netns::ensure(&location_netns)?;
        netns::sysctl(&location_netns, "net.ipv4.ip_forward", "1")?;
        // Traffic bridged inside one network passes the forward hook too, so interface
        // policies hold between instances of the same network.
        netns::sysctl(&location_netns, "net.bridge.bridge-nf-call-iptables", "1")?;
        netns::sysctl(&location_netns, "net.bridge.bridge-nf-call-ip6tables", "1")?;
        let link = bridge::Netlink::open(&location_netns)?;
        link.up("lo").await?;
        let bridge_name = names::bridge(network_key);
        link.ensure_bridge(&bridge_name, gateways).await?;
        self.refresh_firewall(&location_netns, &link).await?;
        Ok(HostNetwork {
            location_netns,
            bridge: bridge_name,
        })
    }

    /// Records the policy layers of an instance (empty: removes them) and reloads the
    /// Location's rules.
    pub async fn set_policies(
        &self,
        location: &str,
        external_name: &str,
        fragment: &Fragment,
    ) -> Result<(), Error> {
        let _guard = self.network_lock.lock().await;
        let location_netns = self.names.location_netns(location);
        let dir = policy_dir(&self.state_dir, &location_netns);
        let path = dir.join(external_name);
        let record = |source| Error::Record {
            path: path.clone(),
            source,
        };
        if fragment.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(record(e)),
                _ => {}
            }
            // The directory goes with its last file.
            let _ = std::fs::remove_dir(&dir);
        } else {
            std::fs::create_dir_all(&dir).map_err(record)?;
            let tmp = path.with_extension("tmp");
            let body = serde_json::to_vec(fragment).unwrap_or_default();
            std::fs::write(&tmp, body).map_err(record)?;
            std::fs::rename(&tmp, &path).map_err(record)?;
        }
        if netns::exists(&location_netns) {
            let link = bridge::Netlink::open(&location_netns)?;
            self.refresh_firewall(&location_netns, &link).await?;
        }
        Ok(())
    }

    /// The policy layers recorded for an instance (none: empty).
    pub fn recorded_policies(&self, location: &str, external_name: &str) -> Fragment {
        let location_netns = self.names.location_netns(location);
        let path = policy_dir(&self.state_dir, &location_netns).join(external_name);
        std::fs::read(path)
            .ok()
            .and_then(|body| serde_json::from_slice(&body).ok())
            .unwrap_or_default()
    }

    async fn refresh_firewall(
        &self,
        location_netns: &str,
        link: &bridge::Netlink,
    ) -> Result<(), Error> {
        let mut bridges = link.links("br-").await?;
        bridges.sort();
        let mut rules = Vec::new();
        for bridge in bridges {
            let gateways = link.addresses(&bridge).await?;
            rules.push(BridgeRule { bridge, gateways });
        }
        let mut fragments: Vec<(String, Fragment)> =
            std::fs::read_dir(policy_dir(&self.state_dir, location_netns))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_none())
                .filter_map(|e| {
                    let body = std::fs::read(e.path()).ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        serde_json::from_slice(&body).ok()?,
                    ))
                })
                .collect();
        fragments.sort_by(|a, b| a.0.cmp(&b.0));
        let fragments: Vec<Fragment> = fragments.into_iter().map(|(_, f)| f).collect();
        let ruleset = Ruleset::new(&rules, &fragments);
        let applied = self.applied_rules(location_netns);
        if let Err(e) = firewall::apply(location_netns, &ruleset, applied.as_ref()).await {
            self.forget_rules(location_netns);
            return Err(e.into());
        }
        if let Ok(mut map) = self.applied_rules.lock() {
            map.insert(location_netns.to_owned(), ruleset);
        }
        Ok(())
    }

    fn applied_rules(&self, location_netns: &str) -> Option<Ruleset> {
        self.applied_rules
            .lock()
            .ok()
            .and_then(|m| m.get(location_netns).cloned())
    }

    fn forget_rules(&self, location_netns: &str) {
        if let Ok(mut map) = self.applied_rules.lock() {
            map.remove(location_netns);
        }
    }

    /// The recorded Subnets.
    pub fn subnet_records(&self) -> Vec<SubnetRecord> {
        std::fs::read_dir(self.state_dir.join("subnets"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect()
    }

    /// The recorded Subnet of `network_context` (in `namespace`) whose range holds
    /// `address`.
    pub fn subnet_for(
        &self,
        namespace: &str,
        network_context: &str,
        address: IpAddr,
    ) -> Option<SubnetRecord> {
        self.subnet_records().into_iter().find(|s| {
            s.namespace == namespace
                && s.network_context == network_context
                && s.cidr.is_some_and(|c| c.contains(&address))
        })
    }

    /// Gateways of the Subnets recorded for a NetworkContext.
    fn context_gateways(&self, namespace: &str, network_context: &str) -> Vec<(IpAddr, u8)> {
        self.subnet_records()
            .iter()
            .filter(|s| s.namespace == namespace && s.network_context == network_context)
            .filter_map(SubnetRecord::gateway)
            .collect()
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
            self.forget_rules(&location_netns);
        } else {
            self.refresh_firewall(&location_netns, &link).await?;
        }
        Ok(())
    }

    /// Attaches an interface of an instance to its network, with its address.
    pub async fn attach(
        &self,
        planned: &crate::instance::PlannedInterface,
        external_name: &str,
        instance_netns: &str,
    ) -> Result<(), Error> {
        let (network, index) = (&planned.network, planned.index);
        let addresses: Vec<(IpAddr, u8)> = planned
            .addresses
            .iter()
            .map(|a| (a.address, a.prefix))
            .collect();
        let gateways: Vec<IpAddr> = if index == 0 {
            planned.addresses.iter().map(|a| a.gateway).collect()
        } else {
            Vec::new()
        };
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
            addresses: &addresses,
            gateways: &gateways,
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
        let (location, key) = context_key(r);
        self.write_record("contexts", &r.external_name, &format!("{location}\n{key}"))?;
        let gateways = self.context_gateways(r.namespace, r.name);
        self.ensure_network(&location, &key, &gateways).await?;
        self.hang_after_create().await;
        Ok(r.external_name.clone())
    }

    async fn update(
        &self,
        _id: &str,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<(), PlatformError> {
        let (location, key) = context_key(r);
        let gateways = self.context_gateways(r.namespace, r.name);
        self.ensure_network(&location, &key, &gateways).await?;
        Ok(())
    }

    async fn delete(
        &self,
        _id: &str,
        r: &ExternalResource<'_, NetworkContext>,
    ) -> Result<(), PlatformError> {
        let (location, key) = context_key(r);
        self.remove_record("contexts", &r.external_name)?;
        self.release_network(&location, &key).await?;
        Ok(())
    }
}

fn subnet_record(r: &ExternalResource<'_, Subnet>) -> SubnetRecord {
    SubnetRecord {
        namespace: r.namespace.to_owned(),
        network_context: r.spec.network_context.name.clone(),
        location: r.spec.location.name.clone(),
        cidr: r.spec.cidr().and_then(|c| c.parse().ok()),
    }
}

impl LocalHost {
    /// Records the Subnet and puts its gateway on its network's bridge.
    async fn program_subnet(&self, r: &ExternalResource<'_, Subnet>) -> Result<(), Error> {
        let record = subnet_record(r);
        let body = serde_json::to_string(&record).unwrap_or_default();
        self.write_record("subnets", &r.external_name, &body)?;
        if let (Some(gateway), Some(key)) = (record.gateway(), record.network_key()) {
            self.ensure_network(&record.location, &key, &[gateway])
                .await?;
        }
        Ok(())
    }
}

impl ExternalClient<Subnet> for LocalHost {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Subnet>,
    ) -> Result<Observation<NetworkLive>, PlatformError> {
        let recorded = std::fs::read(self.record("subnets", &r.external_name))
            .ok()
            .map(|body| serde_json::from_slice::<SubnetRecord>(&body).ok());
        Ok(match recorded {
            None => Observation::Absent,
            Some(record) => Observation::Exists {
                id: r.external_name.clone(),
                up_to_date: record.as_ref() == Some(&subnet_record(r)),
                live: NetworkLive {
                    provider_id: Some(format!("local://subnet/{}", r.external_name)),
                },
            },
        })
    }

    async fn create(&self, r: &ExternalResource<'_, Subnet>) -> Result<String, PlatformError> {
        self.program_subnet(r).await?;
        self.hang_after_create().await;
        Ok(r.external_name.clone())
    }

    async fn update(
        &self,
        _id: &str,
        r: &ExternalResource<'_, Subnet>,
    ) -> Result<(), PlatformError> {
        Ok(self.program_subnet(r).await?)
    }

    async fn delete(
        &self,
        _id: &str,
        r: &ExternalResource<'_, Subnet>,
    ) -> Result<(), PlatformError> {
        Ok(self.remove_record("subnets", &r.external_name)?)
    }
}
