//! Links inside provider-owned namespaces, over rtnetlink: the bridge of a network in its
//! Location's namespace (with the gateway address), and per instance interface a veth pair
//! whose host end is a bridge port and whose other end is `ethN` in the instance's
//! namespace, with the allocated address and a default route via the gateway.
//!
//! Every function is "ensure" (create what is missing, keep what exists) or "remove"
//! (delete if present).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::netns;

/// Errors from managing links.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] netns::Error),
    /// A netlink socket could not be opened.
    #[error("failed to open a netlink socket in {netns}: {source}")]
    Socket {
        /// The namespace.
        netns: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("failed to {what} in {netns}: {source}")]
    Netlink {
        /// What was attempted.
        what: String,
        /// The namespace.
        netns: String,
        /// The cause.
        #[source]
        source: rtnetlink::Error,
    },
    /// A link that was just made cannot be found.
    #[error("link {link} is missing in {netns}")]
    Missing {
        /// The link.
        link: String,
        /// The namespace.
        netns: String,
    },
}

/// A netlink handle bound to one namespace.
pub struct Netlink {
    handle: Handle,
    netns: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    /// Opens a netlink socket inside `netns` (the socket stays bound to it).
    pub fn open(netns_name: &str) -> Result<Self, Error> {
        let socket = |source| Error::Socket {
            netns: netns_name.to_owned(),
            source,
        };
        // The socket registers with the async runtime's reactor as it is made.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| socket(std::io::Error::other(e.to_string())))?;
        let (connection, handle, _) = netns::run_in(netns_name, move || {
            let _entered = runtime.enter();
            rtnetlink::new_connection()
        })?
        .map_err(socket)?;
        Ok(Self {
            handle,
            netns: netns_name.to_owned(),
            task: tokio::spawn(connection),
        })
    }

    fn fail(&self, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error + '_ {
        let what = what.into();
        move |source| Error::Netlink {
            what,
            netns: self.netns.clone(),
            source,
        }
    }

