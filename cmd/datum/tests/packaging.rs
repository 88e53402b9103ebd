//! Packaging, against the real control plane: `config/default` (kustomize) and
//! `charts/datum` (helm) pass the API server's validation (`kubectl apply --dry-run=server`),
//! the chart renders the very objects `config/` holds, and each component does its job with
//! exactly the RBAC shipped in `config/rbac` — and is refused outside it.
//!
//! helm comes from `DATUM_HELM` (set by `tools/test.sh`) or else from `tools/helm.sh`, which
//! builds it once per machine from the pinned Go module in `tools/helm`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_api::networking::{Location, LocationProvider, LocationSpec, NetworkContext};
use datum_gcp_fake::FakeCompute;
use datum_runtime::leader::{Leadership, LeaseOptions};
use datum_runtime::shutdown::CancellationToken;
use datum_testenv::ControlPlane;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Bound on each wait, against a hung test; the waits end as soon as the state is reached.
const PATIENCE: Duration = Duration::from_secs(120);

/// The namespace every component runs in.
const SYSTEM: &str = "datum-system";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The control plane with every CRD installed and `datum-system` created (a server-side dry
/// run cannot create the namespace its objects go in), and an admin client.
async fn cluster() -> (&'static ControlPlane, Client) {
    static READY: OnceCell<()> = OnceCell::const_new();
    let cp = ControlPlane::shared_with(datum_api::crds::all)
        .await
        .expect("control plane starts");
    let admin = cp.admin_client().await.expect("admin client");
    READY
        .get_or_init(|| async {
            let namespace = std::fs::read_to_string(repo().join("config/default/namespace.yaml"))
                .expect("config/default/namespace.yaml");
            apply(&admin, &namespace).await;
        })
        .await;
    (cp, admin)
}

/// Runs `command`, feeding it `input`; returns stdout, or panics with stderr.
fn run(mut command: Command, input: Option<&str>) -> String {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    if let Some(input) = input {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("stdin written");
    }
    let output = child.wait_with_output().expect("the command finishes");
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn kubectl(cp: &ControlPlane) -> Command {
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(cp.kubeconfig_path());
    command
}

/// `kubectl kustomize <dir>` (kustomize as kubectl ships it).
fn kustomize(dir: &str) -> String {
    let mut command = Command::new("kubectl");
    command.arg("kustomize").arg(repo().join(dir));
    run(command, None)
}

fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("DATUM_HELM") {
        return PathBuf::from(path);
    }
    let path = run(Command::new(repo().join("tools/helm.sh")), None);
    PathBuf::from(path.trim())
}

/// `helm template datum charts/datum -n datum-system` with `args` appended.
fn helm_template(args: &[&str]) -> String {
    let mut command = Command::new(helm());
    command
        .args(["template", "datum"])
        .arg(repo().join("charts/datum"))
        .args(["--namespace", SYSTEM])
        .args(args);
    run(command, None)
}

/// The objects of a multi-document YAML stream (empty documents skipped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| <Value as serde::Deserialize>::deserialize(document).expect("YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

/// Objects by `Kind namespace/name`, with the labels that say who rendered them removed
/// (helm adds its own; the selector, which must match, is kept).
fn by_identity(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|mut object| {
            let identity = format!(
                "{} {}/{}",
                object["kind"].as_str().unwrap_or_default(),
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            for labels in ["/metadata", "/spec/template/metadata"] {
                if let Some(metadata) = object.pointer_mut(labels).and_then(Value::as_object_mut) {
                    metadata.remove("labels");
                }
            }
            (identity, object)
        })
        .collect()
}

/// Where `a` and `b` first differ, as a JSON pointer with both values; `None` if equal.
fn difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(key, p)| match y.get(key) {
                Some(q) => difference(p, q, &format!("{at}/{key}")),
                None => Some(format!("{at}/{key}: only in the chart")),
            })
            .or_else(|| {
                y.keys()
                    .find(|key| !x.contains_key(*key))
                    .map(|key| format!("{at}/{key}: only in config/"))
            }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(p, q, &format!("{at}/{i}"))),
        // kustomize writes `65535.0` as `65535`: the same number.
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64() != y.as_f64()).then(|| format!("{at}: {x} != {y}"))
        }
        _ => (a != b).then(|| format!("{at}: {a} != {b}")),
    }
}

