//! The conformance suite every provider runs against itself on a real control plane.
//!
//! A provider's test supplies a [`Harness`] — a provider factory, ProviderConfigs for a few
//! platform behaviours, a view of what exists on the platform, and fresh namespaces — and
//! calls the checks, one `#[tokio::test]` each:
//!
//! ```no_run
//! # async fn demo<H: datum_provider::conformance::Harness>(harness: H) {
//! datum_provider::conformance::create_then_observe_is_idempotent(&harness).await;
//! # }
//! ```
//!
//! Each check acts as the control plane: it creates a Location served by the provider,
//! Instances (and network kinds) in a fresh namespace, runs the SDK runtime in-process
//! watching only that namespace, and asserts on the objects' status and on the platform.
//! Waits are bounded safety nets; no check asserts how long anything took.

use std::future::Future;
use std::time::Duration;

use datum_api::compute::Instance;
use datum_api::conditions;
use datum_api::networking::{Location, LocationProvider, LocationSpec, NetworkContext, Subnet};
use datum_runtime::shutdown::CancellationToken;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::external::Provider;
use crate::managed::PROGRAMMED;
use crate::names::Names;
use crate::runtime::{Options, run};

/// How the platform should behave under a ProviderConfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Works.
    Healthy,
    /// Every call fails.
    Failing,
    /// Create takes effect on the platform, then the call never returns.
    HangAfterCreate,
    /// Connecting fails (e.g. empty credentials).
    Invalid,
}

/// What a provider supplies to run the suite.
pub trait Harness: Send + Sync {
    /// The provider under test.
    type Provider: Provider;

    /// A fresh provider, as after a process restart.
    fn provider(&self) -> Self::Provider;

    /// An admin client of the control plane, with the Datum CRDs and the provider's
    /// ProviderConfig CRD installed.
    fn client(&self) -> Client;

    /// A fresh namespace named after `check`.
    fn fresh_namespace(&self, check: &str) -> impl Future<Output = String> + Send;

    /// A ProviderConfig named `name` making the platform behave as `behaviour`. Configs
    /// must share one platform: what one created, another sees.
    fn config(
        &self,
        name: &str,
        behaviour: Behaviour,
    ) -> impl Future<Output = <Self::Provider as Provider>::Config> + Send;

    /// The external names of everything that exists on the platform, one entry per
    /// resource (so a duplicate shows twice).
    fn external_names(&self) -> impl Future<Output = Vec<String>> + Send;

    /// The provider's settings in the checks' Location (`Location.spec.provider.<name>`),
    /// e.g. GCP's `projectId`, `region` and `zone`. None by default.
    fn location_settings(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// Bound on each wait, against a hung test.
const PATIENCE: Duration = Duration::from_secs(90);

/// A check's world: its namespace, Location and client.
struct World<'h, H: Harness> {
    harness: &'h H,
    client: Client,
    namespace: String,
    location: String,
}

/// A runtime running in this process.
struct Running {
    task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Running {
    /// Stops as a crash would: in-flight calls are abandoned.
    fn crash(self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

impl<'h, H: Harness> World<'h, H> {
    async fn new(harness: &'h H, check: &str) -> Self {
        let client = harness.client();
        let namespace = harness.fresh_namespace(check).await;
        let location = format!("{namespace}-loc");
        let provider = harness.provider();
        let spec = LocationSpec::new(
            "self-managed",
            LocationProvider::named(provider.name(), harness.location_settings())
                .expect("a provider Location"),
        );
        Api::<Location>::all(client.clone())
            .create(&PostParams::default(), &Location::new(&location, spec))
            .await
            .expect("the Location is created");
        Self {
            harness,
            client,
            namespace,
            location,
        }
    }

    fn config_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.namespace)
    }

    /// Creates or replaces the ProviderConfig `suffix` with `behaviour`.
    async fn set_config(&self, suffix: &str, behaviour: Behaviour) {
        let mut config = self
            .harness
            .config(&self.config_name(suffix), behaviour)
            .await;
        config.meta_mut().managed_fields = None;
        config.meta_mut().resource_version = None;
        Api::<<H::Provider as Provider>::Config>::all(self.client.clone())
            .patch(
                &self.config_name(suffix),
                &PatchParams::apply("conformance").force(),
                &Patch::Apply(&config),
            )
            .await
            .expect("the ProviderConfig applies");
    }

    fn start(&self, config_suffix: &str) -> Running {
        let mut options = Options::new(self.config_name(config_suffix));
        options.namespace = Some(self.namespace.clone());
        options.resync = Duration::from_secs(1);
        options.progress_requeue = Duration::from_millis(200);
        options.config_poll = Duration::from_millis(300);
        options.backoff_initial = Duration::from_millis(50);
        options.backoff_max = Duration::from_secs(1);
        let shutdown = CancellationToken::new();
        let provider = self.harness.provider();
        let client = self.client.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = run(provider, client, options, token).await {
                tracing::error!(%error, "the runtime stopped");
            }
        });
        Running { task, shutdown }
    }

