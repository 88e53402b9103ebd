//! Scale benchmark: W Workloads spread over L Locations, N Instances in all, run by the
//! control-plane controllers and the sim provider (zero latency, no errors) on a real
//! control plane. Times apply → every Instance Ready, counts the API requests each
//! component issued, and reports CPU time and peak RSS.
//!
//! ```sh
//! cargo bench -p datum-provider-sim --bench scale                    # 1,000 instances
//! cargo bench -p datum-provider-sim --bench scale -- 10000 50 5      # instances workloads locations
//! ```
//!
//! The controllers and the provider run in this process (each with its own counted client),
//! so CPU time and peak RSS cover both plus the harness: upper bounds for each component.
//! With `DATUM_SCALE_PROVIDER_PROCESS=1` the controllers (this executable again, counting
//! its own requests) and the provider (the `datum-provider-sim` binary) are processes of
//! their own instead, and the figures are per component. The provider's requests are then
//! the API server's own count (`apiserver_request_total` for Datum's API groups and Events,
//! which every client adds to) less the controllers' and the harness's;
//! kube-controller-manager's few requests to those land there too.
//!
//! `DATUM_SCALE_HEAP=1` also counts this process's live heap (a counting allocator over
//! the system's), to tell the data from what the allocator holds on to;
//! `DATUM_SCALE_CONCURRENCY=n` runs each controller with `n` reconciles at once (0:
//! unbounded) instead of the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datum_api::compute::{Instance, Workload, WorkloadDeployment};
use datum_api::networking::{Location, Network};
use datum_api::provider_config::sim::ProviderConfig;
use datum_provider_sim::SimProvider;
use datum_runtime::shutdown::CancellationToken;
use datum_testenv::{ControlPlane, Options};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Live heap bytes of this process and their peak, counted only with
/// `DATUM_SCALE_HEAP=1`: with them, peak RSS splits into what the data needs and what the
/// allocator keeps (fragmentation, per-thread arenas).
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

    pub static ON: AtomicBool = AtomicBool::new(false);
    // Signed: blocks allocated before counting started are subtracted when freed.
    pub static LIVE: AtomicIsize = AtomicIsize::new(0);
    pub static PEAK: AtomicIsize = AtomicIsize::new(0);

    pub struct Counting;

    fn grew(bytes: usize) {
        if ON.load(Relaxed) {
            let bytes = isize::try_from(bytes).unwrap_or(isize::MAX);
            let now = LIVE.fetch_add(bytes, Relaxed).saturating_add(bytes);
            PEAK.fetch_max(now, Relaxed);
        }
    }

    fn shrank(bytes: usize) {
        if ON.load(Relaxed) {
            LIVE.fetch_sub(isize::try_from(bytes).unwrap_or(isize::MAX), Relaxed);
        }
    }

    // SAFETY: every call is passed to the system allocator unchanged; only sizes are
    // counted on the side.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract, forwarded.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract, forwarded.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract, forwarded.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                shrank(layout.size());
                grew(new_size);
            }
            p
        }
    }

    /// Starts counting. Called first thing in `main`, so what was allocated before (the
    /// runtime's start) is a small undercount of the live figure once freed.
    pub fn start() {
        ON.store(true, Relaxed);
    }

    /// (live, peak) in MiB, if counting.
    pub fn figures() -> Option<(f64, f64)> {
        let mib = |v: isize| v as f64 / (1024.0 * 1024.0);
        ON.load(Relaxed)
            .then(|| (mib(LIVE.load(Relaxed)), mib(PEAK.load(Relaxed))))
    }
}

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// Requests one component issued, by kind of request (`PATCH instances/status`,
/// `WATCH subnets`, ...), so a regression shows where it comes from.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<Counts>>);

type Counts = BTreeMap<String, u64>;

impl Counter {
    fn record(&self, request: &http::Request<kube::client::Body>) {
        self.record_kind(request_kind(request.method().as_str(), request.uri()));
    }