/// Asserts that `chart` holds exactly the objects of `config`, naming the first difference.
fn assert_same_objects(chart: &BTreeMap<String, Value>, config: &BTreeMap<String, Value>) {
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        config.keys().collect::<Vec<_>>(),
        "the chart and config/ hold the same objects"
    );
    for (identity, object) in config {
        if let Some(difference) = difference(&chart[identity], object, "") {
            panic!("{identity}: the chart's differs from config/'s at {difference}");
        }
    }
}

/// Applies every object in `yaml` with server-side apply.
async fn apply(client: &Client, yaml: &str) {
    datum_testenv::apply_manifests(client, yaml, "packaging-test")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn rbac(file: &str) -> String {
    std::fs::read_to_string(repo().join("config/rbac").join(file))
        .unwrap_or_else(|e| panic!("config/rbac/{file}: {e}"))
}

/// Applies `config/rbac/<file>` and returns a client for ServiceAccount `account` once RBAC
/// has taken effect (the authorizer follows role changes asynchronously).
async fn component(cp: &ControlPlane, admin: &Client, file: &str, account: &str) -> Client {
    apply(admin, &rbac(file)).await;
    let (client, _) = cp
        .service_account_client(admin, SYSTEM, account)
        .await
        .expect("a ServiceAccount token");
    wait_until("the shipped role is in force", || async {
        can(
            &client,
            "create",
            "coordination.k8s.io",
            "leases",
            Some(SYSTEM),
        )
        .await
    })
    .await;
    client
}

/// Whether `client` may `verb` the resource (`resource` or `resource/subresource`).
async fn can(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, subresource)) => (resource, Some(subresource.to_owned())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                namespace: namespace.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a self subject access review")
        .status
        .is_some_and(|s| s.allowed)
}

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

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

async fn create<K>(api: &Api<K>, value: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created")
}

/// Holds, then releases, a Lease in `namespace` as `client` — what `--leader-elect` does.
async fn hold_a_lease(client: &Client, namespace: &str, name: &str) {
    let mut leadership = Leadership::start(
        client.clone(),
        LeaseOptions::new(namespace, name, "packaging-test"),
    )
    .await
    .expect("the Lease is taken");
    tokio::time::timeout(PATIENCE, leadership.acquired())
        .await
        .expect("leading");
    leadership.release().await.expect("the Lease is released");
}

#[test]
fn the_chart_renders_the_objects_of_config() {
    // Every component enabled: exactly config/rbac and config/manager.
    let chart = by_identity(documents(&helm_template(&[
        "--set",
        "providers.sim.enabled=true,providers.gcp.enabled=true",
    ])));
    let config = by_identity(
        documents(&kustomize("config/rbac"))
            .into_iter()
            .chain(documents(&kustomize("config/manager")))
            .collect(),
    );
    assert_same_objects(&chart, &config);

    // The defaults: what config/default installs, less the namespace (Helm's to create) and
    // the ServiceAccounts and roles of the providers it does not run.
    let defaults = by_identity(documents(&helm_template(&["--include-crds"])));
    let installed: BTreeMap<String, Value> = by_identity(documents(&kustomize("config/default")))
        .into_iter()
        .filter(|(identity, _)| {
            !identity.starts_with("Namespace ")
                && !identity.contains("provider-sim")
                && !identity.contains("provider-gcp")
        })
        .collect();
    assert_same_objects(&defaults, &installed);
    assert!(
        installed
            .keys()
            .filter(|i| i.starts_with("CustomResourceDefinition "))
            .count()
            == datum_api::crds::all().len(),
        "every CRD is installed"
    );

    // A credentials Secret named in the values gets the Role of credentials-role.yaml.
    let with_key = by_identity(documents(&helm_template(&[
        "--set",
        "providers.sim.enabled=true,providers.sim.credentialsSecrets={sim-credentials}",
    ])));
    let template = by_identity(documents(&rbac("credentials-role.yaml")));
    let rules = |objects: &BTreeMap<String, Value>, name: &str| {
        objects[&format!("Role {SYSTEM}/{name}")]["rules"].clone()
    };
    assert_eq!(
        rules(&with_key, "datum-provider-sim-credentials-sim-credentials"),
        rules(&template, "datum-provider-sim-credentials")
    );
}

