//! The instance template: what every instance of a Workload looks like.
//!
//! A Workload holds an [`InstanceTemplateSpec`]; its WorkloadDeployments copy it verbatim;
//! each Instance's `spec` is the template's [`InstanceSpec`] plus what the control plane
//! fills in (`location`, `controller`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::instance::InstanceSpec;

/// Metadata and spec stamped onto every instance.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTemplateSpec {
    /// Labels and annotations copied onto every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,

    /// The instances' spec.
    pub spec: InstanceSpec,
}

/// The metadata an embedded template keeps: upstream's CRDs prune everything else of an
/// embedded ObjectMeta (controller-gen's `generateEmbeddedObjectMeta`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Name; unused in templates (instances are named by their deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace; unused in templates (instances live in their deployment's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels copied onto every object made from the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations copied onto every object made from the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Finalizers of objects made from the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
}

impl InstanceTemplateSpec {
    /// A short, stable hash of the template, recorded on Instances
    /// (`spec.controller.templateHash`) to tell which ones need updating.
    ///
    /// FNV-1a (32 bits) over the template's JSON, its decimal digits spelled in the
    /// Kubernetes "safe" alphabet as upstream does. Upstream hashes a Go-specific dump, so
    /// values differ from upstream's: instances made by upstream's controllers look outdated
    /// once and are rolled.
    ///
    /// ```
    /// use datum_api::compute::InstanceTemplateSpec;
    ///
    /// let hash = InstanceTemplateSpec::default().hash();
    /// assert!(hash.chars().all(|c| "456789bcdf".contains(c)));
    /// assert_eq!(hash, InstanceTemplateSpec::default().hash());
    /// ```
    pub fn hash(&self) -> String {
        const FNV_OFFSET: u32 = 0x811c_9dc5;
        const FNV_PRIME: u32 = 0x0100_0193;
        // Serializing plain data to a Vec cannot fail: every map key is a string.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let hash = json.iter().fold(FNV_OFFSET, |hash, byte| {
            (hash ^ u32::from(*byte)).wrapping_mul(FNV_PRIME)
        });
        hash.to_string().chars().map(safe_encode_digit).collect()
    }
}

/// Kubernetes' `rand.SafeEncodeString` for a decimal digit: no vowels, no look-alikes.
fn safe_encode_digit(digit: char) -> char {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    ALPHANUMS[digit as usize % ALPHANUMS.len()] as char
}
