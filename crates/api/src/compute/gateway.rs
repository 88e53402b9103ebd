//! The Workload gateway: removed upstream, kept here only so old manifests still apply.
//!
//! Upstream's Workload once had `spec.gateway` (a Gateway API `GatewaySpec` template plus
//! `tcpRoutes`); it was removed from the CRD in December 2024 but its sample
//! `kong-gateway.yaml` still sets it, so strict field validation (kubectl's default) rejects
//! the sample upstream. We accept `spec.gateway` as a loose object (any content, kept as
//! written) and nothing acts on it. **Deprecated**: do not write it in new manifests.
//!
//! Upstream's CRD still carries the gateway's status schema (`status.gateway`, Gateway API's
//! `GatewayStatus`), never written; [`WorkloadGatewayStatus`] mirrors it so the status schema
//! stays a superset of upstream's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// Deprecated, never written: the status of the removed Workload gateway.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadGatewayStatus {
    /// Addresses bound to the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub addresses: Option<Vec<GatewayStatusAddress>>,

    /// Conditions of the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions", length(max = 8))]
    #[schemars(extend("default" = [
        { "type": "Accepted", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller", "lastTransitionTime": "1970-01-01T00:00:00Z" },
        { "type": "Programmed", "status": "Unknown", "reason": "Pending", "message": "Waiting for controller", "lastTransitionTime": "1970-01-01T00:00:00Z" },
    ]))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Option<Vec<Condition>>,

    /// Status of each listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub listeners: Option<Vec<ListenerStatus>>,
}

/// An address bound to the gateway.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatusAddress {
    /// Type of the address (`IPAddress` unless set).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "IPAddress"))]
    pub type_: Option<String>,
    /// The address.
    pub value: String,
}

/// Status of one gateway listener.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Name of the listener.
    pub name: String,
    /// Number of routes attached to the listener.
    pub attached_routes: i32,
    /// Conditions of the listener.
    #[schemars(schema_with = "schema::conditions", length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Route kinds the listener supports.
    #[schemars(length(max = 8))]
    pub supported_kinds: Vec<RouteGroupKind>,
}

/// A route kind.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// API group of the route (`gateway.networking.k8s.io` unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "gateway.networking.k8s.io"))]
    pub group: Option<String>,
    /// Kind of the route.
    pub kind: String,
}