#[tokio::test]
async fn config_default_passes_the_api_servers_validation() {
    let (cp, _) = cluster().await;
    let expected = documents(&kustomize("config/default")).len();
    let mut command = kubectl(cp);
    command
        .args(["apply", "--dry-run=server", "-k"])
        .arg(repo().join("config/default"));
    let out = run(command, None);
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count(),
        expected,
        "every object passes:\n{out}"
    );
}

#[tokio::test]
async fn the_chart_passes_the_api_servers_validation() {
    let (cp, _) = cluster().await;
    for args in [
        &[][..],
        &[
            "--include-crds",
            "--set",
            "providers.sim.enabled=true,providers.gcp.enabled=true,providers.gcp.credentialsSecrets={gcp-credentials},providers.gcp.volumeNamespaces={default}",
        ][..],
    ] {
        let rendered = helm_template(args);
        let expected = documents(&rendered).len();
        let mut command = kubectl(cp);
        command.args(["apply", "--dry-run=server", "-f", "-"]);
        let out = run(command, Some(&rendered));
        assert_eq!(
            out.lines()
                .filter(|l| l.ends_with("(server dry run)"))
                .count(),
            expected,
            "every object of `helm template {args:?}` passes:\n{out}"
        );
    }
}

/// The install commands of docs/packaging.md, each `console` block as written against a
/// control plane of its own (they are alternatives): both leave the control plane's and the
/// local provider's Deployments, and the CRDs, in the cluster.
#[tokio::test]
async fn the_install_commands_of_the_packaging_doc_run_as_written() {
    let doc = std::fs::read_to_string(repo().join("docs/packaging.md")).expect("the doc");
    let blocks = common::console_blocks(&doc);
    assert!(blocks.len() >= 2, "kustomize and Helm: {blocks:?}");
    let helm_dir = helm().parent().expect("helm's directory").to_path_buf();
    let path = std::env::join_paths(std::iter::once(helm_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("a PATH");
    for block in blocks {
        let cp = ControlPlane::start(datum_testenv::Options::default())
            .await
            .expect("a control plane of its own");
        for command in &block {
            let mut shell = Command::new("bash");
            shell
                .args(["-euo", "pipefail", "-c", command])
                .current_dir(repo())
                .env("KUBECONFIG", cp.kubeconfig_path())
                .env("PATH", &path);
            run(shell, None);
        }
        let admin = cp.admin_client().await.expect("admin client");
        let deployments =
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(admin.clone(), SYSTEM);
        for name in ["datum-control", "datum-provider-local"] {
            assert!(
                deployments.get_opt(name).await.expect("reads").is_some(),
                "{block:?} makes Deployment {name}"
            );
        }
        let crds = Api::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >::all(admin);
        for crd in datum_api::crds::all() {
            let name = crd.metadata.name.expect("named");
            assert!(
                crds.get_opt(&name).await.expect("reads").is_some(),
                "{block:?} installs CRD {name}"
            );
        }
        cp.stop();
    }
}

/// The control plane with `config/rbac/datum-control.yaml` only: a Workload becomes a
/// WorkloadDeployment, an Instance and the NetworkContext it needs; it holds its Lease in
/// datum-system; Secrets, ConfigMaps and Location writes are refused.
#[tokio::test]
async fn the_control_plane_works_with_its_shipped_rbac_and_nothing_more() {
    let (cp, admin) = cluster().await;
    let control = component(cp, &admin, "datum-control.yaml", "datum-control").await;
    let ns = cp
        .fresh_namespace(&admin, "packaging-control")
        .await
        .expect("namespace");
    let city = format!("P{}", ns.len());
    let location = format!("{ns}-here");
    create(
        &Api::<Location>::all(admin.clone()),
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": {"name": location},
            "spec": {"locationClassName": "datum-managed",
                     "topology": {"topology.datum.net/city-code": city},
                     "provider": {"sim": {}}}
        }),
    )
    .await;
    create(
        &Api::<datum_api::networking::Network>::namespaced(admin.clone(), &ns),
        json!({"apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
               "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}}),
    )
    .await;

    let stop = CancellationToken::new();
    let settings = datum_control::Settings {
        namespace: Some(ns.clone()),
        resync: Duration::from_secs(2),
        retry: Duration::from_millis(250),
        ..datum_control::Settings::default()
    };
    let controllers = tokio::spawn(datum_control::run(
        control.clone(),
        settings,
        stop.clone().cancelled_owned(),
    ));
    create(
        &Api::<Workload>::namespaced(admin.clone(), &ns),
        json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
            "metadata": {"name": "web"},
            "spec": {
                "template": {"spec": {
                    "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                                "sandbox": {"containers": [{"name": "web", "image": "nginx"}]}},
                    "networkInterfaces": [{"network": {"name": "default"}}]
                }},
                "placements": [{"name": "here", "cityCodes": [city],
                                "scaleSettings": {"minReplicas": 1}}]
            }
        }),
    )
    .await;
    let deployments = Api::<WorkloadDeployment>::namespaced(admin.clone(), &ns);
    let instances = Api::<Instance>::namespaced(admin.clone(), &ns);
    let contexts = Api::<NetworkContext>::namespaced(admin.clone(), &ns);
    wait_until(
        "the Workload has a WorkloadDeployment, an Instance and a NetworkContext",
        || async {
            let count = |n: Result<usize, kube::Error>| n.unwrap_or(0);
            count(
                deployments
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items.len()),
            ) == 1
                && count(
                    instances
                        .list(&ListParams::default())
                        .await
                        .map(|l| l.items.len()),
                ) == 1
                && count(
                    contexts
                        .list(&ListParams::default())
                        .await
                        .map(|l| l.items.len()),
                ) == 1
        },
    )
    .await;
    wait_until("the Workload reports its deployment", || async {
        Api::<Workload>::namespaced(admin.clone(), &ns)
            .get("web")
            .await
            .ok()
            .and_then(|w| w.status)
            .is_some_and(|s| s.deployments == 1)
    })
    .await;
    stop.cancel();
    let _ = controllers.await;

    hold_a_lease(&control, SYSTEM, &format!("datum-control-{ns}")).await;
    assert!(forbidden(
        Api::<Lease>::namespaced(control.clone(), &ns)
            .create(&PostParams::default(), &Lease::default())
            .await
    ));
    assert!(forbidden(
        Api::<Secret>::namespaced(control.clone(), &ns)
            .list(&ListParams::default())
            .await
    ));
    assert!(forbidden(
        Api::<ConfigMap>::namespaced(control.clone(), &ns)
            .get("anything")
            .await
    ));
    let mut moved = Api::<Location>::all(admin.clone())
        .get(&location)
        .await
        .expect("the Location");
    moved.labels_mut().insert("moved".into(), "yes".into());
    assert!(forbidden(
        Api::<Location>::all(control.clone())
            .replace(&location, &PostParams::default(), &moved)
            .await
    ));
    assert!(forbidden(
        Api::<Location>::all(control.clone())
            .delete(&location, &DeleteParams::default())
            .await
    ));
}

