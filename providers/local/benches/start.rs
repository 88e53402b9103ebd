//! Start benchmark: apply → `Running` for a container Instance on the local provider, next
//! to the container runtime's own start time for the same image, measured the same way
//! (wall time from the request to seeing the process running).
//!
//! ```sh
//! cargo bench -p datum-provider-local --bench start            # 10 runs of each
//! cargo bench -p datum-provider-local --bench start -- 30      # or DATUM_BENCH_RUNS=30
//! ```
//!
//! Sets up, on this host (root): a control plane on loopback, a containerd of its own, a
//! loopback `docker-registry` serving the busybox image of `tools/local-image.sh`, and the
//! local provider in this process (SDK default options, as the binary runs it). A warm-up
//! Instance pulls and unpacks the image first, so pulls are not counted.
//!
//! - **Instance**: a watch on the Instance is open before it is created; the clock runs
//!   from the create request to the watch event with `Running=True`. Also printed: when
//!   the provider's create had returned (the watch event recording the external ID).
//!   Between runs the Instance is deleted and gone.
//! - **Provider alone**: the provider's `create` verb called directly (no control plane, no
//!   SDK), then `observe` polled until it reports the instance running — what the provider
//!   itself adds on top of containerd (network namespace, veth, nftables, image manifest,
//!   container and task). Run after the SDK runtime has stopped.
//! - **Runtime alone**: with the provider's own containerd client, the same runtime spec
//!   and overlay root filesystem on the unpacked image: the clock runs from creating the
//!   container to the task reporting `Running` (create container, create task, start).
//!   The network namespace and overlay directories are made before the clock starts.
//!
//! Prints the median and 90th percentile of each, the differences (the provider's own
//! overhead over containerd; the control plane's and SDK's over the provider), and the load
//! average before and after.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containerd_client::types::Mount;
use containerd_client::types::v1::Status;
use datum_api::compute::Instance;
use datum_api::networking::{Location, LocationProvider, LocationSpec};
use datum_api::provider_config::local::{
    Containerd as ContainerdSettings, Network, ProviderConfig, ProviderConfigSpec, Registry,
    default_instance_types, default_storage_classes,
};
use datum_provider::{ExternalClient, ExternalResource, Observation, PowerState};
use datum_provider_local::containerd::{Containerd, Daemon};
use datum_provider_local::image::{Images, PullSecrets};
use datum_provider_local::runtime_spec::{self, ContainerSpec};
use datum_provider_local::{LocalHost, LocalProvider, netns};
use datum_runtime::shutdown::CancellationToken;
use datum_testenv::{ControlPlane, Options};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

/// Gives up on one Instance after this long.
const PATIENCE: Duration = Duration::from_secs(120);

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Everything the benchmark started on the host; stopped and removed when dropped.
struct Scratch {
    dir: PathBuf,
    prefix: String,
    containerd_namespace: String,
    daemon: Option<Daemon>,
    registry: Option<Child>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let socket = self.dir.join("containerd/containerd.sock");
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args(["--namespace", &self.containerd_namespace])
                .args(args)
                .stderr(Stdio::null())
                .output()
        };
        if let Ok(out) = ctr(&["tasks", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
                std::thread::sleep(Duration::from_millis(100));
                let _ = ctr(&["tasks", "rm", "-f", id]);
                let _ = ctr(&["containers", "rm", id]);
            }
        }
        drop(self.daemon.take());
        if let Some(mut registry) = self.registry.take() {
            let _ = registry.kill();
            let _ = registry.wait();
        }
        for name in netns::list(&self.prefix) {
            let _ = netns::remove(&name);
        }
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        // runc leaves the empty parent cgroup `/datum`; remove it unless others use it.
        for hierarchy in [
            "memory", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "pids", "systemd",
            "unified",
        ] {
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(hierarchy).join("datum"));
        }
    }
}

/// Builds the busybox image and serves it from a loopback registry; returns the registry.
async fn serve_image(dir: &Path) -> anyhow::Result<(String, Child)> {
    let layout = dir.join("busybox-oci");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/local-image.sh");
    let status = Command::new(script).arg(&layout).arg("/bin/sh").status()?;
    anyhow::ensure!(status.success(), "tools/local-image.sh failed");
    let registry = format!("127.0.0.1:{}", free_port()?);
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: {registry} }}\n",
            dir.join("registry").display()
        ),
    )?;
    let child = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "docker-registry", "serve"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    for _ in 0..50 {
        let pushed = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{registry}/datum/busybox:v1"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if pushed.success() {
            return Ok((registry, child));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the image could not be pushed to {registry}")
}

