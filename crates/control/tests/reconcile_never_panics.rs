//! Property test: arbitrary schema-valid Workloads (and arbitrary existing Instances) never
//! make the planning steps of a reconcile panic — placement, status roll-up, short-form
//! expansion, instance planning and building. These are the parts of each reconcile that
//! look at user data; the rest is API calls.

use datum_api::compute::{
    HorizontalScaleSettings, InstanceManagementPolicy, LocationReference, Workload,
    WorkloadDeployment, WorkloadPlacement,
};
use datum_api::networking::well_known::topology;
use datum_api::networking::{Location, LocationProvider, LocationSpec};
use datum_control::instance_control::{build, plan, status};
use datum_control::placement::{desired, rollup};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn placement() -> impl Strategy<Value = WorkloadPlacement> {
    let choice = prop_oneof![
        prop::collection::vec("[A-Z]{3}", 1..4).prop_map(|c| (Some(c), None, None)),
        prop::collection::vec(name(), 1..4).prop_map(|n| (
            None,
            None,
            Some(n.into_iter().map(LocationReference::new).collect())
        )),
        (
            name(),
            prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Bogus"]),
            prop::collection::vec(name(), 0..3)
        )
            .prop_map(|(key, operator, values)| (
                None,
                Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key,
                        operator: operator.into(),
                        values: Some(values)
                    }]),
                    match_labels: None,
                }),
                None
            )),
    ];
    (
        name(),
        choice,
        0..1000i32,
        prop::option::of(0..2000i32),
        any::<bool>(),
    )
        .prop_map(
            |(name, (city_codes, location_selector, locations), min, max, parallel)| {
                WorkloadPlacement {
                    name,
                    city_codes,
                    location_selector,
                    locations,
                    scale_settings: HorizontalScaleSettings {
                        min_replicas: min,
                        max_replicas: max,
                        metrics: None,
                        instance_management_policy: if parallel {
                            InstanceManagementPolicy::Parallel
                        } else {
                            InstanceManagementPolicy::OrderedReady
                        },
                    },
                }
            },
        )
}

fn location() -> impl Strategy<Value = Location> {
    (name(), "[A-Z]{3}", name()).prop_map(|(name, city, region)| {
        let mut spec = LocationSpec::new("datum-managed", LocationProvider::sim());
        spec.topology.insert(topology::CITY_CODE.into(), city);
        spec.topology.insert(topology::REGION.into(), region);
        Location::new(&name, spec)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn planning_never_panics(
        workload_name in name(),
        placements in prop::collection::vec(placement(), 1..5),
        locations in prop::collection::vec(location(), 0..6),
        instance_names in prop::collection::vec("[a-z0-9-]{0,30}", 0..8),
        replicas in 0u32..50,
    ) {
        let mut workload = Workload::new(&workload_name, Default::default());
        workload.metadata.namespace = Some("ns".into());
        workload.metadata.uid = Some("uid".into());
        workload.spec.placements = placements;
        let plans = desired::plan(&workload, &locations);
        prop_assert_eq!(plans.len(), workload.spec.placements.len());
        let deployments: Vec<WorkloadDeployment> = plans.iter().flat_map(|p| p.deployments.clone()).collect();
        let status = rollup::status(&workload, &plans, &deployments);
        prop_assert_eq!(status.placements.map(|p| p.len()), Some(plans.len()));

        for deployment in deployments.iter().take(2) {
            let hash = deployment.spec.template.hash();
            let observed: Vec<plan::Observed> = instance_names.iter().map(|n| plan::Observed {
                name: format!("{}{n}", deployment.metadata.name.clone().unwrap_or_default()),
                deleting: n.len() % 3 == 0,
                available: n.len() % 2 == 0,
                template_hash: Some(n.clone()),
            }).collect();
            for policy in [InstanceManagementPolicy::OrderedReady, InstanceManagementPolicy::Parallel] {
                let steps = plan::plan(deployment.metadata.name.as_deref().unwrap_or_default(), replicas, policy, &hash, &observed);
                if policy == InstanceManagementPolicy::OrderedReady {
                    prop_assert!(steps.len() <= 1);
                }
            }
            if let Some(location) = build::location(deployment) {
                let instance = build::new_instance(deployment, &location, replicas, &hash);
                let updated = build::updated_instance(deployment, &instance, Some(replicas), &hash);
                prop_assert_eq!(updated.spec.location, Some(location));
            }
            let _ = status::status(deployment, &[], &hash);
        }
    }
}