/// A throwaway RSA key generated for the GCP provider's tests; no credential for anything.
const TEST_KEY_PEM: &str =
    include_str!("../../../providers/gcp/tests/fixtures/test-service-account-key.pem");

/// The GCP provider with `config/rbac/provider-gcp.yaml` and a credentials Role for its one
/// key Secret, against the fake Compute Engine: it reads that Secret, takes an
/// Instance and a NetworkContext to Programmed, deletes the Instance's VM, holds its Lease in
/// datum-system, and is refused outside its role.
#[tokio::test]
async fn the_gcp_provider_works_with_its_shipped_rbac_and_nothing_more() {
    use base64::Engine as _;

    let (cp, admin) = cluster().await;
    apply(&admin, &rbac("credentials-role.yaml").replace("sim", "gcp")).await;
    let provider = component(cp, &admin, "provider-gcp.yaml", "datum-provider-gcp").await;
    let ns = cp
        .fresh_namespace(&admin, "packaging-gcp")
        .await
        .expect("namespace");

    // The fake, trusting the test key; the key file in Secret datum-system/gcp-credentials.
    let fake = FakeCompute::new(2);
    let der: Vec<u8> = base64::engine::general_purpose::STANDARD
        .decode(
            TEST_KEY_PEM
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("PEM base64");
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("the test key loads");
    fake.trust_key(
        ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec(),
    );
    let listener = fake.listen().await.expect("the fake listens");
    fake.with_compute(|c| {
        c.seed(
            "projects/datum-test/global/networks/default",
            json!({ "name": "default", "autoCreateSubnetworks": true, "mtu": 1460 }),
        );
    });
    let key = json!({
        "type": "service_account", "project_id": "datum-test", "private_key_id": "test-key-1",
        "private_key": TEST_KEY_PEM, "client_email": "provider@datum-test.iam.gserviceaccount.com",
        "token_uri": listener.token_uri,
    });
    apply(
        &admin,
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "gcp-credentials", "namespace": SYSTEM},
                "stringData": {"credentials.json": key.to_string()}})
        .to_string(),
    )
    .await;
    let config = format!("{ns}-gcp");
    apply(
        &admin,
        &json!({
            "apiVersion": "gcp.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
            "metadata": {"name": config},
            "spec": {"projectId": "datum-test", "endpoint": listener.endpoint,
                     "credentials": {"secretRef": {"namespace": SYSTEM, "name": "gcp-credentials",
                                                   "key": "credentials.json"}}}
        })
        .to_string(),
    )
    .await;
    let location = format!("{ns}-gcp");
    let settings =
        json!({"projectId": "datum-test", "region": "us-central1", "zone": "us-central1-a"});
    Api::<Location>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Location::new(
                &location,
                LocationSpec::new(
                    "self-managed",
                    LocationProvider::named(
                        "gcp",
                        settings.as_object().cloned().unwrap_or_default(),
                    )
                    .expect("a gcp Location"),
                ),
            ),
        )
        .await
        .expect("the Location");

    let mut options = datum_provider::Options::new(config.clone());
    options.namespace = Some(ns.clone());
    options.resync = Duration::from_secs(1);
    options.progress_requeue = Duration::from_millis(200);
    options.config_poll = Duration::from_millis(300);
    options.backoff_initial = Duration::from_millis(50);
    options.backoff_max = Duration::from_secs(1);
    options.leader_election = Some(LeaseOptions::new(
        SYSTEM,
        format!("datum-provider-gcp-{ns}"),
        "packaging-test",
    ));
    let stop = CancellationToken::new();
    let gcp = datum_provider_gcp::GcpProvider {
        poll_interval: Duration::from_millis(10),
        operation_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
        kube: Some(provider.clone()),
        ..datum_provider_gcp::GcpProvider::default()
    };
    let running = tokio::spawn(datum_provider::run(
        gcp,
        provider.clone(),
        options,
        stop.clone(),
    ));

    let instances = Api::<Instance>::namespaced(admin.clone(), &ns);
    let instance = create(
        &instances,
        json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Instance",
            "metadata": {"name": "web-0"},
            "spec": {
                "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                            "sandbox": {"containers": [{"name": "app", "image": "nginx:1"}]}},
                "networkInterfaces": [{"network": {"name": "default"}}],
                "location": {"name": location},
                "controller": {"templateHash": "h1"}
            }
        }),
    )
    .await;
    let contexts = Api::<NetworkContext>::namespaced(admin.clone(), &ns);
    let context = create(
        &contexts,
        json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "NetworkContext",
            "metadata": {"name": "default-ctx"},
            "spec": {"network": {"name": "default"}, "location": {"name": location}}
        }),
    )
    .await;
    let external = |uid: Option<String>| format!("datum-{}", uid.unwrap_or_default());
    let (vm, network) = (external(instance.uid()), external(context.uid()));
    wait_until(
        "the Instance and the NetworkContext are Programmed",
        || async {
            let instance = instances.get("web-0").await.ok();
            let context = contexts.get("default-ctx").await.ok();
            instance.is_some_and(|i| {
                let conditions = i.status.and_then(|s| s.conditions).unwrap_or_default();
                datum_api::conditions::is_true(&conditions, "Programmed")
            }) && context.is_some_and(|c| {
                let conditions = c.status.map(|s| s.conditions).unwrap_or_default();
                datum_api::conditions::is_true(&conditions, "Programmed")
            })
        },
    )
    .await;
    let names = fake.with_compute(|c| c.names());
    assert!(
        names.contains(&vm) && names.contains(&network),
        "the VM and the network exist in the fake: {names:?}"
    );
    instances
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_until("the VM is gone and the Instance with it", || async {
        !fake.with_compute(|c| c.names()).contains(&vm)
            && matches!(instances.get_opt("web-0").await, Ok(None))
    })
    .await;
    stop.cancel();
    let _ = running.await;

    // Secrets are read one by name (the key through its credentials Role, volumes through
    // datum-provider-gcp-volumes), never listed or watched.
    let own = Api::<Secret>::namespaced(provider.clone(), SYSTEM);
    assert!(own.get("gcp-credentials").await.is_ok());
    assert!(forbidden(own.list(&ListParams::default()).await));
    assert!(forbidden(
        Api::<Secret>::namespaced(provider.clone(), &ns)
            .list(&ListParams::default())
            .await
    ));
    let mut another: Instance = instances
        .get_opt("web-0")
        .await
        .ok()
        .flatten()
        .unwrap_or(instance);
    another.metadata = kube::api::ObjectMeta {
        name: Some("web-1".into()),
        ..Default::default()
    };
    another.status = None;
    assert!(forbidden(
        Api::<Instance>::namespaced(provider.clone(), &ns)
            .create(&PostParams::default(), &another)
            .await
    ));
    assert!(forbidden(
        Api::<NetworkContext>::namespaced(provider.clone(), &ns)
            .delete("default-ctx", &DeleteParams::default())
            .await
    ));
}

