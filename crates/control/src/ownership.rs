//! Controller owner references: how every object this crate creates points at the object
//! it came from, so the garbage collector cascades deletion (`controller: true`,
//! `blockOwnerDeletion: true`; the latter needs RBAC `update` on the owner's `finalizers`).
//!
//! ```
//! use datum_api::compute::Workload;
//! let mut workload = Workload::default();
//! workload.metadata.name = Some("web".into());
//! workload.metadata.uid = Some("1234".into());
//! let owner = datum_control::ownership::controller_reference(&workload).expect("has name and uid");
//! assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

/// The controller owner reference to `owner` (`None` until it has a name and UID).
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let mut reference = owner.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}
