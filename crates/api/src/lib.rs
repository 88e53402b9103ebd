//! The Datum API: Rust types for every kind the system serves, and the CRDs generated
//! from them.
//!
//! | module | group/version | kinds |
//! |---|---|---|
//! | [`compute`] | `compute.datumapis.com/v1alpha` | Workload, WorkloadDeployment, Instance |
//! | [`networking`] | `networking.datumapis.com/v1alpha` | Location, Network, NetworkBinding, NetworkContext, Subnet, SubnetClaim, NetworkPolicy |
//! | [`short_form`] | `workload.datum.net/v1alpha1` | Workload (the short form from the product docs) |
//! | [`provider_config`] | `<provider>.provider.datum.net/v1alpha1` | ProviderConfig for `gcp` and `local` |
//!
//! [`conditions`] holds the condition helpers every controller shares; [`crds`] lists the
//! generated CustomResourceDefinitions and renders them as YAML.

pub mod compute;
pub mod conditions;
pub mod crds;
pub mod networking;
pub mod provider_config;
pub mod short_form;
