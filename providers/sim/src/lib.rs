//! The simulated cloud: the provider SDK's smallest complete example, and the engine of the
//! chaos and conformance tests.
//!
//! | module | what it holds |
//! |---|---|
//! | [`provider`] | [`SimProvider`]: the provider's name, its config kind, and `connect` |
//! | [`cloud`] | [`SimCloud`]: observe / create / update / delete, with latency, errors and failure points |
//! | [`ledger`] | the file-backed record of everything that exists, which survives SIGKILL |

pub mod cloud;
pub mod ledger;
pub mod provider;

pub use cloud::SimCloud;
pub use provider::SimProvider;
