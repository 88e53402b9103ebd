//! The whole system on sim: the control-plane controllers and the sim provider together turn
//! a Workload with 3 replicas into 3 Ready Instances backed by 3 sim machines; deleting the
//! Workload (and then its Network) leaves the sim ledger empty.

mod common;

use std::time::Duration;

use datum_api::compute::{Instance, Workload};
use datum_api::networking::Location;
use datum_provider_sim::SimProvider;
use datum_runtime::shutdown::CancellationToken;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Bound on each wait, against a hung test; the waits end as soon as the state is reached.
const PATIENCE: Duration = Duration::from_secs(120);

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created")
}

fn ready(instance: &Instance) -> bool {
    let conditions = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    datum_api::conditions::is_true(&conditions, "Ready")
}

/// Runs the controllers with `control` and the sim provider with `provider_client` (clients
/// that may carry only their component's RBAC), and takes a 3-replica Workload from apply
/// to Ready to deleted, checking the sim ledger at each end. Set-up uses the admin client.
async fn lifecycle(h: &common::SimHarness, test: &str, control: Client, provider_client: Client) {
    let client: Client = h.client.clone();
    let ns =
        h.cp.fresh_namespace(&client, test)
            .await
            .expect("namespace");
    let config_name = format!("{ns}-sim");
    let location_name = format!("{ns}-sim");

    Api::<datum_api::provider_config::sim::ProviderConfig>::all(client.clone())
        .patch(
            &config_name,
            &PatchParams::apply("end-to-end").force(),
            &Patch::Apply(common::sim_config(&config_name, &h.state_dir, 0, vec![])),
        )
        .await
        .expect("the sim ProviderConfig applies");
    create(
        &Api::<Location>::all(client.clone()),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": {"name": location_name},
            "spec": {
                "locationClassName": "datum-managed",
                "topology": {"topology.datum.net/city-code": format!("E2E{}", ns.len())},
                "provider": {"sim": {}}
            }
        }),
    )
    .await;
    create(
        &Api::<datum_api::networking::Network>::namespaced(client.clone(), &ns),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
            "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}
        }),
    )
    .await;

    // The control plane and the provider, both scoped to this test's namespace.
    let stop = CancellationToken::new();
    let settings = datum_control::Settings {
        namespace: Some(ns.clone()),
        resync: Duration::from_secs(5),
        retry: Duration::from_millis(250),
        ..datum_control::Settings::default()
    };
    let control = tokio::spawn(datum_control::run(
        control,
        settings,
        stop.clone().cancelled_owned(),
    ));
    let mut options = datum_provider::Options::new(config_name.clone());
    options.namespace = Some(ns.clone());
    options.resync = Duration::from_secs(5);
    let provider = tokio::spawn(datum_provider::run(
        SimProvider,
        provider_client,
        options,
        stop.clone(),
    ));

    let workloads = Api::<Workload>::namespaced(client.clone(), &ns);
    create(
        &workloads,
        json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
            "metadata": {"name": "web"},
            "spec": {
                "template": {"spec": {
                    "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                                "sandbox": {"containers": [{"name": "web", "image": "nginx"}]}},
                    "networkInterfaces": [{"network": {"name": "default"}}]
                }},
                "placements": [{"name": "here", "locations": [{"name": location_name}],
                                "scaleSettings": {"minReplicas": 3}}]
            }
        }),
    )
    .await;

    let instances = Api::<Instance>::namespaced(client.clone(), &ns);
    wait_until("3 Instances are Ready", || async {
        let list = instances
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.len() == 3 && list.iter().all(ready)
    })
    .await;
    wait_until("the Workload reports 3 ready replicas", || async {
        workloads
            .get("web")
            .await
            .ok()
            .and_then(|w| w.status)
            .is_some_and(|s| s.ready_replicas == 3)
    })
    .await;
    let machines = |kind: &'static str| {
        let ledger = h.ledger();
        async move {
            tokio::task::spawn_blocking(move || ledger.read())
                .await
                .expect("joins")
                .expect("the ledger reads")
                .records
                .into_iter()
                .filter(|r| r.kind == kind)
                .count()
        }
    };
    assert_eq!(
        machines("instance").await,
        3,
        "one sim machine per Instance"
    );
    for instance in instances
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        let status = instance.status.expect("status");
        assert!(
            status.provider_id.is_some_and(|id| !id.is_empty()),
            "the provider ID is recorded"
        );
        // The address is IPAM's — the Network's default IPv6 family, a ULA (fd00::/8) —
        // not one the provider made up.
        let ip: std::net::IpAddr = status
            .network_interfaces
            .as_ref()
            .and_then(|i| i.first())
            .and_then(|i| i.assignments.as_ref())
            .and_then(|a| a.network_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            .expect("an address on the first interface");
        assert!(
            matches!(ip, std::net::IpAddr::V6(v6) if v6.octets()[0] == 0xfd),
            "{ip} is from the Network's ULA range"
        );
    }

    workloads
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("deleted");
    wait_until("every sim machine is gone", || async {
        machines("instance").await == 0
    })
    .await;
    wait_until("the Instances are gone", || async {
        instances
            .list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
    })
    .await;
    Api::<datum_api::networking::Network>::namespaced(client.clone(), &ns)
        .delete("default", &DeleteParams::foreground())
        .await
        .expect("network deleted");
    wait_until("the sim ledger is empty", || async {
        let ledger = h.ledger();
        tokio::task::spawn_blocking(move || ledger.read())
            .await
            .expect("joins")
            .is_ok_and(|state| state.records.is_empty())
    })
    .await;

    stop.cancel();
    let _ = control.await;
    let _ = provider.await;
}