    fn instances(&self) -> Api<Instance> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_instance(&self, name: &str) -> Instance {
        let instance: Instance =
            serde_json::from_value(instance_json(name, &self.location, "h1", "nginx:1"))
                .expect("a valid Instance");
        self.instances()
            .create(&PostParams::default(), &instance)
            .await
            .expect("the Instance is created")
    }

    /// How many platform resources carry `uid`'s external name.
    async fn count_external(&self, uid: &str) -> usize {
        let name = format!("datum-{uid}");
        self.harness
            .external_names()
            .await
            .iter()
            .filter(|n| **n == name)
            .count()
    }

    async fn wait_instance(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&Instance) -> bool,
    ) -> Instance {
        eventually(what, || async {
            self.instances()
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .filter(|i| ok(i))
        })
        .await
    }

    async fn wait_gone(&self, name: &str) {
        eventually("the Instance is gone", || async {
            matches!(self.instances().get_opt(name).await, Ok(None)).then_some(())
        })
        .await;
    }
}

/// Polls `probe` until it yields a value; panics after [`PATIENCE`] naming `what`.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn instance_json(name: &str, location: &str, hash: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": name },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-standard-2" },
                "sandbox": { "containers": [{ "name": "app", "image": image }] },
            },
            "networkInterfaces": [{ "network": { "name": "default" } }],
            "location": { "name": location },
            "controller": { "templateHash": hash },
        },
    })
}

/// Whether the condition `type_` is True for the current generation.
fn programmed(instance: &Instance) -> bool {
    condition_true(instance, PROGRAMMED) && condition_true(instance, "Running")
}

fn condition_true(instance: &Instance, type_: &str) -> bool {
    let list = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions::get(&list, type_).is_some_and(|c| {
        c.status == "True" && c.observed_generation == instance.metadata.generation
    })
}

fn programmed_condition(
    instance: &Instance,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let list = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions::get(&list, PROGRAMMED).cloned()
}

