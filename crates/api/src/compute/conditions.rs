//! Condition types, reasons and messages of the compute kinds.
//!
//! The strings are upstream's (spec `compute-api.md` §9), so status written by Datum's Go
//! controllers and by ours means the same. Where newer upstream renamed a reason, both
//! spellings are here and the doc says which one our controllers write.
//!
//! ```
//! use datum_api::compute::conditions::{self, reasons};
//!
//! assert_eq!(conditions::READY, "Ready");
//! assert_eq!(reasons::SCHEDULING_GATES_PRESENT, "SchedulingGatesPresent");
//! ```

/// Workload, placement and WorkloadDeployment: at least one replica serves.
pub const AVAILABLE: &str = "Available";
/// Instance: the provider has created (or updated) the machine for the current template.
pub const PROGRAMMED: &str = "Programmed";
/// Instance: the machine is running.
pub const RUNNING: &str = "Running";
/// Instance: programmed, running and free of scheduling gates.
pub const READY: &str = "Ready";

/// The message of the conditions an Instance starts with (its CRD status default).
pub const WAITING_FOR_CONTROLLER: &str = "Waiting for controller";

/// Condition reasons, grouped by the condition they explain.
pub mod reasons {
    /// Any condition nobody has evaluated yet (the Instance status default).
    pub const PENDING: &str = "Pending";

    // Workload `Available`.
    /// A network named by the template does not exist.
    pub const NETWORK_NOT_FOUND: &str = "NetworkNotFound";
    /// At least one placement is available.
    pub const AVAILABLE_PLACEMENT_FOUND: &str = "AvailablePlacementFound";
    /// No placement is available.
    pub const NO_AVAILABLE_PLACEMENTS: &str = "NoAvailablePlacements";

    // Workload `status.placements[]` `Available`.
    /// At least one deployment of the placement is available.
    pub const AVAILABLE_DEPLOYMENT_FOUND: &str = "AvailableDeploymentFound";
    /// No deployment of the placement is available.
    pub const NO_AVAILABLE_DEPLOYMENTS: &str = "NoAvailableDeployments";
    /// Workload and placement `Available=False`: a placement selects no (Ready) Location.
    pub const NO_MATCHING_LOCATION: &str = "NoMatchingLocation";

    // WorkloadDeployment `Available`.
    /// No Location is registered at all.
    pub const NO_LOCATIONS: &str = "NoLocations";
    /// No Location matches the deployment.
    pub const NO_CANDIDATE_LOCATIONS: &str = "NoCandidateLocations";
    /// The deployment was bound to a Location; nothing runs yet.
    pub const LOCATION_ASSIGNED: &str = "LocationAssigned";
    /// At least one Instance is ready.
    pub const STABLE_INSTANCE_FOUND: &str = "StableInstanceFound";
    /// Networks are being provisioned in the deployment's Location (newer upstream's
    /// spelling, which our controllers write).
    pub const NETWORK_PROVISIONING: &str = "NetworkProvisioning";
    /// Older upstream's spelling of [`NETWORK_PROVISIONING`].
    pub const PROVISIONING_NETWORK: &str = "ProvisioningNetwork";
    /// Instances exist but none is ready yet (newer upstream's spelling, which our
    /// controllers write).
    pub const INSTANCES_PROVISIONING: &str = "InstancesProvisioning";
    /// Older upstream's spelling of [`INSTANCES_PROVISIONING`].
    pub const PROVISIONING_INSTANCES: &str = "ProvisioningInstances";

    // Instance `Programmed`.
    /// The provider has not started programming the Instance.
    pub const PENDING_PROGRAMMING: &str = "PendingProgramming";
    /// The provider is creating or updating the machine.
    pub const PROGRAMMING_IN_PROGRESS: &str = "ProgrammingInProgress";
    /// The machine matches the current template.
    pub const PROGRAMMED: &str = "Programmed";

    // Instance `Running`.
    /// The machine is stopped.
    pub const STOPPED: &str = "Stopped";
    /// The machine is starting.
    pub const STARTING: &str = "Starting";
    /// The machine is stopping.
    pub const STOPPING: &str = "Stopping";
    /// The machine is running (also `Ready`'s reason when the Instance is ready).
    pub const RUNNING: &str = "Running";

    // Instance `Ready`.
    /// `spec.controller.schedulingGates` is not empty.
    pub const SCHEDULING_GATES_PRESENT: &str = "SchedulingGatesPresent";
    /// A network binding for the Instance failed; the message is the binding's.
    pub const NETWORK_FAILED_TO_CREATE: &str = "NetworkFailedToCreate";
}
