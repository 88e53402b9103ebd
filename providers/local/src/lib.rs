//! The local provider: runs Datum instances for real on the Linux host it is on.
//!
//! Containers run under containerd and runc (images pulled with `oci-client` and unpacked by
//! the provider, overlay root filesystems, cgroup limits from the instance type). Networks
//! live in provider-owned namespaces: per Location one namespace holding a bridge per
//! network and an nftables table that keeps networks apart; per instance one namespace
//! with a veth on its network's bridge. Nothing is ever added to the host's own network
//! namespace. Every name derives from the SDK's external name, so a restarted provider
//! adopts what exists; deleting an instance removes its containers, namespace, veths,
//! files and addresses (and its network's bridge once unused).
//!
//! | module | what it holds |
//! |---|---|
//! | [`names`] | deterministic host names (namespaces, bridges, veths, containers) |
//! | [`runtime_spec`] | the OCI runtime spec of a container |
//! | [`volumes`] | configMap and secret volumes as files |
//! | [`env`] | container environment from ConfigMaps, Secrets and the Instance itself (`valueFrom`, `envFrom`, `fieldRef`) |
//! | [`usage`] | CPU and memory usage from cgroups (containers) and `/proc` (VMs) |
//! | [`netns`] | provider-owned network namespaces |
//! | [`bridge`] | bridges, veth pairs, addresses and routes over rtnetlink |
//! | [`containerd`] | the containerd daemon and client: containers and tasks |
//! | [`firewall`] | nftables isolation between networks; loading policy fragments |
//! | [`policy`] | interface network policies as nftables statements |
//! | [`network_policy`] | an instance's policy layers (interface policy, NetworkPolicy objects) as chains and sets |
//! | [`image`] | pulling images and unpacking them on disk |
//! | [`provider`] | [`LocalProvider`] and the connected [`LocalHost`] |
//! | [`instance`] | instances as containers: observe / create / update / delete |
//! | [`network`] | Location namespaces, bridges, attachments; NetworkContext and Subnet |
//! | [`ipam`] | the fallback address allocator (IPAM's assignments come first) |
//! | [`logs`] | where instances' output is kept (containers' logs, VMs' serial consoles) |
//! | [`vm`] | instances as QEMU virtual machines: disks, NoCloud seeds, QMP |

pub mod bridge;
pub mod containerd;
pub mod env;
pub mod firewall;
pub mod image;
pub mod instance;
pub mod ipam;
pub mod logs;
pub mod names;
pub mod netns;
pub mod network;
pub mod network_policy;
pub mod policy;
pub mod provider;
pub mod runtime_spec;
pub mod usage;
pub mod vm;
pub mod volumes;

pub use provider::{Faults, LocalHost, LocalProvider};
