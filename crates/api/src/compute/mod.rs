//! `compute.datumapis.com/v1alpha`: Workload, WorkloadDeployment and Instance.
//!
//! A user writes a [`Workload`]: an instance template (containers in a sandbox, or a VM) and
//! placements saying where and how many. The control plane makes one [`WorkloadDeployment`]
//! per placement and Location, and each deployment keeps its number of [`Instance`]s; a
//! provider serving the Location runs each Instance and reports back in its status.
//!
//! | module | holds |
//! |---|---|
//! | `workload`, `workload_deployment`, `instance` | the three kinds and their statuses |
//! | `template`, `runtime`, `volume`, `network_interface` | the instance template and its parts |
//! | `placement`, `scale` | where instances run and how many |
//! | `references` | references to Locations, Workloads, Networks, Secrets |
//! | [`labels`], [`annotations`], [`finalizers`], [`scheduling_gates`], [`topology`], [`conditions`] | well-known strings |
//! | `validation`, `schema`, `optional_spec` | CEL rules and schema adjustments behind the CRDs |
//!
//! # Compatibility with upstream
//!
//! The kinds are wire-compatible with Datum's `compute` at b6c210a (2026-05-01): every field
//! of upstream's CRDs exists here with the same name, type, default and list semantics, the
//! printer columns are upstream's (so `Up-to-date` still reads `currentReplicas`; newer
//! upstream reads `updatedReplicas`), and upstream's samples apply unchanged. On top of that:
//!
//! - **Newer upstream** fields users write are accepted alongside the older ones: placements
//!   may pick Locations by `cityCodes`, `locationSelector` or `locations` (exactly one, see
//!   `placement`); `runtime.class`; container `command`, `args` and `envFrom`;
//!   `resources.instanceType` is optional. Controller-written fields take newer upstream's
//!   shape: WorkloadDeployment `spec.locationRef` and `spec.replicas` (with a `scale`
//!   subresource), `updatedReplicas` and `observedGeneration` in statuses, Location
//!   references by `name` (their `namespace` is optional and ignored). Older fields
//!   (`spec.cityCode`, `status.location`) stay, optional, so older objects validate.
//! - **Our superset** (DESIGN.md): `instanceManagementPolicy` is `OrderedReady` (default) or
//!   `Parallel`; `maxReplicas` and `metrics` drive a real autoscaler, on `cpu` or `memory`.
//! - **Validation** is CEL in the CRDs, on create and update, where upstream had a
//!   create-only webhook: one runtime; one volume source; DNS-label names for placements,
//!   containers, volumes and networks; IANA port names; volume attachments naming existing
//!   volumes, a VM's first one a disk; `minReplicas` 0 to 1000 (0 pauses a placement; the
//!   short form's `replicas: 0` maps onto it); `maxReplicas >= minReplicas`; `metrics`
//!   exactly when `maxReplicas` is set; metrics on `cpu` or `memory` with one target each;
//!   a placement picks its Locations one way, not empty. Lists and strings the rules walk carry generous
//!   `maxItems`/`maxLength` (e.g. 32 containers, 64 volumes, 8 network interfaces, 63-char
//!   names) so the API server accepts the rules' cost. Conditions get metav1's usual checks.
//!   Not carried over from the webhook: the `ssh-keys` annotation format, and upstream's fixed
//!   catalogue checks (instance type, image name, disk sizes), which belong to providers.
//! - **Upstream quirks**: `spec.gateway`, removed upstream but set in its `kong-gateway.yaml`
//!   sample, is accepted as a loose object and ignored (deprecated). WorkloadDeployment and
//!   Instance `spec` may be absent or null (upstream's scaffold sample has `spec:` null, which
//!   server-side apply keeps); such a spec reads as its `Default`.
//! - **Instance status** defaults to upstream's three `Unknown`/`Pending` conditions
//!   (`Programmed`, `Running`, `Ready`), not newer upstream's set (which drops `Running` for
//!   `Available` and adds quota).
//!
//! Not taken from newer upstream: network interface names and IPAM fields, container
//! `securityContext`, sandbox `sysctls`, `networkAttachment`, `suspended`, the quota and
//! referenced-data machinery, and the kinds InstanceType, RuntimeClass and
//! InstanceConsoleSession.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod conditions;
#[cfg(test)]
mod crd_tests;
mod gateway;
mod instance;
mod network_interface;
mod optional_spec;
mod placement;
mod references;
mod runtime;
mod scale;
mod schema;
mod template;
mod validation;
mod volume;
mod well_known;
mod workload;
mod workload_deployment;

pub use gateway::{GatewayStatusAddress, ListenerStatus, RouteGroupKind, WorkloadGatewayStatus};
pub use instance::{
    Instance, InstanceController, InstanceControllerStatus, InstanceNetworkInterfaceAssignments,
    InstanceNetworkInterfaceStatus, InstanceSpec, InstanceStatus, InstanceUsage, SchedulingGate,
};
pub use network_interface::{
    InstanceNetworkInterface, InstanceNetworkInterfaceNetworkPolicy, IpBlock,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
pub use placement::WorkloadPlacement;
pub use references::{LocalSecretReference, LocationReference, NetworkRef, WorkloadReference};
pub use runtime::{
    ContainerResourceRequirements, InstanceRuntimeResources, InstanceRuntimeSpec, NamedPort,
    SandboxContainer, SandboxRuntime, VirtualMachineRuntime, VolumeAttachment,
};
pub use scale::{
    HorizontalScaleSettings, InstanceManagementPolicy, MetricSpec, MetricTarget,
    ResourceMetricName, ResourceMetricSource,
};
pub use template::{InstanceTemplateSpec, TemplateMetadata};
pub use volume::{
    DEFAULT_DISK_TYPE, DiskPopulator, DiskResourceRequirements, DiskSpec, DiskTemplate,
    DiskTemplateVolumeSource, FilesystemDiskPopulator, FilesystemType, ImageDiskPopulator,
    InstanceVolume,
};
pub use well_known::{annotations, finalizers, labels, scheduling_gates, topology};
pub use workload::{Workload, WorkloadPlacementStatus, WorkloadSpec, WorkloadStatus};
pub use workload_deployment::{
    WorkloadDeployment, WorkloadDeploymentSpec, WorkloadDeploymentStatus,
};

/// The CRDs of this module's kinds.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Workload::crd(), WorkloadDeployment::crd(), Instance::crd()]
}