fn config_spec(scratch: &Scratch, registry: &str) -> ProviderConfigSpec {
    ProviderConfigSpec {
        state_dir: scratch.dir.join("state").display().to_string(),
        image_map: Default::default(),
        storage_classes: default_storage_classes(),
        registries: vec![Registry {
            host: registry.to_owned(),
            insecure: true,
            ..Registry::default()
        }],
        containerd: ContainerdSettings {
            socket: scratch
                .dir
                .join("containerd/containerd.sock")
                .display()
                .to_string(),
            namespace: scratch.containerd_namespace.clone(),
            ..ContainerdSettings::default()
        },
        network: Network {
            namespace_prefix: scratch.prefix.clone(),
        },
        instance_types: default_instance_types(),
    }
}

fn instance(name: &str, location: &str, image: &str) -> anyhow::Result<Instance> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": name },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-standard-2" },
                "sandbox": { "containers": [{
                    "name": "app", "image": image, "command": ["/bin/sleep", "100000"],
                }] },
            },
            "networkInterfaces": [{ "network": { "name": "bench" } }],
            "location": { "name": location },
            "controller": { "templateHash": "h1" },
        },
    }))?)
}

fn running(i: &Instance) -> bool {
    datum_api::conditions::is_true(
        i.status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default(),
        "Running",
    )
}

fn created(i: &Instance) -> bool {
    i.metadata
        .annotations
        .iter()
        .flatten()
        .any(|(k, v)| k.ends_with("/external-id") && !v.is_empty())
}