    fn record_kind(&self, kind: String) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(kind).or_default() += 1;
        }
    }

    /// The counts so far.
    fn snapshot(&self) -> Counts {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The counts so far, starting again from zero.
    fn take(&self) -> Counts {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// `VERB resource[/subresource]` from a request: the plural after the namespace (or the
/// group version), with the object name dropped; `WATCH` for list requests with `watch=true`.
fn request_kind(method: &str, uri: &http::Uri) -> String {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/group/version/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        _ => &segments[..],
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let resource = match rest {
        [plural] => (*plural).to_owned(),
        [plural, _name] => (*plural).to_owned(),
        [plural, _name, sub, ..] => format!("{plural}/{sub}"),
        [] => String::new(),
    };
    let query = uri.query().unwrap_or_default();
    let verb = if query.contains("watch=true") {
        "WATCH"
    } else {
        method
    };
    format!("{verb} {resource}")
}

async fn counting_client(kubeconfig: &Path, counter: Counter) -> anyhow::Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let requests = counter.clone();
    let layer =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            requests.record(&request);
            request
        });
    let responses = tower::util::MapResponseLayer::new(move |response: http::Response<_>| {
        if response.status() == http::StatusCode::CONFLICT {
            counter.record_kind("409 Conflict (of the above)".to_owned());
        }
        response
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .with_layer(&responses)
        .build())
}

/// Requests the API server answered for Datum's API groups (`*.datumapis.com`, the
/// providers' `*.datum.net`) and for Events, by kind as [`request_kind`] names them, from
/// its `apiserver_request_total`: every client's.
async fn served(admin: &Client) -> anyhow::Result<Counts> {
    let text = admin
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(parse_served(&text))
}

fn parse_served(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some((labels, value)) = line
            .strip_prefix("apiserver_request_total{")
            .and_then(|rest| rest.rsplit_once("} "))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
                .unwrap_or_default()
        };
        let group = label("group");
        let datum = group.ends_with("datumapis.com") || group.ends_with("datum.net");
        if !datum && label("resource") != "events" {
            continue;
        }
        // The client's view: a list is a GET, a server-side apply a PATCH.
        let verb = match label("verb") {
            "LIST" => "GET",
            "APPLY" => "PATCH",
            other => other,
        };
        let resource = match label("subresource") {
            "" => label("resource").to_owned(),
            sub => format!("{}/{sub}", label("resource")),
        };
        let n = value as u64;
        *counts.entry(format!("{verb} {resource}")).or_default() += n;
        if label("code") == "409" {
            *counts
                .entry("409 Conflict (of the above)".to_owned())
                .or_default() += n;
        }
    }
    counts
}