    /// The index of link `name`, if it exists.
    pub async fn index(&self, name: &str) -> Result<Option<u32>, Error> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(Some(link.header.index)),
            Ok(None) => Ok(None),
            // ENODEV: no such link.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
            Err(e) => Err(self.fail(format!("look up link {name}"))(e)),
        }
    }

    async fn must_index(&self, name: &str) -> Result<u32, Error> {
        self.index(name).await?.ok_or_else(|| Error::Missing {
            link: name.to_owned(),
            netns: self.netns.clone(),
        })
    }

    /// Brings link `name` up.
    pub async fn up(&self, name: &str) -> Result<(), Error> {
        let index = self.must_index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(self.fail(format!("bring {name} up")))
    }

    /// Adds `address/prefix` to link `name`; already there is success. IPv6 addresses skip
    /// duplicate address detection: IPAM made them unique, and they are usable at once.
    pub async fn ensure_address(
        &self,
        name: &str,
        address: IpAddr,
        prefix: u8,
    ) -> Result<(), Error> {
        let index = self.must_index(name).await?;
        let mut request = self.handle.address().add(index, address, prefix);
        if address.is_ipv6() {
            request.message_mut().header.flags |=
                rtnetlink::packet_route::address::AddressHeaderFlags::Nodad;
        }
        match request.execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(()), // EEXIST
            other => other.map_err(self.fail(format!("add {address}/{prefix} to {name}"))),
        }
    }

    /// Makes sure the bridge `name` exists, is up and holds each `gateway/prefix`.
    pub async fn ensure_bridge(&self, name: &str, gateways: &[(IpAddr, u8)]) -> Result<(), Error> {
        if self.index(name).await?.is_none() {
            match self
                .handle
                .link()
                .add(LinkBridge::new(name).up().build())
                .execute()
                .await
            {
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => {}
                other => other.map_err(self.fail(format!("create bridge {name}")))?,
            }
        }
        for (gateway, prefix) in gateways {
            self.ensure_address(name, *gateway, *prefix).await?;
        }
        self.up(name).await
    }

    /// Deletes link `name`; absent is success.
    pub async fn remove_link(&self, name: &str) -> Result<(), Error> {
        let Some(index) = self.index(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(()),
            other => other.map_err(self.fail(format!("delete link {name}"))),
        }
    }

    /// Names of the links whose name starts with `prefix`.
    pub async fn links(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(self.fail("list links"))?;
        Ok(links
            .into_iter()
            .filter_map(|l| {
                l.attributes.into_iter().find_map(|a| match a {
                    rtnetlink::packet_route::link::LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                })
            })
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    /// The addresses on link `name` but IPv6 link-local ones (empty when it does not exist).
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Error> {
        let Some(index) = self.index(name).await? else {
            return Ok(Vec::new());
        };
        let messages: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(self.fail(format!("list the addresses of {name}")))?;
        let mut out: Vec<IpAddr> = messages
            .into_iter()
            .flat_map(|m| m.attributes)
            .filter_map(|a| match a {
                rtnetlink::packet_route::address::AddressAttribute::Local(ip)
                | rtnetlink::packet_route::address::AddressAttribute::Address(ip) => Some(ip),
                _ => None,
            })
            .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// How many links have the link `name` as their controller (ports of a bridge).
    pub async fn ports(&self, name: &str) -> Result<usize, Error> {
        let Some(index) = self.index(name).await? else {
            return Ok(0);
        };
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(self.fail("list links"))?;
        Ok(links
            .iter()
            .filter(|l| {
                l.attributes.iter().any(|a| {
                    matches!(a, rtnetlink::packet_route::link::LinkAttribute::Controller(c) if *c == index)
                })
            })
            .count())
    }

    /// Adds a default route via `gateway`; already there is success.
    pub async fn ensure_default_route(&self, gateway: IpAddr) -> Result<(), Error> {
        let route = match gateway {
            IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new().gateway(v4).build(),
            IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new().gateway(v6).build(),
        };
        match self.handle.route().add(route).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -17 => Ok(()),
            other => other.map_err(self.fail(format!("add a default route via {gateway}"))),
        }
    }
}

/// One instance interface to attach.
#[derive(Clone, Debug)]
pub struct Attachment<'a> {
    /// The Location's namespace, which holds the bridge.
    pub location_netns: &'a str,
    /// The bridge.
    pub bridge: &'a str,
    /// The instance's namespace.
    pub instance_netns: &'a str,
    /// Host-side veth name.
    pub host_veth: &'a str,
    /// Temporary name of the instance side before it moves.
    pub peer_veth: &'a str,
    /// Name of the instance side inside the instance (`ethN`).
    pub interface: &'a str,
    /// The instance's addresses with their prefix lengths.
    pub addresses: &'a [(IpAddr, u8)],
    /// Default routes via these gateways (the bridge's addresses); `eth0` only.
    pub gateways: &'a [IpAddr],
}

/// Makes sure the instance interface is attached: veth pair, bridge port, address, route.
pub async fn ensure_attached(a: &Attachment<'_>) -> Result<(), Error> {
    let host = Netlink::open(a.location_netns)?;
    let inside = Netlink::open(a.instance_netns)?;
    let attached =
        host.index(a.host_veth).await?.is_some() && inside.index(a.interface).await?.is_some();
    if !attached {
        // A half-made pair (crash in between) is removed and made again.
        host.remove_link(a.host_veth).await?;
        host.remove_link(a.peer_veth).await?;
        host.handle
            .link()
            .add(LinkVeth::new(a.host_veth, a.peer_veth).build())
            .execute()
            .await
            .map_err(host.fail(format!("create veth {}", a.host_veth)))?;
        let peer = host.must_index(a.peer_veth).await?;
        let target = netns::open(a.instance_netns)?;
        host.handle
            .link()
            .set(
                LinkUnspec::new_with_index(peer)
                    .setns_by_fd(target.as_raw_fd())
                    .name(a.interface)
                    .build(),
            )
            .execute()
            .await
            .map_err(host.fail(format!("move {} into {}", a.peer_veth, a.instance_netns)))?;
    }
    let bridge = host.must_index(a.bridge).await?;
    let port = host.must_index(a.host_veth).await?;
    host.handle
        .link()
        .set(
            LinkUnspec::new_with_index(port)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(host.fail(format!("attach {} to {}", a.host_veth, a.bridge)))?;
    inside.up("lo").await?;
    for (address, prefix) in a.addresses {
        inside
            .ensure_address(a.interface, *address, *prefix)
            .await?;
    }
    inside.up(a.interface).await?;
    for gateway in a.gateways {
        inside.ensure_default_route(*gateway).await?;
    }
    Ok(())
}
