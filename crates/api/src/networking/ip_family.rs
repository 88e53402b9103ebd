//! IP address families, as the networking kinds name them on the wire (`IPv4`, `IPv6`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An IP address family.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum IpFamily {
    // Plain comments, not doc comments, on the variants: documented variants make schemars
    // emit a `oneOf` where Kubernetes wants a plain `enum`.
    #[serde(rename = "IPv4")]
    Ipv4,
    #[serde(rename = "IPv6")]
    Ipv6,
}

impl IpFamily {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "IPv4",
            IpFamily::Ipv6 => "IPv6",
        }
    }

    /// The number of bits in an address of this family.
    pub fn address_bits(self) -> u8 {
        match self {
            IpFamily::Ipv4 => 32,
            IpFamily::Ipv6 => 128,
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
