//! The GCP provider: Datum Instances, NetworkContexts and Subnets as Compute Engine
//! instances, VPC networks and subnetworks, behind the provider SDK's seam.
//!
//! **Client.** A lean client on the documented Compute Engine REST API (`compute/v1`) over
//! hyper + rustls, not Google's generated `google-cloud-compute-v1` crate: that crate is
//! ~50 MB of generated source (3.5 MB compressed, 125 feature flags) and its default TLS
//! backend builds aws-lc-rs from C — minutes and gigabytes per build on our shared 2-core
//! machines, for the dozen endpoints used here. The official crates can take an endpoint
//! override, so this is a cost decision, not a capability one; the wire format is the same
//! either way and the fake (crate `datum-gcp-fake`) serves it. The same holds for the few
//! Secret Manager calls (`secretmanager.googleapis.com/v1`), which deliver configMap and
//! secret volumes without putting a value in instance metadata.
//!
//! | module | what it holds |
//! |---|---|
//! | [`provider`] | [`GcpProvider`]: name, config kind, `connect` |
//! | [`auth`] | service-account key → signed JWT → OAuth2 access token, or Workload Identity Federation (STS exchange, impersonation), cached |
//! | [`http`] | the HTTPS (or loopback HTTP) transport |
//! | [`compute`] | the REST client: errors, request IDs, per-project rate limit, and one module per resource |
//! | [`operations`] | polling zone / region / global operations to `DONE` |
//! | [`paging`] | reading a Google list to its last page (`nextPageToken`), for every list call |
//! | [`location`] | where a resource goes: project, region, zone from the Location |
//! | [`cloud_init`] | the `user-data` of VMs and of Container-Optimized OS sandbox hosts |
//! | [`ssh_keys`] | the `compute.datumapis.com/ssh-keys` annotation → `ssh-keys` metadata |
//! | [`volumes`] | configMap and secret volumes, read for delivery through Secret Manager |
//! | [`secret_manager`] | the Secret Manager calls: secrets, versions, accessor grants |
//! | [`monitoring`] | usage figures (CPU, Ops Agent memory) from Cloud Monitoring, fetched per project at most once a minute |
//!
//! How to run it against real GCP — credentials, IAM permissions, a worked example — is
//! in `docs/providers/gcp.md`.

pub mod auth;
pub mod cloud_init;
pub mod compute;
pub mod http;
pub mod location;
pub mod monitoring;
pub mod operations;
pub mod paging;
pub mod provider;
pub mod secret_manager;
pub mod ssh_keys;
pub mod volumes;

pub use provider::GcpProvider;
