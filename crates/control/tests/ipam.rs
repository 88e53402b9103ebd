//! Networks and IPAM against a real API server: racing allocators never hand out an
//! address twice; a full subnet makes an Instance wait with `AddressPoolExhausted` and it
//! recovers when an address is released; every interface of a two-network Instance gets
//! its addresses; the default IPv6 range is the Network's deterministic ULA /48; deleting a
//! Network takes its contexts, subnets and blocks with it.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;

use common::{Env, env, env_without_controllers, eventually, gated};
use datum_api::compute::Instance;
use datum_api::conditions;
use datum_api::networking::well_known::reasons;
use datum_api::networking::{IpAddress, IpFamily, Network, NetworkBinding, NetworkContext, Subnet};
use datum_control::ipam::{Allocator, Holder, HostRequest};
use datum_control::network::instance_network::ADDRESSES_ALLOCATED;
use datum_control::network::ranges::ula_prefix;
use futures::StreamExt;
use ipnet::IpNet;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn create<K>(env: &Env, value: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    env.api::<K>()
        .create(&PostParams::default(), &object)
        .await
        .expect("object created")
}

async fn network(env: &Env, name: &str, spec: serde_json::Value) -> Network {
    create(
        env,
        json!({ "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": { "name": name }, "spec": spec }),
    )
    .await
}

/// A consumer's binding of `network` in `location` (what a deployment does for its Instances).
async fn bind(env: &Env, network: &str, location: &str) {
    let _: NetworkBinding = create(
        env,
        json!({ "apiVersion": "networking.datumapis.com/v1alpha",
        "kind": "NetworkBinding", "metadata": { "name": format!("{network}-binding") },
        "spec": { "network": { "name": network }, "location": { "name": location } } }),
    )
    .await;
}

/// An Instance created with the `Network` gate on the given networks.
async fn instance(env: &Env, name: &str, location: &str, networks: &[&str]) -> Instance {
    let interfaces: Vec<_> = networks
        .iter()
        .map(|n| json!({ "network": { "name": n } }))
        .collect();
    create(
        env,
        json!({ "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Instance",
        "metadata": { "name": name },
        "spec": {
            "runtime": { "resources": { "instanceType": "datumcloud/d1-standard-2" },
                         "sandbox": { "containers": [{ "name": "web", "image": "nginx:1.27" }] } },
            "networkInterfaces": interfaces,
            "location": { "name": location },
            "controller": { "templateHash": "h", "schedulingGates": [{ "name": "Network" }] }
        } }),
    )
    .await
}

fn network_ips(instance: &Instance) -> Vec<Option<String>> {
    instance
        .status
        .as_ref()
        .and_then(|s| s.network_interfaces.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.assignments.and_then(|a| a.network_ip))
        .collect()
}

