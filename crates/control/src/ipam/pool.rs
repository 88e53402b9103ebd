//! CIDR arithmetic for allocation: which host addresses of a subnet may be handed out, and
//! which aligned blocks of a range may become subnets. Pure functions, no API calls.
//!
//! Host addresses skip the subnet's first address (the network address, IPv6's
//! subnet-router anycast) and second (the gateway), and IPv4's last (broadcast). Blocks
//! are every aligned block of the requested length, in address order.
//!
//! ```
//! use datum_control::ipam::pool::Pool;
//!
//! let pool = Pool::hosts("10.0.0.0/29".parse().expect("a CIDR"));
//! let hosts: Vec<String> = pool.candidates().map(|a| a.to_string()).collect();
//! assert_eq!(hosts, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
//!
//! let blocks = Pool::blocks("10.128.0.0/9".parse().expect("a CIDR"), 20).expect("fits");
//! assert_eq!(blocks.candidates().nth(1).map(|b| b.to_string()).as_deref(), Some("10.128.16.0"));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("a /{length} block does not fit in {range}")]
    BlockTooLarge { range: IpNet, length: u8 },
}

/// Where allocations come from: a range, cut into allocations of `length` bits of prefix
/// (the family's full length for host addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    range: IpNet,
    length: u8,
    skip_first: u128,
    skip_last: u128,
}

impl Pool {
    /// The host addresses of `subnet` that may be assigned.
    pub fn hosts(subnet: IpNet) -> Self {
        let subnet = subnet.trunc();
        let skip_last = match subnet {
            IpNet::V4(_) => 1,
            IpNet::V6(_) => 0,
        };
        Self {
            range: subnet,
            length: subnet.max_prefix_len(),
            skip_first: 2,
            skip_last,
        }
    }

    /// The aligned `/length` blocks of `range`. A range shorter than `length` bits is one
    /// block: the range itself.
    pub fn blocks(range: IpNet, length: u8) -> Result<Self, PoolError> {
        let range = range.trunc();
        if length > range.max_prefix_len() {
            return Err(PoolError::BlockTooLarge { range, length });
        }
        Ok(Self {
            range,
            length: length.max(range.prefix_len()),
            skip_first: 0,
            skip_last: 0,
        })
    }

    /// The range allocations come from.
    pub fn range(&self) -> IpNet {
        self.range
    }

    /// The prefix length of each allocation.
    pub fn length(&self) -> u8 {
        self.length
    }

    /// How many allocations the pool holds in all.
    pub fn size(&self) -> u128 {
        self.slots()
            .saturating_sub(self.skip_first)
            .saturating_sub(self.skip_last)
    }

    fn slots(&self) -> u128 {
        let bits = u32::from(self.length - self.range.prefix_len());
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// Every allocation's first address, in address order.
    pub fn candidates(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let base = to_u128(self.range.network());
        let step_bits = u32::from(self.range.max_prefix_len() - self.length);
        let step = 1u128.checked_shl(step_bits).unwrap_or(0);
        let end = self.slots().saturating_sub(self.skip_last);
        (self.skip_first..end)
            .map(move |index| from_u128(self.range, base.wrapping_add(index.wrapping_mul(step))))
    }

    /// The allocation starting at `start`, as a CIDR.
    pub fn allocation(&self, start: IpAddr) -> IpNet {
        IpNet::new(start, self.length).unwrap_or(self.range)
    }
}

/// Whether two ranges share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(range: IpNet, value: u128) -> IpAddr {
    match range {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("a CIDR")
    }

    #[test]
    fn host_pools_skip_network_gateway_and_broadcast() {
        assert_eq!(Pool::hosts(net("10.0.0.0/30")).size(), 1);
        assert_eq!(Pool::hosts(net("10.0.0.0/22")).size(), 1021);
        assert_eq!(Pool::hosts(net("10.0.0.0/32")).candidates().count(), 0);
        let v6 = Pool::hosts(net("fd00:1::/64"));
        assert_eq!(
            v6.candidates().next(),
            Some("fd00:1::2".parse().expect("addr"))
        );
        assert_eq!(v6.size(), (1u128 << 64) - 2);
    }

    #[test]
    fn blocks_are_aligned_and_bounded() {
        let pool = Pool::blocks(net("fd12:3456:789a::/48"), 64).expect("fits");
        assert_eq!(pool.size(), 65536);
        assert_eq!(
            pool.candidates().nth(3),
            Some("fd12:3456:789a:3::".parse().expect("addr"))
        );
        let small = Pool::blocks(net("10.0.0.0/29"), 20).expect("the range itself");
        assert_eq!(small.size(), 1);
        assert_eq!(
            small.allocation(net("10.0.0.0/29").network()),
            net("10.0.0.0/29")
        );
        assert!(Pool::blocks(net("10.0.0.0/8"), 33).is_err());
        assert!(overlaps(&net("10.0.0.0/20"), &net("10.0.15.0/24")));
        assert!(!overlaps(&net("10.0.0.0/20"), &net("10.0.16.0/24")));
    }
}