/// Creates Instance `name` and times, from the create request: the provider's create
/// having returned (its external ID recorded) and `Running=True`, both as the watch sees
/// them. Then deletes it and waits until it is gone.
async fn time_instance(
    api: &Api<Instance>,
    name: &str,
    location: &str,
    image: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api.clone(), config).boxed();
    // The watch is open (its initial list done) before the clock starts.
    while let Some(event) = events.try_next().await? {
        if matches!(event, watcher::Event::InitDone) {
            break;
        }
    }
    let object = instance(name, location, image)?;
    let started = Instant::now();
    api.create(&PostParams::default(), &object).await?;
    let mut create_returned = None;
    let to_running = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = events.try_next().await? {
            let watcher::Event::Apply(i) = event else {
                continue;
            };
            if create_returned.is_none() && created(&i) {
                create_returned = Some(started.elapsed());
            }
            if running(&i) {
                return Ok::<_, anyhow::Error>(started.elapsed());
            }
        }
        anyhow::bail!("the watch of {name} ended")
    })
    .await
    .map_err(|_| anyhow::anyhow!("{name} did not run within {PATIENCE:?}"))??;
    let create_returned = create_returned.unwrap_or(to_running);
    api.delete(name, &DeleteParams::default()).await?;
    let deadline = Instant::now() + PATIENCE;
    while api.get_opt(name).await?.is_some() {
        anyhow::ensure!(Instant::now() < deadline, "{name} was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((create_returned, to_running))
}

/// Times the provider alone: its `create` verb on `spec`, then `observe` until the instance
/// runs. Then deletes it.
async fn time_provider(
    host: &LocalHost,
    uid: &str,
    spec: &datum_api::compute::InstanceSpec,
) -> anyhow::Result<Duration> {
    let settings = json!({});
    let annotations = Default::default();
    let resource = ExternalResource::<Instance> {
        namespace: "bench",
        name: uid,
        uid,
        external_name: format!("datum-{uid}"),
        id: None,
        spec,
        location_settings: &settings,
        assigned: Vec::new(),
        annotations: &annotations,
        labels: &annotations,
        network_policies: Vec::new(),
    };
    let started = Instant::now();
    let id = host
        .create(&resource)
        .await
        .map_err(|e| anyhow::anyhow!("create: {}", e.message))?;
    loop {
        let observed = host
            .observe(&resource)
            .await
            .map_err(|e| anyhow::anyhow!("observe: {}", e.message))?;
        match observed {
            Observation::Exists { live, .. } if live.power == PowerState::Running => break,
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
        anyhow::ensure!(started.elapsed() < PATIENCE, "{uid} did not run");
    }
    let elapsed = started.elapsed();
    host.delete(&id, &resource)
        .await
        .map_err(|e| anyhow::anyhow!("delete: {}", e.message))?;
    Ok(elapsed)
}

/// Times containerd alone: create the container, create and start its task, until the
/// task reports `Running`. Then removes it.
async fn time_runtime(
    containerd: &Containerd,
    id: &str,
    spec: &serde_json::Value,
    rootfs: &Path,
    dir: &Path,
) -> anyhow::Result<Duration> {
    let layer = dir.join(id);
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    std::fs::create_dir_all(&upper)?;
    std::fs::create_dir_all(&work)?;
    let mounts = vec![Mount {
        r#type: "overlay".to_owned(),
        source: "overlay".to_owned(),
        options: vec![
            format!("lowerdir={}", rootfs.display()),
            format!("upperdir={}", upper.display()),
            format!("workdir={}", work.display()),
        ],
        ..Mount::default()
    }];
    let log = layer.join("app.log");
    let started = Instant::now();
    containerd
        .create_container(id, spec, HashMap::new())
        .await?;
    containerd.start_task(id, mounts, &log).await?;
    loop {
        match containerd.task(id).await? {
            Some(t) if t.status == Status::Running as i32 => break,
            Some(t) if t.status == Status::Stopped as i32 => {
                anyhow::bail!("the task of {id} stopped")
            }
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    let elapsed = started.elapsed();
    containerd.remove_task(id).await?;
    containerd.delete_container(id).await?;
    Ok(elapsed)
}

/// `(median, p90)` in milliseconds (nearest rank).
fn summary(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    (rank(0.5), rank(0.9))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a bare number sets the runs.
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .or_else(|| std::env::var("DATUM_BENCH_RUNS").ok()?.parse().ok())
        .unwrap_or(10)
        .max(1);
    datum_provider_local::image::install_crypto_provider();
    let load_before = load_average();
    let tag = std::process::id() % 100_000;
    let dir = PathBuf::from(format!("/tmp/datum-bench-start-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut scratch = Scratch {
        dir: dir.clone(),
        prefix: format!("b{tag}-"),
        containerd_namespace: format!("bench{tag}"),
        daemon: None,
        registry: None,
    };
    scratch.daemon = Some(Daemon::start(&dir.join("containerd")).await?);
    let (registry, child) = serve_image(&dir).await?;
    scratch.registry = Some(child);
    let image = format!("{registry}/datum/busybox:v1");

    let cp = ControlPlane::start(Options {
        crds: datum_api::crds::all(),
        ..Options::default()
    })
    .await?;
    let admin: Client = cp.admin_client().await?;
    let namespace = cp.fresh_namespace(&admin, "bench-start").await?;
    let location = format!("{namespace}-loc");
    Api::<Location>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Location::new(
                &location,
                LocationSpec::new(
                    "self-managed",
                    LocationProvider::named("local", serde_json::Map::new())?,
                ),
            ),
        )
        .await?;
    let config_name = format!("{namespace}-cfg");
    let spec = config_spec(&scratch, &registry);
    let mut config = ProviderConfig::new(&config_name, spec.clone());
    config.metadata.managed_fields = None;
    Api::<ProviderConfig>::all(admin.clone())
        .patch(
            &config_name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&config),
        )
        .await?;

    let stop = CancellationToken::new();
    let mut options = datum_provider::Options::new(&config_name);
    options.namespace = Some(namespace.clone());
    let provider = LocalProvider {
        kube: Some(admin.clone()),
        ..LocalProvider::default()
    };
    let provider_task = tokio::spawn({
        let (client, stop) = (admin.clone(), stop.clone());
        async move {
            if let Err(e) = datum_provider::run(provider, client, options, stop).await {
                eprintln!("the provider stopped: {e}");
            }
        }
    });
    println!(
        "start benchmark: {runs} runs each, image {image} (pre-pulled), control plane on loopback, load average before {load_before}"
    );

    let instances: Api<Instance> = Api::namespaced(admin.clone(), &namespace);
    let (_, warm) = time_instance(&instances, "warm-up", &location, &image).await?;
    println!(
        "warm-up Instance (pulls and unpacks the image): {:.0} ms",
        warm.as_secs_f64() * 1e3
    );
    let mut to_created = Vec::new();
    let mut to_running = Vec::new();
    for i in 0..runs {
        let (c, r) = time_instance(&instances, &format!("bench-{i}"), &location, &image).await?;
        to_created.push(c);
        to_running.push(r);
    }

    // The runtime alone: the same spec, image and containerd.
    let containerd = Containerd::connect(
        &dir.join("containerd/containerd.sock"),
        &scratch.containerd_namespace,
        "io.containerd.runc.v2",
    )?;
    let unpacked = Images::new(&dir.join("state"), spec.registries.clone())
        .ensure(&image, &PullSecrets::default())
        .await?;
    let runtime_netns = format!("{}runtime", scratch.prefix);
    netns::ensure(&runtime_netns)?;
    let mut env = unpacked.config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/bin:/sbin:/usr/bin:/usr/sbin".to_owned());
    }
    let mut runtime = Vec::new();
    for i in 0..=runs {
        let id = format!("runtime-{i}");
        let container_spec = runtime_spec::build(&ContainerSpec {
            hostname: id.clone(),
            args: vec!["/bin/sleep".to_owned(), "100000".to_owned()],
            env: env.clone(),
            cwd: unpacked.config.working_dir.clone(),
            netns_path: netns::path(&runtime_netns).display().to_string(),
            cgroups_path: format!("/datum/{id}"),
            memory_bytes: Some(8 << 30),
            cpu_millis: Some(2000),
            binds: Vec::new(),
        });
        let elapsed = time_runtime(
            &containerd,
            &id,
            &container_spec,
            &unpacked.rootfs,
            &dir.join("runtime"),
        )
        .await?;
        // The first run warms the shim binary's page cache, as the warm-up Instance did.
        if i > 0 {
            runtime.push(elapsed);
        }
    }
    stop.cancel();
    let _ = provider_task.await;

    // The provider alone, the SDK runtime stopped: the same Instance spec.
    let host = LocalHost::new(&spec, Some(admin.clone()), false)
        .map_err(|e| anyhow::anyhow!("connect: {e}"))?;
    let instance_spec = instance("provider", &location, &image)?.spec;
    let mut provider_alone = Vec::new();
    for i in 0..=runs {
        let elapsed = time_provider(&host, &format!("provider-{i}"), &instance_spec).await?;
        // The first run is a warm-up, as for the Instances.
        if i > 0 {
            provider_alone.push(elapsed);
        }
    }

    let (created_p50, created_p90) = summary(&to_created);
    let (running_p50, running_p90) = summary(&to_running);
    let (runtime_p50, runtime_p90) = summary(&runtime);
    let (provider_p50, provider_p90) = summary(&provider_alone);
    println!("{:<58} {:>10} {:>10}", "", "median", "p90");
    println!(
        "{:<58} {running_p50:>7.0} ms {running_p90:>7.0} ms",
        "Instance apply → Running=True (watch)"
    );
    println!(
        "{:<58} {created_p50:>7.0} ms {created_p90:>7.0} ms",
        "  of which apply → provider create returned (watch)"
    );
    println!(
        "{:<58} {provider_p50:>7.0} ms {provider_p90:>7.0} ms",
        "provider alone: create verb → observe says Running"
    );
    println!(
        "{:<58} {runtime_p50:>7.0} ms {runtime_p90:>7.0} ms",
        "containerd alone: create container + task → Running"
    );
    println!(
        "{:<58} {:>7.0} ms {:>7.0} ms",
        "overhead (Instance − containerd alone)",
        running_p50 - runtime_p50,
        running_p90 - runtime_p90
    );
    println!(
        "{:<58} {:>7.0} ms {:>7.0} ms",
        "  of which the provider's (provider − containerd alone)",
        provider_p50 - runtime_p50,
        provider_p90 - runtime_p90
    );
    println!(
        "{:<58} {:>7.0} ms {:>7.0} ms",
        "  of which control plane + SDK (Instance − provider)",
        running_p50 - provider_p50,
        running_p90 - provider_p90
    );
    println!("load average after: {}", load_average());
    drop(scratch);
    Ok(())
}
