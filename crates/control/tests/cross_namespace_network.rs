//! A namespace's objects attach only to its own Networks. A Workload whose interface names
//! a Network in another namespace gets Instances that stay gated with
//! `AddressesAllocated=False` (`CrossNamespaceNetwork`, the message naming
//! `spec.networkInterfaces[0].network.namespace`), a NetworkBinding that is refused the same
//! way, and nothing is created in the other namespace: no NetworkContext, no address. The
//! controllers run cluster-wide here, so the refusal is the rule's, not the scope's. Naming
//! the Workload's own namespace explicitly is allowed.

mod common;

use common::{Env, env_without_controllers, eventually, gated};
use datum_api::compute::{Instance, labels};
use datum_api::conditions;
use datum_api::networking::well_known::{condition_types, reasons};
use datum_api::networking::{IpAddress, Network, NetworkBinding, NetworkContext};
use datum_control::network::instance_network::ADDRESSES_ALLOCATED;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn workload(name: &str, location: &str, network: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {
                "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                            "sandbox": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
                "networkInterfaces": [{"network": network}]
            }},
            "placements": [{"name": "p", "locations": [{"name": location}],
                            "scaleSettings": {"minReplicas": 1}}]
        }
    })
}

async fn instance_of(env: &Env, workload: &str) -> Option<Instance> {
    env.instances()
        .await
        .into_iter()
        .find(|i| i.labels().get(labels::WORKLOAD_NAME).map(String::as_str) == Some(workload))
}

fn addresses_allocated(instance: &Instance) -> Option<(String, String, String)> {
    let list = instance.status.as_ref()?.conditions.as_deref()?;
    conditions::get(list, ADDRESSES_ALLOCATED)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn a_workload_cannot_attach_to_a_network_in_another_namespace() {
    let mut env = env_without_controllers().await;
    let settings = datum_control::Settings {
        namespace: None,
        ..common::settings(&env.namespace)
    };
    env.start_controllers_with(settings);
    let location = env.location("here", "sim", "XNS", "r1").await;

    // Someone else's namespace, with a Network of its own.
    let victim = env
        .cp
        .fresh_namespace(&env.client, "victim")
        .await
        .expect("namespace");
    let private: Network = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": {"name": "private"}, "spec": {"ipam": {"mode": "Auto"}}
    }))
    .expect("a Network");
    Api::<Network>::namespaced(env.client.clone(), &victim)
        .create(&PostParams::default(), &private)
        .await
        .expect("the victim's Network is created");

    env.create_workload(workload(
        "intruder",
        &location,
        json!({"name": "private", "namespace": victim}),
    ))
    .await;
    env.create_workload(workload(
        "own",
        &location,
        json!({"name": "default", "namespace": env.namespace}),
    ))
    .await;

    // Naming its own namespace explicitly is fine: the address is allocated.
    eventually("the own-namespace Instance gets its address", || async {
        let instance = instance_of(&env, "own").await?;
        let (status, _, _) = addresses_allocated(&instance)?;
        (status == "True").then_some(())
    })
    .await;

    // The other namespace's Network is refused, naming the field.
    let (instance, message) = eventually("the intruding Instance is refused", || async {
        let instance = instance_of(&env, "intruder").await?;
        let (status, reason, message) = addresses_allocated(&instance)?;
        (status == "False" && reason == reasons::CROSS_NAMESPACE_NETWORK)
            .then_some((instance, message))
    })
    .await;
    assert!(
        message.contains("spec.networkInterfaces[0].network.namespace"),
        "the message names the field: {message}"
    );
    assert!(
        gated(&instance),
        "the Instance stays gated: no provider sees it"
    );
    let ready = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .and_then(|c| conditions::get(c, "Ready"))
        .map(|c| c.status.clone());
    assert_ne!(ready.as_deref(), Some("True"), "the Instance is not Ready");

    let binding_message = eventually("the intruding binding is refused", || async {
        let bindings = env
            .api::<NetworkBinding>()
            .list(&ListParams::default())
            .await
            .ok()?;
        let binding = bindings
            .items
            .into_iter()
            .find(|b| b.spec.network.name == "private")?;
        let ready = binding
            .status
            .as_ref()
            .and_then(|s| conditions::get(&s.conditions, condition_types::READY))?;
        (ready.status == "False" && ready.reason == reasons::CROSS_NAMESPACE_NETWORK)
            .then(|| ready.message.clone())
    })
    .await;
    assert!(
        binding_message.contains("spec.network.namespace"),
        "the binding's message names the field: {binding_message}"
    );

    // Nothing was made in the other namespace.
    let contexts = Api::<NetworkContext>::namespaced(env.client.clone(), &victim)
        .list(&ListParams::default())
        .await
        .expect("lists");
    assert!(
        contexts.items.is_empty(),
        "no NetworkContext in the victim's namespace: {:?}",
        contexts
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>()
    );
    let addresses = Api::<IpAddress>::namespaced(env.client.clone(), &victim)
        .list(&ListParams::default())
        .await
        .expect("lists");
    assert!(
        addresses.items.is_empty(),
        "no address from the victim's Network"
    );
    let instance = instance_of(&env, "intruder").await.expect("still there");
    assert!(gated(&instance), "still gated after everything settled");
    env.stop_controllers().await;
}