#[tokio::test]
async fn workload_reaches_ready_on_sim_and_deleting_it_empties_the_ledger() {
    let h = common::harness("end-to-end").await;
    lifecycle(&h, "end-to-end", h.client.clone(), h.client.clone()).await;
}

/// Applies every object in a `config/rbac` file with the admin client.
async fn apply_rbac(client: &Client, file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/rbac")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("the RBAC file is readable");
    datum_testenv::apply_manifests(client, &text, "rbac-test")
        .await
        .expect("the RBAC objects apply");
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

/// Each component runs with its own ServiceAccount and exactly the rules shipped in
/// `config/rbac`, does its whole job, and is refused outside its role — in particular the
/// provider reads the one Secret its credentials Role names, and no other.
#[tokio::test]
async fn components_do_their_job_with_the_shipped_rbac_and_nothing_more() {
    let h = common::harness("least-privilege").await;
    let admin = h.client.clone();
    let system = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "datum-system"}});
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .patch(
            "datum-system",
            &PatchParams::apply("rbac-test"),
            &Patch::Apply(&system),
        )
        .await
        .expect("namespace");
    for file in [
        "datum-control.yaml",
        "provider-sim.yaml",
        "credentials-role.yaml",
    ] {
        apply_rbac(&admin, file).await;
    }
    let (control, _) =
        h.cp.service_account_client(&admin, "datum-system", "datum-control")
            .await
            .expect("control-plane token");
    let (provider, _) =
        h.cp.service_account_client(&admin, "datum-system", "datum-provider-sim")
            .await
            .expect("provider token");

    // Secrets: the provider reads the one its credentials Role names, and nothing else.
    let secrets =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), "datum-system");
    for name in ["sim-credentials", "someone-elses"] {
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "datum-system"}, "stringData": {"token": "t0ken"}});
        secrets
            .patch(
                name,
                &PatchParams::apply("rbac-test"),
                &Patch::Apply(&secret),
            )
            .await
            .expect("secret");
    }
    let provider_secrets =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(provider.clone(), "datum-system");
    assert!(
        provider_secrets.get("sim-credentials").await.is_ok(),
        "the named Secret is readable"
    );
    assert!(
        forbidden(provider_secrets.get("someone-elses").await),
        "any other Secret is not"
    );
    assert!(
        forbidden(provider_secrets.list(&ListParams::default()).await),
        "Secrets cannot be listed"
    );
    let control_secrets =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(control.clone(), "datum-system");
    assert!(
        forbidden(control_secrets.get("sim-credentials").await),
        "the control plane reads no Secret"
    );

    // Outside their roles: the provider creates no Workloads, the control plane edits no Location.
    let provider_workloads = Api::<Workload>::namespaced(provider.clone(), "default");
    let workload: Workload = serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload", "metadata": {"name": "nope"},
        "spec": {"template": {"spec": {"runtime": {"resources": {"instanceType": "d"},
                  "sandbox": {"containers": [{"name": "c", "image": "i"}]}},
                  "networkInterfaces": [{"network": {"name": "default"}}]}},
                 "placements": [{"name": "p", "cityCodes": ["X"], "scaleSettings": {"minReplicas": 1}}]}
    }))
    .expect("a workload");
    assert!(forbidden(
        provider_workloads
            .create(&PostParams::default(), &workload)
            .await
    ));
    assert!(forbidden(
        Api::<Location>::all(control.clone())
            .delete("anything", &DeleteParams::default())
            .await
    ));

    lifecycle(&h, "least-privilege", control, provider).await;
}