fn condition(instance: &Instance, type_: &str) -> Option<(String, String, String)> {
    let list = instance.status.as_ref()?.conditions.as_deref()?;
    conditions::get(list, type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn allocate(
    allocator: &Allocator,
    namespace: &str,
    cidr: IpNet,
    holder: &Holder,
) -> IpAddress {
    let request = HostRequest {
        namespace,
        network: "n",
        subnet: "n-l-ipv4",
        cidr,
        family: IpFamily::Ipv4,
        holder,
    };
    allocator.allocate_host(&request).await.expect("an address")
}

/// Allocates for every other holder (from `parity`), 16 at a time; returns (uid, address).
async fn serve(
    allocator: &Allocator,
    namespace: &str,
    cidr: IpNet,
    holders: &[Holder],
    parity: usize,
) -> Vec<(String, String)> {
    futures::stream::iter(holders.iter().skip(parity).step_by(2))
        .map(|h| allocate(allocator, namespace, cidr, h))
        .buffer_unordered(16)
        .map(|a| {
            (
                a.spec.instance_ref.map(|r| r.uid).unwrap_or_default(),
                a.spec.address,
            )
        })
        .collect()
        .await
}

#[tokio::test]
async fn racing_allocators_never_hand_out_an_address_twice() {
    let env = env_without_controllers().await;
    let cidr: IpNet = "10.0.0.0/22".parse().expect("a CIDR");
    let holders: Vec<Holder> = (0..1000u32)
        .map(|i| Holder {
            instance_name: format!("i-{i}"),
            instance_uid: format!("uid-{i}"),
            interface_index: 0,
            owner: None,
        })
        .collect();
    let (a, b) = (
        Allocator::new(env.client.clone()),
        Allocator::new(env.client.clone()),
    );
    // Each allocator serves every other holder, 16 at a time; both start from the same
    // address, so they collide all the way up.
    let (from_a, from_b) = futures::future::join(
        serve(&a, &env.namespace, cidr, &holders, 0),
        serve(&b, &env.namespace, cidr, &holders, 1),
    )
    .await;
    assert_eq!(from_a.len() + from_b.len(), 1000);

    let all = env
        .api::<IpAddress>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 1000, "one object per allocation");
    let addresses: HashSet<IpAddr> = all
        .iter()
        .map(|a| a.spec.address.parse().expect("an address"))
        .collect();
    assert_eq!(addresses.len(), 1000, "no address is handed out twice");
    let reserved: [IpAddr; 3] = [
        "10.0.0.0".parse().expect("ip"),
        "10.0.0.1".parse().expect("ip"),
        "10.0.3.255".parse().expect("ip"),
    ];
    assert!(
        addresses
            .iter()
            .all(|a| cidr.contains(a) && !reserved.contains(a))
    );
    let holders_seen: HashSet<String> = all
        .iter()
        .filter_map(|a| a.spec.instance_ref.as_ref().map(|r| r.uid.clone()))
        .collect();
    assert_eq!(holders_seen.len(), 1000, "every holder holds exactly one");

    // Asking again — the other allocator, for the first allocator's holders — returns what
    // they hold, and allocates nothing new.
    for (uid, address) in from_a.iter().take(25) {
        let holder = holders
            .iter()
            .find(|h| &h.instance_uid == uid)
            .expect("a holder");
        assert_eq!(
            &allocate(&b, &env.namespace, cidr, holder)
                .await
                .spec
                .address,
            address
        );
    }
    let count = env
        .api::<IpAddress>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .len();
    assert_eq!(count, 1000);
}

#[tokio::test]
async fn a_full_subnet_makes_the_instance_wait_until_an_address_is_released() {
    let mut env = env().await;
    let location = env.location("l", "sim", "AAA", "r").await;
    // A /29 range is smaller than a subnet: the context gets it whole — 5 host addresses.
    network(
        &env,
        "small",
        json!({ "ipam": { "mode": "Auto", "ipv4Range": "10.9.0.0/29" }, "ipFamilies": ["IPv4"] }),
    )
    .await;
    bind(&env, "small", &location).await;
    for i in 0..6 {
        instance(&env, &format!("vm-{i}"), &location, &["small"]).await;
    }
    let (waiter, holders) = eventually("five addressed, one waiting", || async {
        let all = env.instances().await;
        let addressed: Vec<Instance> = all
            .iter()
            .filter(|i| !gated(i) && network_ips(i).first().cloned().flatten().is_some())
            .cloned()
            .collect();
        let waiting: Vec<Instance> = all
            .iter()
            .filter(|i| {
                condition(i, ADDRESSES_ALLOCATED)
                    .is_some_and(|c| c.1 == reasons::ADDRESS_POOL_EXHAUSTED)
            })
            .cloned()
            .collect();
        (addressed.len() == 5 && waiting.len() == 1).then(|| (waiting[0].clone(), addressed))
    })
    .await;
    let (status, _, message) = condition(&waiter, ADDRESSES_ALLOCATED).expect("condition");
    assert_eq!(status, "False");
    assert!(
        message.contains("small-") && message.contains("10.9.0.0/29"),
        "names the subnet: {message}"
    );
    assert!(gated(&waiter), "a waiting instance keeps its gate");
    let ips: HashSet<_> = holders.iter().map(|i| network_ips(i)[0].clone()).collect();
    assert_eq!(ips.len(), 5, "five distinct addresses");
    let ready = eventually("Ready carries the reason", || async {
        let i = env.api::<Instance>().get(&waiter.name_any()).await.ok()?;
        condition(&i, "Ready").filter(|c| c.1 == reasons::ADDRESS_POOL_EXHAUSTED)
    })
    .await;
    assert_eq!(ready.0, "False");

    // Release on delete: the garbage collector removes the deleted Instance's address, and
    // the waiter gets it.
    let gone = &holders[0];
    let freed = network_ips(gone)[0].clone().expect("an address");
    env.api::<Instance>()
        .delete(&gone.name_any(), &DeleteParams::default())
        .await
        .expect("deleted");
    let recovered = eventually("the waiter addressed and ungated", || async {
        let i = env.api::<Instance>().get(&waiter.name_any()).await.ok()?;
        (!gated(&i) && network_ips(&i)[0].is_some()).then_some(i)
    })
    .await;
    assert_eq!(network_ips(&recovered)[0].as_ref(), Some(&freed));
    assert_eq!(
        condition(&recovered, ADDRESSES_ALLOCATED)
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );
    let held = env
        .api::<IpAddress>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    let hosts: Vec<_> = held
        .iter()
        .filter(|a| a.spec.prefix_length.is_none())
        .collect();
    assert_eq!(hosts.len(), 5);
    assert!(
        hosts
            .iter()
            .all(|a| a.spec.instance_ref.as_ref().map(|r| r.uid.clone()) != gone.uid()),
        "the deleted instance holds nothing"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn every_interface_gets_an_address_on_its_own_network_and_network_deletion_cascades() {
    let mut env = env().await;
    let location = env.location("l", "sim", "BBB", "r").await;
    let v4 = network(
        &env,
        "blue",
        json!({ "ipam": { "mode": "Auto" }, "ipFamilies": ["IPv4"] }),
    )
    .await;
    let dual = network(
        &env,
        "green",
        json!({ "ipam": { "mode": "Auto" }, "ipFamilies": ["IPv4", "IPv6"] }),
    )
    .await;
    bind(&env, "blue", &location).await;
    bind(&env, "green", &location).await;
    instance(&env, "vm", &location, &["blue", "green"]).await;
    let vm = eventually("both interfaces addressed and the gate lifted", || async {
        let i = env.api::<Instance>().get("vm").await.ok()?;
        (!gated(&i) && network_ips(&i).iter().all(Option::is_some) && network_ips(&i).len() == 2)
            .then_some(i)
    })
    .await;
    let ips = network_ips(&vm);
    let default_v4: IpNet = "10.128.0.0/9".parse().expect("cidr");
    for ip in ips.iter().flatten() {
        assert!(
            default_v4.contains(&ip.parse::<IpAddr>().expect("an address")),
            "{ip} is in the default IPv4 range"
        );
    }
    let held = env
        .api::<IpAddress>()
        .list(&ListParams::default().fields(&format!(
            "spec.instanceRef.uid={}",
            vm.uid().unwrap_or_default()
        )))
        .await
        .expect("list")
        .items;
    let mut slots: Vec<(i32, IpFamily)> = held
        .iter()
        .map(|a| (a.spec.interface_index.unwrap_or(-1), a.spec.ip_family))
        .collect();
    slots.sort();
    assert_eq!(
        slots,
        [
            (0, IpFamily::Ipv4),
            (1, IpFamily::Ipv4),
            (1, IpFamily::Ipv6)
        ]
    );

    // The dual-stack network's IPv6 range is the ULA /48 of its UID, and its subnet is in it.
    let expected = ula_prefix(&dual.uid().unwrap_or_default());
    let fd: IpNet = "fd00::/8".parse().expect("cidr");
    assert!(fd.contains(&IpNet::V6(expected)));
    let green = eventually("the prefix reported", || async {
        let n = env.api::<Network>().get("green").await.ok()?;
        n.status.as_ref()?.ipam.as_ref()?.ipv6_prefix.clone()
    })
    .await;
    assert_eq!(green, expected.to_string());
    let v6 = held
        .iter()
        .find(|a| a.spec.ip_family == IpFamily::Ipv6)
        .expect("an IPv6 address");
    assert!(expected.contains(&v6.spec.address.parse::<std::net::Ipv6Addr>().expect("v6")));
    let subnet = env
        .api::<Subnet>()
        .get(&format!("green-{location}-ipv6"))
        .await
        .expect("subnet");
    assert_eq!(subnet.spec.prefix_length, 64);
    assert!(
        IpNet::V6(expected).contains(&subnet.spec.start_address.parse::<IpAddr>().expect("ip"))
    );
    let _ = v4;

    // Deleting the Instance releases its addresses; deleting a Network takes its context,
    // subnets and blocks.
    env.api::<Instance>()
        .delete(&vm.name_any(), &DeleteParams::default())
        .await
        .expect("deleted");
    env.api::<Network>()
        .delete("green", &DeleteParams::foreground())
        .await
        .expect("deleted");
    eventually(
        "the instance's addresses and green's objects gone",
        || async {
            let addresses = env
                .api::<IpAddress>()
                .list(&ListParams::default())
                .await
                .ok()?
                .items;
            let contexts = env
                .api::<NetworkContext>()
                .list(&ListParams::default())
                .await
                .ok()?
                .items;
            let subnets = env
                .api::<Subnet>()
                .list(&ListParams::default())
                .await
                .ok()?
                .items;
            let done = addresses
                .iter()
                .all(|a| a.spec.instance_ref.is_none() && a.spec.network.name == "blue")
                && contexts.iter().all(|c| c.spec.network.name == "blue")
                && subnets
                    .iter()
                    .all(|s| s.spec.network_context.name.starts_with("blue-"))
                && addresses.len() == 1;
            done.then_some(())
        },
    )
    .await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_binding_does_not_remake_the_context_of_a_network_being_deleted() {
    let mut env = env().await;
    let location = env.location("l", "sim", "BBB", "r").await;
    // A finalizer of the test's own keeps the Network in its deleting state after the
    // garbage collector has taken its dependents, so a context remade then would stay.
    let _ = network(
        &env,
        "green",
        json!({ "ipam": { "mode": "Auto" }, "ipFamilies": ["IPv4"] }),
    )
    .await;
    let held = json!({ "metadata": { "finalizers": ["test.datum.net/hold"] } });
    env.api::<Network>()
        .patch("green", &PatchParams::default(), &Patch::Merge(&held))
        .await
        .expect("finalizer added");
    bind(&env, "green", &location).await;
    let context_name = format!("green-{location}");
    eventually("the context made", || async {
        env.api::<NetworkContext>().get(&context_name).await.ok()
    })
    .await;

    env.api::<Network>()
        .delete("green", &DeleteParams::foreground())
        .await
        .expect("deleted");
    let message = eventually("the binding says the network is being deleted", || async {
        let binding = env
            .api::<NetworkBinding>()
            .get("green-binding")
            .await
            .ok()?;
        let list = binding.status?.conditions;
        let ready = conditions::get(&list, "Ready")?;
        (ready.status == "False" && ready.reason == reasons::NETWORK_DELETING)
            .then(|| ready.message.clone())
    })
    .await;
    assert!(message.contains("green"), "{message}");
    eventually("the garbage collector has taken the context", || async {
        let network = env.api::<Network>().get("green").await.ok()?;
        let foreground_done = !network
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion");
        let gone = env
            .api::<NetworkContext>()
            .get_opt(&context_name)
            .await
            .ok()?
            .is_none();
        (foreground_done && gone).then_some(())
    })
    .await;
    // The binding retries meanwhile (every 5 s); past one retry, the context stays gone.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let context = env
        .api::<NetworkContext>()
        .get_opt(&context_name)
        .await
        .expect("read");
    assert!(
        context.is_none(),
        "a context was made for a network being deleted: {:?}",
        context.map(|c| c.metadata.creation_timestamp)
    );

    env.api::<Network>()
        .patch(
            "green",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .expect("finalizer removed");
    eventually("the binding says the network is gone", || async {
        let binding = env
            .api::<NetworkBinding>()
            .get("green-binding")
            .await
            .ok()?;
        let list = binding.status?.conditions;
        (conditions::get(&list, "Ready")?.reason == reasons::NETWORK_NOT_FOUND).then_some(())
    })
    .await;
    env.cleanup().await;
}