/// Create, then observe again and again: exactly one platform resource per object, status
/// complete and stable; the network kinds are programmed too.
pub async fn create_then_observe_is_idempotent<H: Harness>(harness: &H) {
    let world = World::new(harness, "idempotent").await;
    world.set_config("cfg", Behaviour::Healthy).await;
    let running = world.start("cfg");
    let created = world.create_instance("web-0").await;
    let uid = created.uid().expect("a uid");
    let first = world
        .wait_instance("web-0", "web-0 is programmed and running", programmed)
        .await;
    let status = first.status.clone().unwrap_or_default();
    assert!(
        status.provider_id.is_some(),
        "providerID is recorded: {status:?}"
    );
    assert_eq!(
        status
            .controller
            .map(|c| c.observed_template_hash)
            .as_deref(),
        Some("h1")
    );
    assert!(
        status.network_interfaces.is_some_and(|n| n.len() == 1),
        "addresses are reported"
    );
    let names = Names::new(harness.provider().name());
    assert!(first.annotations().contains_key(&names.external_id));
    assert!(!first.annotations().contains_key(&names.create_pending));
    assert!(first.finalizers().contains(&names.finalizer));
    // Several resyncs later: still one resource, same ID.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = world.instances().get("web-0").await.expect("still there");
    assert_eq!(
        later.annotations().get(&names.external_id),
        first.annotations().get(&names.external_id)
    );
    assert_eq!(
        world.count_external(&uid).await,
        1,
        "exactly one platform resource"
    );

    // Network kinds.
    let contexts: Api<NetworkContext> = Api::namespaced(world.client.clone(), &world.namespace);
    let context: NetworkContext = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "NetworkContext",
        "metadata": { "name": "default-ctx" },
        "spec": { "network": { "name": "default" }, "location": { "name": world.location } },
    }))
    .expect("a valid NetworkContext");
    let context = contexts
        .create(&PostParams::default(), &context)
        .await
        .expect("created");
    let subnets: Api<Subnet> = Api::namespaced(world.client.clone(), &world.namespace);
    let subnet: Subnet = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Subnet",
        "metadata": { "name": "default-sub" },
        "spec": {
            "subnetClass": "private", "networkContext": { "name": "default-ctx" },
            "location": { "name": world.location }, "ipFamily": "IPv4",
            "startAddress": "10.0.0.0", "prefixLength": 24,
        },
    }))
    .expect("a valid Subnet");
    let subnet = subnets
        .create(&PostParams::default(), &subnet)
        .await
        .expect("created");
    eventually("the NetworkContext is programmed", || async {
        let c = contexts.get("default-ctx").await.ok()?;
        conditions::is_true(&c.status?.conditions, PROGRAMMED).then_some(())
    })
    .await;
    eventually("the Subnet is programmed", || async {
        let s = subnets.get("default-sub").await.ok()?;
        conditions::is_true(&s.status?.conditions, PROGRAMMED).then_some(())
    })
    .await;
    assert_eq!(
        world
            .count_external(&context.uid().unwrap_or_default())
            .await,
        1
    );
    assert_eq!(
        world
            .count_external(&subnet.uid().unwrap_or_default())
            .await,
        1
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// A new template converges: `observedTemplateHash` follows, still one resource.
pub async fn update_converges<H: Harness>(harness: &H) {
    let world = World::new(harness, "update").await;
    world.set_config("cfg", Behaviour::Healthy).await;
    let running = world.start("cfg");
    let uid = world.create_instance("web-0").await.uid().expect("a uid");
    world
        .wait_instance("web-0", "web-0 is programmed", programmed)
        .await;
    let new = instance_json("web-0", &world.location, "h2", "nginx:2");
    world
        .instances()
        .patch(
            "web-0",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": new["spec"] })),
        )
        .await
        .expect("the spec changes");
    world
        .wait_instance("web-0", "web-0 matches the new template", |i| {
            programmed(i)
                && i.status
                    .as_ref()
                    .and_then(|s| s.controller.as_ref())
                    .map(|c| c.observed_template_hash.as_str())
                    == Some("h2")
        })
        .await;
    assert_eq!(
        world.count_external(&uid).await,
        1,
        "updated in place, not recreated"
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// Deleting the object deletes the platform resource, then the object goes.
pub async fn delete_leaves_nothing<H: Harness>(harness: &H) {
    let world = World::new(harness, "delete").await;
    world.set_config("cfg", Behaviour::Healthy).await;
    let running = world.start("cfg");
    let uid = world.create_instance("web-0").await.uid().expect("a uid");
    world
        .wait_instance("web-0", "web-0 is programmed", programmed)
        .await;
    assert_eq!(world.count_external(&uid).await, 1);
    world
        .instances()
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("deletes");
    world.wait_gone("web-0").await;
    assert_eq!(
        world.count_external(&uid).await,
        0,
        "nothing left on the platform"
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// Starts a create that takes effect on the platform but never returns, then crashes the
/// runtime: the object is left with the create-pending mark and no ID.
async fn interrupted_create<H: Harness>(world: &World<'_, H>) -> String {
    world.set_config("cfg", Behaviour::HangAfterCreate).await;
    let running = world.start("cfg");
    let uid = world.create_instance("web-0").await.uid().expect("a uid");
    let names = Names::new(world.harness.provider().name());
    eventually("the platform made the resource", || async {
        (world.count_external(&uid).await == 1).then_some(())
    })
    .await;
    let pending = world.instances().get("web-0").await.expect("exists");
    assert!(
        pending.annotations().contains_key(&names.create_pending),
        "the pending mark is written before the create"
    );
    assert!(
        !pending.annotations().contains_key(&names.external_id),
        "no ID was recorded"
    );
    running.crash();
    world.set_config("cfg", Behaviour::Healthy).await;
    uid
}

/// A crash between the platform's create and recording the ID: after restart the resource
/// is adopted, not duplicated.
pub async fn crash_between_create_and_record_does_not_duplicate<H: Harness>(harness: &H) {
    let world = World::new(harness, "crash").await;
    let uid = interrupted_create(&world).await;
    let running = world.start("cfg");
    let names = Names::new(harness.provider().name());
    let adopted = world
        .wait_instance("web-0", "web-0 is programmed after restart", programmed)
        .await;
    assert!(adopted.annotations().contains_key(&names.external_id));
    assert!(!adopted.annotations().contains_key(&names.create_pending));
    assert_eq!(
        world.count_external(&uid).await,
        1,
        "adopted, not created twice"
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// Deleting while a create is pending (and the runtime is down) still cleans up.
pub async fn delete_while_create_pending_cleans_up<H: Harness>(harness: &H) {
    let world = World::new(harness, "pending-delete").await;
    let uid = interrupted_create(&world).await;
    world
        .instances()
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("deletes");
    let running = world.start("cfg");
    world.wait_gone("web-0").await;
    assert_eq!(
        world.count_external(&uid).await,
        0,
        "the half-made resource is gone"
    );
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// Platform errors surface in `Programmed` and are retried; once the platform recovers the
/// object converges.
pub async fn platform_errors_surface_and_recover<H: Harness>(harness: &H) {
    let world = World::new(harness, "platform-errors").await;
    world.set_config("cfg", Behaviour::Failing).await;
    let running = world.start("cfg");
    let uid = world.create_instance("web-0").await.uid().expect("a uid");
    let failed = world
        .wait_instance(
            "web-0",
            "Programmed=False with the platform's reason",
            |i| {
                programmed_condition(i).is_some_and(|c| {
                    c.status == "False"
                        && c.reason != "Pending"
                        && c.reason != "ProgrammingInProgress"
                        && c.reason != "ProviderConfigInvalid"
                        && !c.message.is_empty()
                })
            },
        )
        .await;
    assert!(!programmed(&failed));
    assert_eq!(
        world.count_external(&uid).await,
        0,
        "failed calls take no effect"
    );
    world.set_config("cfg", Behaviour::Healthy).await;
    world
        .wait_instance(
            "web-0",
            "web-0 converges once the platform recovers",
            programmed,
        )
        .await;
    assert_eq!(world.count_external(&uid).await, 1);
    running.shutdown.cancel();
    let _ = running.task.await;
}

/// A missing or invalid ProviderConfig gives `Programmed=False`, reason
/// `ProviderConfigInvalid`, with a message naming the problem; fixing it converges.
pub async fn bad_config_gives_clear_condition<H: Harness>(harness: &H) {
    let world = World::new(harness, "bad-config").await;
    let running = world.start("cfg");
    world.create_instance("web-0").await;
    let missing = world.config_name("cfg");
    world
        .wait_instance(
            "web-0",
            "ProviderConfigInvalid naming the missing config",
            |i| {
                programmed_condition(i).is_some_and(|c| {
                    c.reason == "ProviderConfigInvalid"
                        && c.message.contains(&missing)
                        && c.message.contains("does not exist")
                })
            },
        )
        .await;
    world.set_config("cfg", Behaviour::Invalid).await;
    world
        .wait_instance(
            "web-0",
            "ProviderConfigInvalid saying why the config is invalid",
            |i| {
                programmed_condition(i).is_some_and(|c| {
                    c.reason == "ProviderConfigInvalid"
                        && c.message.contains("invalid")
                        && c.status == "False"
                })
            },
        )
        .await;
    world.set_config("cfg", Behaviour::Healthy).await;
    world
        .wait_instance(
            "web-0",
            "web-0 converges after the config is fixed",
            programmed,
        )
        .await;
    running.shutdown.cancel();
    let _ = running.task.await;
}
