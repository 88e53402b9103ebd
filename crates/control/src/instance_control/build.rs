//! The Instances a deployment creates, and what an update changes on an existing one.
//!
//! Every Instance gets its own copy of the template's labels plus the controller labels
//! with its own ordinal (quirk Q1), the template's annotations, and the template spec with
//! `location` (the deployment's) and `controller.templateHash` filled in. An update applies
//! the new template spec but keeps `location` and the scheduling gates, so no field the
//! controller owns is ever dropped (quirk Q2). A new Instance carries the `Network`
//! scheduling gate, which the instance-network controller lifts once its addresses are
//! allocated.
//!
//! The deployment also needs its networks in its location: one NetworkBinding per template
//! interface, `<deployment>-net-<index>` ([`network_binding`]), owned by the deployment.

use std::collections::BTreeMap;

use datum_api::compute::{
    Instance, InstanceController, InstanceSpec, LocationReference, SchedulingGate,
    WorkloadDeployment, labels, scheduling_gates,
};
use datum_api::networking::{NetworkBinding, NetworkBindingConsumer, NetworkBindingSpec};
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::label_values::insert_name;

/// Where the deployment's Instances run: `spec.locationRef`, else the older `status.location`.
pub fn location(deployment: &WorkloadDeployment) -> Option<LocationReference> {
    deployment
        .spec
        .location_ref
        .clone()
        .or_else(|| deployment.status.as_ref().and_then(|s| s.location.clone()))
        .map(|l| LocationReference::new(l.name))
}

/// The labels every Instance of `deployment` carries, for `ordinal`.
pub fn instance_labels(
    deployment: &WorkloadDeployment,
    ordinal: Option<u32>,
) -> BTreeMap<String, String> {
    let template = deployment.spec.template.metadata.as_ref();
    let mut result = template.and_then(|m| m.labels.clone()).unwrap_or_default();
    result.insert(
        labels::WORKLOAD_UID.into(),
        deployment.spec.workload_ref.uid.clone(),
    );
    result.insert(
        labels::WORKLOAD_DEPLOYMENT_UID.into(),
        deployment.uid().unwrap_or_default(),
    );
    insert_name(
        &mut result,
        labels::WORKLOAD_NAME,
        &deployment.spec.workload_ref.name,
    );
    insert_name(
        &mut result,
        labels::WORKLOAD_DEPLOYMENT_NAME,
        &deployment.name_any(),
    );
    insert_name(
        &mut result,
        labels::PLACEMENT_NAME,
        &deployment.spec.placement_name,
    );
    if let Some(ordinal) = ordinal {
        result.insert(labels::INSTANCE_INDEX.into(), ordinal.to_string());
    }
    result
}

/// The new Instance of `ordinal`.
pub fn new_instance(
    deployment: &WorkloadDeployment,
    location: &LocationReference,
    ordinal: u32,
    hash: &str,
) -> Instance {
    let template = &deployment.spec.template;
    let mut spec: InstanceSpec = template.spec.clone();
    spec.location = Some(location.clone());
    spec.controller = Some(InstanceController {
        template_hash: hash.to_owned(),
        scheduling_gates: Some(vec![SchedulingGate {
            name: scheduling_gates::NETWORK.to_owned(),
        }]),
    });
    Instance {
        metadata: ObjectMeta {
            name: Some(format!("{}-{ordinal}", deployment.name_any())),
            namespace: deployment.namespace(),
            labels: Some(instance_labels(deployment, Some(ordinal))),
            annotations: template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone()),
            owner_references: crate::ownership::controller_reference(deployment).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// `current` brought to the deployment's template at `hash`, keeping its location and gates.
pub fn updated_instance(
    deployment: &WorkloadDeployment,
    current: &Instance,
    ordinal: Option<u32>,
    hash: &str,
) -> Instance {
    let template = &deployment.spec.template;
    let mut updated = current.clone();
    let gates = current
        .spec
        .controller
        .as_ref()
        .and_then(|c| c.scheduling_gates.clone());
    let location = current
        .spec
        .location
        .clone()
        .or_else(|| location(deployment));
    updated.spec = template.spec.clone();
    updated.spec.location = location;
    updated.spec.controller = Some(InstanceController {
        template_hash: hash.to_owned(),
        scheduling_gates: gates,
    });
    updated
        .labels_mut()
        .extend(instance_labels(deployment, ordinal));
    if let Some(annotations) = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
    {
        updated.annotations_mut().extend(annotations);
    }
    updated.metadata.managed_fields = None;
    updated
}

/// The NetworkBinding of interface `index` of the deployment's template in `location`:
/// `<deployment>-net-<index>`, as upstream.
pub fn network_binding(
    deployment: &WorkloadDeployment,
    location: &LocationReference,
    index: usize,
    network: &datum_api::compute::NetworkRef,
) -> NetworkBinding {
    use datum_api::networking::well_known::labels as net_labels;
    let mut binding_labels = BTreeMap::new();
    insert_name(&mut binding_labels, net_labels::NETWORK, &network.name);
    insert_name(&mut binding_labels, net_labels::LOCATION, &location.name);
    let mut reference = datum_api::networking::NetworkRef::new(network.name.clone());
    reference.namespace = network.namespace.clone();
    let mut spec = NetworkBindingSpec::new(
        reference,
        datum_api::networking::LocationReference::new(location.name.clone()),
    );
    spec.consumer = Some(NetworkBindingConsumer {
        api_group: Some("compute.datumapis.com".to_owned()),
        kind: "WorkloadDeployment".to_owned(),
        name: deployment.name_any(),
    });
    NetworkBinding {
        metadata: ObjectMeta {
            name: Some(format!("{}-net-{index}", deployment.name_any())),
            namespace: deployment.namespace(),
            labels: Some(binding_labels),
            owner_references: crate::ownership::controller_reference(deployment).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}
