//! IP address management: the Network's ranges are cut into one subnet block per
//! NetworkContext and family, and each subnet into one host address per Instance interface
//! and family.
//!
//! Every allocation is one [`IpAddress`](datum_api::networking::IpAddress) object with a
//! name derived from what it allocates, so the API server's atomic create is the lock —
//! conflict-free across workers, processes and restarts, with nothing held in memory that
//! matters for correctness. [`pool`] does the CIDR arithmetic; [`allocator`] talks to the
//! API server.

pub mod allocator;
pub mod pool;

pub use allocator::{Allocator, AllocatorError, BlockRequest, Holder, HostRequest};