/// What every provider's SDK runtime does, asked of the API server per provider
/// ServiceAccount; and what none may do. The local and GCP providers also read the
/// ConfigMaps and Secrets Instances name: the local provider's own code does that here with
/// its token.
#[tokio::test]
async fn provider_roles_grant_what_the_sdk_does_and_nothing_more() {
    let (cp, admin) = cluster().await;
    let ns = cp
        .fresh_namespace(&admin, "packaging-providers")
        .await
        .expect("namespace");
    let compute = "compute.datumapis.com";
    let networking = "networking.datumapis.com";
    for provider in ["sim", "local", "gcp"] {
        let account = format!("datum-provider-{provider}");
        let client = component(cp, &admin, &format!("provider-{provider}.yaml"), &account).await;
        let own_group = format!("{provider}.provider.datum.net");
        let mut allowed = vec![
            ("list", compute, "instances", Some(ns.as_str())),
            ("watch", compute, "instances", None),
            ("patch", compute, "instances", Some(&ns)),
            ("patch", compute, "instances/status", Some(&ns)),
            ("watch", networking, "networkcontexts", None),
            ("patch", networking, "networkcontexts/status", Some(&ns)),
            ("watch", networking, "subnets", None),
            ("patch", networking, "subnets/status", Some(&ns)),
            ("watch", networking, "locations", None),
            ("get", own_group.as_str(), "providerconfigs", None),
            ("create", "events.k8s.io", "events", Some(&ns)),
            ("patch", "events.k8s.io", "events", Some(&ns)),
            ("update", "coordination.k8s.io", "leases", Some(SYSTEM)),
        ];
        let mut refused = vec![
            ("create", compute, "instances", Some(ns.as_str())),
            ("delete", compute, "instances", Some(&ns)),
            ("update", compute, "instances/status", Some(&ns)),
            ("create", compute, "workloads", Some(&ns)),
            ("patch", compute, "workloaddeployments", Some(&ns)),
            ("patch", networking, "locations", None),
            ("create", networking, "subnets", Some(&ns)),
            ("patch", networking, "networks", Some(&ns)),
            ("list", own_group.as_str(), "providerconfigs", None),
            ("patch", own_group.as_str(), "providerconfigs", None),
            ("list", "", "secrets", Some(&ns)),
            ("watch", "", "configmaps", Some(&ns)),
            ("create", "", "pods", Some(&ns)),
            ("create", "coordination.k8s.io", "leases", Some(&ns)),
        ];
        // Another provider's ProviderConfigs are not its business.
        let other = if provider == "sim" {
            "gcp.provider.datum.net"
        } else {
            "sim.provider.datum.net"
        };
        refused.push(("get", other, "providerconfigs", None));
        refused.push(("patch", networking, "networkpolicies", Some(&ns)));
        if provider != "sim" {
            // They enforce NetworkPolicy objects; sim does not watch them.
            allowed.push(("list", networking, "networkpolicies", Some(&ns)));
            allowed.push(("watch", networking, "networkpolicies", None));
        } else {
            refused.push(("watch", networking, "networkpolicies", None));
        }
        if provider != "sim" {
            // Instances' configMap and secret volumes (datum-provider-<p>-volumes).
            allowed.push(("get", "", "secrets", Some(&ns)));
            allowed.push(("get", "", "configmaps", Some(&ns)));
        } else {
            refused.push(("get", "", "secrets", Some(&ns)));
            refused.push(("get", "", "configmaps", Some(&ns)));
        }
        for (verb, group, resource, namespace) in allowed {
            assert!(
                can(&client, verb, group, resource, namespace).await,
                "{account} may {verb} {group} {resource} in {namespace:?}"
            );
        }
        for (verb, group, resource, namespace) in refused {
            assert!(
                !can(&client, verb, group, resource, namespace).await,
                "{account} may not {verb} {group} {resource} in {namespace:?}"
            );
        }
        if provider == "local" {
            local_volumes_are_read_with_the_providers_token(&admin, &client, &ns).await;
        }
    }
}