/// `after − before − each of others`, per kind (never below zero).
fn less(after: &Counts, before: &Counts, others: &[&Counts]) -> Counts {
    after
        .iter()
        .map(|(kind, n)| {
            let taken: u64 = before.get(kind).copied().unwrap_or_default()
                + others
                    .iter()
                    .map(|o| o.get(kind).copied().unwrap_or_default())
                    .sum::<u64>();
            (kind.clone(), n.saturating_sub(taken))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn proc_status(field: &str) -> Option<f64> {
    status_field("/proc/self/status", field)
}

fn status_field(path: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of("/proc/self/stat")
}

fn cpu_seconds_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn ready(instance: &Instance) -> bool {
    let conditions = instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    datum_api::conditions::is_true(conditions, "Ready")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    // Logs only when asked (`RUST_LOG=datum_control=debug` shows every conflict retry).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if std::env::var_os("DATUM_SCALE_HEAP").is_some() {
        heap::start();
    }
    if let Ok(namespace) = std::env::var(CONTROLLERS_OF) {
        return controllers_process(&namespace).await;
    }
    let instances = numbers.first().copied().unwrap_or(1000);
    let workloads = numbers.get(1).copied().unwrap_or(10).max(1);
    let locations = numbers.get(2).copied().unwrap_or(5).max(1);
    let per_placement = instances / (workloads * locations);
    anyhow::ensure!(
        per_placement >= 1,
        "fewer instances than workload × location pairs"
    );
    let total = per_placement * workloads * locations;

    let cp = ControlPlane::start(Options {
        crds: datum_api::crds::all(),
        ..Options::default()
    })
    .await?;
    let admin = cp.admin_client().await?;
    let ns = cp.fresh_namespace(&admin, "scale").await?;
    let state = std::env::temp_dir().join(format!("datum-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);

    let config: ProviderConfig = serde_json::from_value(json!({
        "apiVersion": "sim.provider.datum.net/v1alpha1", "kind": "ProviderConfig",
        "metadata": {"name": "scale"}, "spec": {"stateDir": state.display().to_string()}
    }))?;
    Api::<ProviderConfig>::all(admin.clone())
        .patch(
            "scale",
            &PatchParams::apply("scale"),
            &Patch::Apply(&config),
        )
        .await?;
    let mut names = Vec::new();
    for l in 0..locations {
        let name = format!("scale-{l}");
        let location: Location = serde_json::from_value(json!({
            "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Location",
            "metadata": {"name": name},
            "spec": {"locationClassName": "datum-managed", "provider": {"sim": {}},
                     "topology": {"topology.datum.net/city-code": format!("SC{l}")}}
        }))?;
        Api::<Location>::all(admin.clone())
            .create(&PostParams::default(), &location)
            .await?;
        names.push(json!({"name": name}));
    }
    let network: Network = serde_json::from_value(json!({
        "apiVersion": "networking.datumapis.com/v1alpha", "kind": "Network",
        "metadata": {"name": "default"}, "spec": {"ipam": {"mode": "Auto"}}
    }))?;
    Api::<Network>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &network)
        .await?;

    let control_requests = Counter::default();
    let provider_requests = Counter::default();
    let harness_requests = Counter::default();
    let harness = counting_client(cp.kubeconfig_path(), harness_requests.clone()).await?;
    let stop = CancellationToken::new();
    // `DATUM_SCALE_PROVIDER_PROCESS=1`: the controllers and the provider run as processes
    // of their own (this executable again, and the `datum-provider-sim` binary), so each
    // one's peak RSS and CPU time are read from its /proc; the provider's requests are
    // then derived from the API server's count.
    let separate = std::env::var_os("DATUM_SCALE_PROVIDER_PROCESS").is_some();
    let counts_file =
        std::env::temp_dir().join(format!("datum-scale-counts-{}", std::process::id()));
    let mut control_child = None;
    let mut control = None;
    let mut control_counts = ControlCounts::Here(control_requests.clone());
    if separate {
        control_child = Some(
            tokio::process::Command::new(std::env::current_exe()?)
                .env(CONTROLLERS_OF, &ns)
                .env(COUNTS_FILE, &counts_file)
                .env("KUBECONFIG", cp.kubeconfig_path())
                .kill_on_drop(true)
                .spawn()?,
        );
        control_counts = ControlCounts::Child {
            file: counts_file.clone(),
            last: Counts::new(),
        };
    } else {
        control = Some(tokio::spawn(datum_control::run(
            counting_client(cp.kubeconfig_path(), control_requests.clone()).await?,
            control_settings(&ns),
            stop.clone().cancelled_owned(),
        )));
    }
    let mut provider_child = None;
    let mut provider = None;
    if separate {
        provider_child = Some(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_datum-provider-sim"))
                .args(["--provider-config", "scale", "--namespace", &ns])
                .args(["--concurrency", "32", "--platform-rate", "50000"])
                .env("KUBECONFIG", cp.kubeconfig_path())
                .env("RUST_LOG", "warn")
                .kill_on_drop(true)
                .spawn()?,
        );
    } else {
        let mut options = datum_provider::Options::new("scale");
        options.namespace = Some(ns.clone());
        options.concurrency = 32;
        options.platform_rate = 100_000.0;
        options.platform_burst = 100_000;
        provider = Some(tokio::spawn(datum_provider::run(
            SimProvider,
            counting_client(cp.kubeconfig_path(), provider_requests.clone()).await?,
            options,
            stop.clone(),
        )));
    }

    println!(
        "scale benchmark: {total} instances = {workloads} workloads × {locations} locations × {per_placement}, sim provider at zero latency"
    );
    let cpu_before = cpu_seconds().unwrap_or_default();
    let mut served_before = served(&admin).await?;
    let started = Instant::now();
    let workloads_api = Api::<Workload>::namespaced(harness.clone(), &ns);
    for w in 0..workloads {
        let workload: Workload = serde_json::from_value(json!({
            "apiVersion": "compute.datumapis.com/v1alpha", "kind": "Workload",
            "metadata": {"name": format!("w{w}")},
            "spec": {
                "template": {"spec": {
                    "runtime": {"resources": {"instanceType": "datumcloud/d1-standard-2"},
                                "sandbox": {"containers": [{"name": "app", "image": "example.org/app:1"}]}},
                    "networkInterfaces": [{"network": {"name": "default"}}]
                }},
                "placements": [{"name": "p", "locations": names,
                                "scaleSettings": {"minReplicas": per_placement, "instanceManagementPolicy": "Parallel"}}]
            }
        }))?;
        workloads_api
            .create(&PostParams::default(), &workload)
            .await?;
    }
    let instances_api = Api::<Instance>::namespaced(harness.clone(), &ns);
    let deployments_api = Api::<WorkloadDeployment>::namespaced(harness.clone(), &ns);
    let deadline = started + Duration::from_secs(3 * 3600);
    // Progress from the deployments' roll-ups (a few hundred small objects), so the harness
    // does not list thousands of Instances a second; the count is checked on the Instances
    // themselves once it says done.
    loop {
        let ready_count: i64 = deployments_api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter_map(|d| d.status.as_ref().map(|s| i64::from(s.ready_replicas)))
            .sum();
        if ready_count == total as i64 && count_ready(&instances_api).await? == (total, total) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not converged after 3 h ({ready_count}/{total} ready)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds().unwrap_or_default() - cpu_before;
    let rss = proc_status("VmHWM:").unwrap_or_default() / 1024.0;
    println!(
        "all {total} Ready in {:.1} s ({:.0} instances/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let served_after = served(&admin).await?;
    phase_report(
        "apply → all Ready",
        (&mut control_counts, &provider_requests, &harness_requests),
        (&served_before, &served_after),
        separate,
        total,
    )
    .await;
    served_before = served_after;
    let of = |child: &Option<tokio::process::Child>| {
        let pid = child.as_ref().and_then(|c| c.id()).unwrap_or_default();
        (
            cpu_seconds_of(&format!("/proc/{pid}/stat")).unwrap_or_default(),
            status_field(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or_default() / 1024.0,
        )
    };
    if separate {
        let ((control_cpu, control_rss), (provider_cpu, provider_rss)) =
            (of(&control_child), of(&provider_child));
        println!(
            "CPU time: controllers {control_cpu:.1} s, provider {provider_cpu:.1} s, harness {cpu:.1} s; peak RSS: controllers {control_rss:.0} MiB, provider {provider_rss:.0} MiB, harness {rss:.0} MiB"
        );
        if let Some((live, peak)) = control_counts.heap() {
            println!("heap of the controllers: {live:.0} MiB live now, {peak:.0} MiB at its peak");
        }
    } else {
        println!(
            "CPU time of the process (controllers + provider + harness): {cpu:.1} s; peak RSS {rss:.0} MiB"
        );
        if let Some((live, peak)) = heap::figures() {
            println!(
                "heap of this process: {live:.0} MiB live now, {peak:.0} MiB at its peak (RSS {:.0} MiB now)",
                proc_status("VmRSS:").unwrap_or_default() / 1024.0
            );
        }
    }

    let deleting = Instant::now();
    for w in 0..workloads {
        workloads_api
            .delete(&format!("w{w}"), &DeleteParams::background())
            .await?;
    }
    loop {
        let left = instances_api.list(&ListParams::default().limit(1)).await?;
        if left.items.is_empty() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "instances left after 3 h");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "delete → no Instance left in {:.1} s",
        deleting.elapsed().as_secs_f64()
    );
    phase_report(
        "delete → none left",
        (&mut control_counts, &provider_requests, &harness_requests),
        (&served_before, &served(&admin).await?),
        separate,
        total,
    )
    .await;
    stop.cancel();
    if let Some(control) = control {
        let _ = control.await;
    }
    if let Some(mut child) = control_child {
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_file(&counts_file);
    if let Some(provider) = provider {
        let _ = provider.await;
    }
    if let Some(mut child) = provider_child {
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}

/// Where the controllers process (split mode) finds its namespace.
const CONTROLLERS_OF: &str = "DATUM_SCALE_CONTROLLERS_OF";
/// Where the controllers process writes its request counts and heap figures.
const COUNTS_FILE: &str = "DATUM_SCALE_COUNTS_FILE";

/// The controllers' settings: the defaults in `namespace`; `DATUM_SCALE_CONCURRENCY=n`
/// sets the reconciles per controller (0: unbounded), for comparing with the default.
fn control_settings(namespace: &str) -> datum_control::Settings {
    let mut settings = datum_control::Settings {
        namespace: Some(namespace.to_owned()),
        ..datum_control::Settings::default()
    };
    if let Some(n) = std::env::var("DATUM_SCALE_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.concurrency = n;
    }
    settings
}

/// The controllers as a process of their own (split mode): they run until killed, and
/// every half second their request counts so far and heap figures are written to the file
/// `COUNTS_FILE` names (through a rename, so the harness never reads half a file).
async fn controllers_process(namespace: &str) -> anyhow::Result<()> {
    let kubeconfig = PathBuf::from(std::env::var("KUBECONFIG")?);
    let file = PathBuf::from(std::env::var(COUNTS_FILE)?);
    let counter = Counter::default();
    let client = counting_client(&kubeconfig, counter.clone()).await?;
    tokio::spawn(async move {
        let partial = file.with_extension("partial");
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let report = json!({ "counts": counter.snapshot(), "heap": heap::figures() });
            if std::fs::write(&partial, report.to_string()).is_ok() {
                let _ = std::fs::rename(&partial, &file);
            }
        }
    });
    datum_control::run(client, control_settings(namespace), std::future::pending()).await;
    Ok(())
}

/// The controllers' request counts: counted here, or read from their process's file.
enum ControlCounts {
    Here(Counter),
    Child { file: PathBuf, last: Counts },
}

impl ControlCounts {
    fn report(file: &Path) -> serde_json::Value {
        std::fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The requests since the last call.
    async fn take(&mut self) -> Counts {
        match self {
            Self::Here(counter) => counter.take(),
            Self::Child { file, last } => {
                // The file is at most half a second old; wait for the next one.
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now: Counts = serde_json::from_value(Self::report(file)["counts"].clone())
                    .unwrap_or_default();
                let since = now
                    .iter()
                    .map(|(kind, n)| {
                        (
                            kind.clone(),
                            n - last.get(kind).copied().unwrap_or(0).min(*n),
                        )
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect();
                *last = now;
                since
            }
        }
    }

    /// The controllers process's (live, peak) heap in MiB, when it counts.
    fn heap(&self) -> Option<(f64, f64)> {
        match self {
            Self::Here(_) => None,
            Self::Child { file, .. } => {
                serde_json::from_value(Self::report(file)["heap"].clone()).ok()
            }
        }
    }
}

/// (Instances, Ready Instances), listed a page at a time.
async fn count_ready(api: &Api<Instance>) -> anyhow::Result<(usize, usize)> {
    let (mut all, mut ready_count) = (0, 0);
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        all += page.items.len();
        ready_count += page.items.iter().filter(|i| ready(i)).count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((all, ready_count)),
        }
    }
}

/// Prints one phase's requests: the controllers', the provider's (counted, or derived from
/// the API server's count when it is its own process) and the API server's total for
/// Datum's groups, all clients together.
async fn phase_report(
    phase: &str,
    (control, provider, harness): (&mut ControlCounts, &Counter, &Counter),
    (served_before, served_after): (&Counts, &Counts),
    separate: bool,
    instances: usize,
) {
    let (control, harness) = (control.take().await, harness.take());
    let provider = if separate {
        less(served_after, served_before, &[&control, &harness])
    } else {
        provider.take()
    };
    let all = less(served_after, served_before, &[]);
    report(
        phase,
        &[
            ("control plane", &control),
            ("provider", &provider),
            (
                "API server, Datum groups and Events, every client (harness included)",
                &all,
            ),
        ],
        instances,
    );
}

/// Prints one phase's requests and writes per Instance, by component and kind.
fn report(phase: &str, components: &[(&str, &Counts)], instances: usize) {
    let per = |n: u64| n as f64 / instances as f64;
    for (component, counts) in components {
        let (requests, writes) = (sent(counts, false), sent(counts, true));
        println!(
            "{phase}: {component}: {requests} requests ({:.2}/instance), {writes} writes ({:.2}/instance)",
            per(requests),
            per(writes)
        );
        let mut rows: Vec<_> = counts.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1));
        for (kind, n) in rows {
            println!("    {:>8.2}/instance  {n:>7}  {kind}", per(*n));
        }
    }
}

/// Requests sent (or only writes: everything but GET and WATCH); 409 answers are not
/// requests.
fn sent(counts: &Counts, writes_only: bool) -> u64 {
    counts
        .iter()
        .filter(|(kind, _)| !kind.starts_with("409"))
        .filter(|(kind, _)| !writes_only || !(kind.starts_with("GET") || kind.starts_with("WATCH")))
        .map(|(_, n)| n)
        .sum()
}
