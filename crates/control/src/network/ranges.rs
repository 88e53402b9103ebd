//! A Network's address ranges, and the length of the subnet each NetworkContext gets.
//!
//! | family | range | subnet per context |
//! |---|---|---|
//! | IPv4 | `spec.ipam.ipv4Range`, else [`NetworkSettings::ipv4_range`] (`10.128.0.0/9`, upstream's documented default) | [`NetworkSettings::ipv4_subnet_length`] (/20): 2,048 contexts of 4,093 hosts |
//! | IPv6 | `spec.ipam.ipv6Range`, else a ULA /48 derived from the Network's UID ([`ula_prefix`]) | [`NetworkSettings::ipv6_subnet_length`] (/64) |
//!
//! A range smaller than the subnet length is used whole, as one subnet, so a Network can
//! ask for small subnets by giving a small range.
//!
//! ```
//! use datum_control::network::ranges::ula_prefix;
//!
//! let prefix = ula_prefix("6f1c1e8a-5d0b-4c36-9a43-1b1f0a0e2c11");
//! assert_eq!(prefix.prefix_len(), 48);
//! assert_eq!(prefix.network().segments()[0] >> 8, 0xfd);
//! assert_eq!(prefix, ula_prefix("6f1c1e8a-5d0b-4c36-9a43-1b1f0a0e2c11"));
//! ```

use std::net::Ipv6Addr;

use datum_api::networking::{IpFamily, Network};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kube::ResourceExt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("the {family} range {value:?} of network {network} is not a CIDR of that family")]
    Invalid {
        family: IpFamily,
        network: String,
        value: String,
    },
    #[error("network {0} has no UID yet to derive its IPv6 range from")]
    NoUid(String),
}

/// The controller-wide defaults for Network ranges and subnet sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSettings {
    /// The IPv4 range of a Network that names none.
    pub ipv4_range: Ipv4Net,
    /// The prefix length of each context's IPv4 subnet.
    pub ipv4_subnet_length: u8,
    /// The prefix length of each context's IPv6 subnet.
    pub ipv6_subnet_length: u8,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            ipv4_range: Ipv4Net::new(std::net::Ipv4Addr::new(10, 128, 0, 0), 9).unwrap_or_default(),
            ipv4_subnet_length: 20,
            ipv6_subnet_length: 64,
        }
    }
}

impl NetworkSettings {
    /// The prefix length of each context's subnet of `family`.
    pub fn subnet_length(&self, family: IpFamily) -> u8 {
        match family {
            IpFamily::Ipv4 => self.ipv4_subnet_length,
            IpFamily::Ipv6 => self.ipv6_subnet_length,
        }
    }
}

/// The range of `family` that `network`'s subnets are cut from.
pub fn range(
    network: &Network,
    family: IpFamily,
    settings: &NetworkSettings,
) -> Result<IpNet, RangeError> {
    let explicit = match family {
        IpFamily::Ipv4 => network.spec.ipam.ipv4_range.as_deref(),
        IpFamily::Ipv6 => network.spec.ipam.ipv6_range.as_deref(),
    };
    if let Some(value) = explicit {
        let parsed: Option<IpNet> = match family {
            IpFamily::Ipv4 => value.parse::<Ipv4Net>().ok().map(IpNet::V4),
            IpFamily::Ipv6 => value.parse::<Ipv6Net>().ok().map(IpNet::V6),
        };
        return parsed
            .map(|net| net.trunc())
            .ok_or_else(|| RangeError::Invalid {
                family,
                network: network.name_any(),
                value: value.to_owned(),
            });
    }
    match family {
        IpFamily::Ipv4 => Ok(IpNet::V4(settings.ipv4_range.trunc())),
        IpFamily::Ipv6 => network
            .uid()
            .map(|uid| IpNet::V6(ula_prefix(&uid)))
            .ok_or_else(|| RangeError::NoUid(network.name_any())),
    }
}

/// The unique local /48 (RFC 4193: `fd00::/8` plus a 40-bit global ID) of the Network of
/// `uid`. The global ID is the top 40 bits of FNV-1a-64 of the UID: deterministic, so every
/// controller (and a restarted one) derives the same prefix without storing it first.
pub fn ula_prefix(uid: &str) -> Ipv6Net {
    let hash = fnv1a(uid.as_bytes());
    let global_id = hash >> 24; // 40 bits
    let value = (0xfdu128 << 120) | (u128::from(global_id) << 80);
    Ipv6Net::new(Ipv6Addr::from(value), 48).unwrap_or_default()
}

/// FNV-1a, 64 bits: stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datum_api::networking::{IpamMode, NetworkIpam, NetworkSpec};

    #[test]
    fn explicit_ranges_win_and_defaults_fill_in() {
        let mut network = Network::new("n", NetworkSpec::new(NetworkIpam::new(IpamMode::Auto)));
        let settings = NetworkSettings::default();
        assert_eq!(
            range(&network, IpFamily::Ipv4, &settings).map(|r| r.to_string()),
            Ok("10.128.0.0/9".to_owned())
        );
        assert_eq!(
            range(&network, IpFamily::Ipv6, &settings),
            Err(RangeError::NoUid("n".into()))
        );
        network.metadata.uid = Some("u".into());
        let v6 = range(&network, IpFamily::Ipv6, &settings).expect("derived");
        assert!("fd00::/8".parse::<IpNet>().expect("cidr").contains(&v6));
        network.spec.ipam.ipv4_range = Some("192.168.7.9/24".into());
        assert_eq!(
            range(&network, IpFamily::Ipv4, &settings).map(|r| r.to_string()),
            Ok("192.168.7.0/24".to_owned())
        );
    }

    #[test]
    fn distinct_uids_get_distinct_prefixes() {
        assert_ne!(ula_prefix("a"), ula_prefix("b"));
    }
}