/// The local provider's own volume code, with its token, writes a configMap and a secret
/// volume out as files.
async fn local_volumes_are_read_with_the_providers_token(admin: &Client, local: &Client, ns: &str) {
    apply(
        admin,
        &format!(
            "{}\n---\n{}",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": ns},
                   "data": {"app.conf": "colour = blue"}}),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "token", "namespace": ns},
                   "stringData": {"token": "s3cret"}})
        ),
    )
    .await;
    let volumes: Vec<datum_api::compute::InstanceVolume> = serde_json::from_value(json!([
        {"name": "settings", "configMap": {"name": "settings"}},
        {"name": "token", "secret": {"secretName": "token"}}
    ]))
    .expect("volumes");
    let dir = std::env::temp_dir().join(format!("datum-packaging-{}-{ns}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let written = datum_provider_local::volumes::write_all(Some(local), ns, &dir, &volumes)
        .await
        .expect("the volumes are read with the local provider's token");
    let read = |volume: &str, file: &str| std::fs::read_to_string(written[volume].join(file)).ok();
    assert_eq!(
        read("settings", "app.conf").as_deref(),
        Some("colour = blue")
    );
    assert_eq!(read("token", "token").as_deref(), Some("s3cret"));
    let _ = std::fs::remove_dir_all(&dir);
}
