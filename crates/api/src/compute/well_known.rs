//! Label, annotation, finalizer and scheduling-gate keys the compute kinds carry.
//!
//! The strings are upstream's (`compute.datumapis.com/...`), so objects written by Datum's Go
//! controllers and by ours read the same. Import the submodule you need:
//!
//! ```
//! use datum_api::compute::labels;
//!
//! let selector = format!("{}={}", labels::WORKLOAD_DEPLOYMENT_UID, "1234");
//! assert_eq!(selector, "compute.datumapis.com/workload-deployment-uid=1234");
//! ```

/// Labels stamped on WorkloadDeployments and Instances by the control plane.
pub mod labels {
    /// UID of the owning Workload, on WorkloadDeployments and Instances.
    pub const WORKLOAD_UID: &str = "compute.datumapis.com/workload-uid";
    /// UID of the owning WorkloadDeployment, on Instances. Listing a deployment's Instances
    /// selects on this label, and it is the WorkloadDeployment's `status.selector`.
    pub const WORKLOAD_DEPLOYMENT_UID: &str = "compute.datumapis.com/workload-deployment-uid";
    /// The Instance's ordinal within its deployment, as a decimal string.
    pub const INSTANCE_INDEX: &str = "compute.datumapis.com/instance-index";
    /// Name of the owning Workload, on Instances (newer upstream).
    pub const WORKLOAD_NAME: &str = "compute.datumapis.com/workload-name";
    /// Name of the owning WorkloadDeployment, on Instances (newer upstream).
    pub const WORKLOAD_DEPLOYMENT_NAME: &str = "compute.datumapis.com/workload-deployment-name";
    /// Name of the placement that produced the Instance (newer upstream).
    pub const PLACEMENT_NAME: &str = "compute.datumapis.com/placement-name";
    /// City code of the Instance's location (newer upstream).
    pub const CITY_CODE: &str = "compute.datumapis.com/city-code";
}

/// Annotations users and controllers read.
pub mod annotations {
    /// On `spec.template.metadata` of VM workloads: newline-separated `username:<authorized_keys
    /// line>` entries. Copied to every Instance.
    pub const SSH_KEYS: &str = "compute.datumapis.com/ssh-keys";
    /// On `spec.template.metadata`: an RFC 3339 time. Changing it changes the template hash,
    /// which rolls every Instance (newer upstream's `restart`).
    pub const RESTARTED_AT: &str = "compute.datumapis.com/restartedAt";
}

/// Finalizers the control plane puts on compute objects.
pub mod finalizers {
    /// On Workloads and WorkloadDeployments (the same string on both): held until the
    /// children (deployments, respectively Instances) are gone.
    pub const WORKLOAD_CONTROLLER: &str = "compute.datumapis.com/workload-controller";
    /// On Instances (newer upstream): held until the controller cleaned up what it made for
    /// the Instance.
    pub const INSTANCE_CONTROLLER: &str = "compute.datumapis.com/instance-controller";
}

/// Names of `spec.controller.schedulingGates[]` entries. A provider acts only on Instances
/// without gates.
pub mod scheduling_gates {
    /// Removed once every network the Instance attaches to is ready in its location.
    pub const NETWORK: &str = "Network";
}

/// Topology keys on Locations that placements select on.
pub mod topology {
    /// The city a Location is in (`DFW`, `LHR`, ...). A placement's `cityCodes` means
    /// "every Location whose topology has this key set to one of the codes".
    pub const CITY_CODE: &str = "topology.datum.net/city-code";
}
