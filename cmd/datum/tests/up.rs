//! The README's run command: `datum up` brings up a control plane with the CRDs, `datum down`
//! stops it, and a second `datum up` finds the state the first one left. In between, a
//! Workload placed on the default Location becomes Ready through the controllers and the
//! sim provider that `datum up` runs.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Kills `datum up` if the test fails before `datum down` stopped it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `datum up` (with `extra` flags) and returns once it printed that it is up.
fn up(dir: &Path, port: u16, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        // Tests run side by side: the metrics listeners take free ports.
        .args([
            "--metrics-address",
            "127.0.0.1:0",
            "--provider-metrics-address",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("datum starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("Datum is up"));
    assert!(ready, "datum up exited before it was up");
    // Keep draining stdout so datum never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Running(child)
}

pub fn kubectl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn down(dir: &Path, running: &mut Running) {
    let status = Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(["down", "--data-dir"])
        .arg(dir)
        .status()
        .expect("datum down runs");
    assert!(status.success());
    let exit = running.0.wait().expect("datum up exits");
    assert!(exit.success(), "datum up exited with {exit}");
}

const WORKLOAD: &str = "
apiVersion: compute.datumapis.com/v1alpha
kind: Workload
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      runtime:
        resources:
          instanceType: datumcloud/d1-standard-2
        sandbox:
          containers:
          - name: hello
            image: example.org/hello:1
      networkInterfaces:
      - network:
          name: default
  placements:
  - name: here
    cityCodes: [LCL]
    scaleSettings:
      minReplicas: 2
";

/// Waits (bounded, as a safety net) until `count` Instances in `default` report Ready.
fn wait_for_ready_instances(dir: &Path, count: usize) {
    let query = r#"{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let output = kubectl(
            dir,
            &[
                "get",
                "instances",
                "-n",
                "default",
                "-o",
                &format!("jsonpath={query}"),
            ],
        );
        let ready = output.lines().filter(|l| *l == "True").count();
        if ready == count && output.lines().count() == count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instances never became Ready:\n{output}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn up_serves_the_crds_down_stops_and_up_again_keeps_state() {
    let dir = std::env::temp_dir().join(format!("datum-up-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();

    let mut first = up(&dir, port, &["--provider", "sim"]);
    let crds = kubectl(&dir, &["get", "crds", "-o", "name"]);
    for crd in datum_api::crds::all() {
        let name = crd.metadata.name.expect("CRDs have names");
        assert!(crds.contains(&name), "{name} is installed:\n{crds}");
    }
    kubectl(&dir, &["create", "namespace", "kept-across-restarts"]);

    // A first Workload runs on the default Location (served by the sim provider here).
    let workload =
        std::env::temp_dir().join(format!("datum-up-workload-{}.yaml", std::process::id()));
    std::fs::write(&workload, WORKLOAD).expect("writable temp dir");
    kubectl(
        &dir,
        &["apply", "-f", workload.to_str().expect("UTF-8 path")],
    );
    wait_for_ready_instances(&dir, 2);

    let again = Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(["up", "--port", &free_port().to_string(), "--data-dir"])
        .arg(&dir)
        .output()
        .expect("datum runs");
    assert!(
        !again.status.success(),
        "a second datum up on the same state is refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    down(&dir, &mut first);
    assert!(
        !dir.join("datum.pid").exists(),
        "datum down removes the pid file"
    );

    let mut second = up(&dir, port, &["--provider", "sim"]);
    let namespaces = kubectl(&dir, &["get", "namespaces", "-o", "name"]);
    assert!(
        namespaces.contains("namespace/kept-across-restarts"),
        "{namespaces}"
    );
    wait_for_ready_instances(&dir, 2);
    let _ = std::fs::remove_file(&workload);
    // Ctrl-C stops it as cleanly as `datum down`: nothing of it keeps running.
    let interrupted = Command::new("kill")
        .args(["-INT", &second.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let exit = second.0.wait().expect("datum up exits");
    assert!(exit.success(), "datum up exited with {exit} on Ctrl-C");
    assert!(
        !dir.join("datum.pid").exists(),
        "Ctrl-C removes the pid file"
    );
    let survivors = common::processes_mentioning(&dir);
    assert!(
        survivors.is_empty(),
        "etcd, kube-apiserver and kube-controller-manager stop with it: pids {survivors:?}"
    );

    // The default Location is the sim provider's: another provider is not switched in under
    // its Instances, and the refusal says what to run instead.
    let port = port.to_string();
    let switched = datum(
        &dir,
        &[
            "up",
            "--provider",
            "local",
            "--port",
            &port,
            "--metrics-address",
            "127.0.0.1:0",
            "--provider-metrics-address",
            "127.0.0.1:0",
            "--netns-prefix",
            "datum-up-test-",
        ],
    );
    let stderr = String::from_utf8_lossy(&switched.stderr);
    assert!(!switched.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains("served by the sim provider")
            && stderr.contains("`datum up --provider sim`"),
        "the refusal names the provider to run: {stderr}"
    );
    assert!(
        !dir.join("datum.pid").exists(),
        "the refused run leaves nothing running"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loopback `docker-registry` holding the tests' busybox image (serving HTTP on 8080) as
/// `datum/hello:v1`; killed when dropped.
struct Registry {
    process: Running,
    host: String,
    dir: std::path::PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let host = format!("127.0.0.1:{}", free_port());
        std::fs::create_dir_all(dir).expect("a scratch directory");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: {host} }}\n",
                dir.join("data").display()
            ),
        )
        .expect("the registry config is written");
        let process = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "docker-registry", "serve"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let layout = dir.join("layout");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/local-image.sh");
        let built = Command::new(script)
            .arg(&layout)
            .args(["/bin/httpd", "-f", "-p", "8080"])
            .status()
            .expect("tools/local-image.sh runs");
        assert!(built.success(), "the test image builds");
        let pushed = (0..50).any(|_| {
            let ok = Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("docker://{host}/datum/hello:v1"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            ok
        });
        assert!(pushed, "the image is pushed to the loopback registry");
        Registry {
            process: Running(process),
            host,
            dir: dir.to_path_buf(),
        }
    }

    fn image(&self) -> String {
        format!("{}/datum/hello:v1", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.process.0.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn datum(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("KUBECONFIG")
        .output()
        .expect("datum runs")
}

/// Runs `datum args` until it succeeds with output `probe` accepts (bounded, as a safety
/// net); returns that output.
fn wait_datum(dir: &Path, args: &[&str], probe: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let output = datum(dir, args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && probe(&stdout) {
            return stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for `datum {args:?}`:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Waits (bounded, as a safety net) until `probe` holds for `kubectl get` output.
fn wait_kubectl(dir: &Path, args: &[&str], what: &str, probe: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let output = kubectl(dir, args);
        if probe(&output) {
            return output;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}:\n{output}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The issue's acceptance run: `datum up` with the local provider; the seed example unchanged
/// waits for a GCP Location, then with `providers: [local]`, no region and a local image gives
/// 3 running instances with addresses; `datum deploy` reaches Ready and prints addresses;
/// `datum status` shows them; `datum down --purge` leaves nothing of the run on the machine.
#[test]
fn up_runs_the_seed_example_on_the_local_provider() {
    let leftovers = common::Leftovers::new("local");
    let dir = leftovers.dir.clone();
    let registry = Registry::start(&dir.join("registry"));
    let mut running = up(
        &dir.join("home"),
        free_port(),
        &[
            "--insecure-registry",
            &registry.host,
            "--netns-prefix",
            &leftovers.netns_prefix,
        ],
    );
    let home = dir.join("home");
    kubectl(&home, &["create", "namespace", "my-project"]);
    let network = dir.join("network.yaml");
    std::fs::write(
        &network,
        "apiVersion: networking.datumapis.com/v1alpha\nkind: Network\nmetadata: {name: default, namespace: my-project}\nspec: {ipam: {mode: Auto}}\n",
    )
    .expect("writable");
    kubectl(&home, &["apply", "-f", network.to_str().expect("UTF-8")]);

    // The exact seed file: accepted, and it says why nothing runs.
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/upstream/samples/seed-workload.yaml");
    kubectl(&home, &["apply", "-f", seed.to_str().expect("UTF-8")]);
    let waiting = wait_kubectl(
        &home,
        &[
            "get",
            "workloads.workload.datum.net",
            "my-app",
            "-n",
            "my-project",
            "-o",
            "jsonpath={.status.conditions[*].message}",
        ],
        "the seed's condition",
        |out| out.contains("gcp") && out.contains("us-central1"),
    );
    assert!(waiting.contains("gcp"), "{waiting}");

    // The same seed with providers [local], no region, and the local image.
    let text = std::fs::read_to_string(&seed).expect("the seed is readable");
    let local = text
        .replace("      - gcp", "      - local")
        .replace("    regions:\n      - us-central1\n", "")
        .replace("gcr.io/my-project/my-app:v1.0", &registry.image());
    assert!(!local.contains("us-central1") && local.contains("- local"));
    let local_seed = dir.join("seed-local.yaml");
    std::fs::write(&local_seed, local).expect("writable");
    kubectl(&home, &["apply", "-f", local_seed.to_str().expect("UTF-8")]);
    let query = r#"{range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {.status.networkInterfaces[0].assignments.networkIP}{"\n"}{end}"#;
    let ready = wait_kubectl(
        &home,
        &[
            "get",
            "instances",
            "-n",
            "my-project",
            "-o",
            &format!("jsonpath={query}"),
        ],
        "3 Ready instances with addresses",
        |out| {
            out.lines().count() == 3
                && out
                    .lines()
                    .all(|l| l.starts_with("True ") && l.len() > "True ".len())
        },
    );
    assert_eq!(ready.lines().count(), 3, "{ready}");

    // `datum deploy` waits until Ready and prints the addresses; `datum status` shows them.
    let deployed = datum(
        &home,
        &[
            "deploy",
            "hello",
            "--image",
            &registry.image(),
            "--replicas",
            "2",
            "--port",
            "8080",
            "--timeout",
            "3m",
        ],
    );
    let printed = String::from_utf8_lossy(&deployed.stdout).into_owned();
    assert!(
        deployed.status.success(),
        "datum deploy: {printed}\n{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "one line per instance: {printed}");
    let addresses: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit('\t').next().unwrap_or_default())
        .collect();
    for address in &addresses {
        assert!(
            address.parse::<std::net::IpAddr>().is_ok(),
            "an address per instance: {printed}"
        );
    }
    let status = datum(&home, &["status", "hello"]);
    let shown = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success(), "datum status: {shown}");
    for address in &addresses {
        assert!(shown.contains(address), "status shows {address}:\n{shown}");
    }
    assert!(shown.contains("Ready"), "{shown}");

    // `datum logs`: what a container writes, prefixed with instance and container, the last
    // lines first, then followed as it is written.
    let talker = dir.join("talker.yaml");
    std::fs::write(
        &talker,
        format!(
            "apiVersion: compute.datumapis.com/v1alpha
kind: Workload
metadata: {{name: talker}}
spec:
  template:
    spec:
      runtime:
        resources: {{instanceType: datumcloud/d1-standard-2}}
        sandbox:
          containers:
          - name: app
            image: {}
            command: [/bin/sh, -c]
            args: ['i=0; while :; do echo \"tick $i\"; i=$((i+1)); sleep 1; done']
      networkInterfaces:
      - network: {{name: default}}
  placements:
  - name: default
    locations: [{{name: local}}]
    scaleSettings: {{minReplicas: 1}}
",
            registry.image()
        ),
    )
    .expect("writable");
    let applied = datum(&home, &["deploy", "-f", talker.to_str().expect("UTF-8")]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let shown = wait_datum(&home, &["logs", "talker", "--tail", "2"], |out| {
        out.contains("tick 2")
    });
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "--tail 2 shows two lines: {shown}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("talker-default-local-0/app | tick ")),
        "each line says where it came from: {shown}"
    );
    let ticks = |text: &str| -> Vec<u32> {
        text.lines()
            .filter_map(|l| l.rsplit("tick ").next()?.parse().ok())
            .collect()
    };
    let mut follower = Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(["logs", "talker", "--follow", "--tail", "1", "--data-dir"])
        .arg(&home)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("datum logs runs");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Bounded, as a safety net: a follower that prints nothing fails the test, not hangs it.
    let followed: Vec<String> = (0..3)
        .map_while(|_| {
            lines_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .ok()
        })
        .collect();
    let _ = follower.kill();
    let _ = follower.wait();
    let seen = ticks(&followed.join("\n"));
    assert!(
        seen.len() == 3 && seen.windows(2).all(|w| w[1] == w[0] + 1),
        "--follow prints each new line as it is written: {followed:?}"
    );
    let none = datum(&home, &["logs", "nobody"]);
    assert!(
        !none.status.success()
            && String::from_utf8_lossy(&none.stderr).contains("no instances of Workload nobody"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );

    // Bad input gets one clear sentence: an invalid manifest names the field, an unknown
    // kind says so.
    let deploy_file = |yaml: &str| {
        let file = dir.join("bad.yaml");
        std::fs::write(&file, yaml).expect("writable");
        let output = datum(&home, &["deploy", "-f", file.to_str().expect("UTF-8")]);
        assert!(!output.status.success(), "datum deploy -f refuses {yaml}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let said = deploy_file(
        "apiVersion: compute.datumapis.com/v1alpha\nkind: Workload\nmetadata: {name: broken}\nspec: {template: {spec: {runtime: {resources: {instanceType: x}}, networkInterfaces: []}}}\n",
    );
    assert!(
        said.contains("Workload default/broken was rejected") && said.contains("spec.placements"),
        "the rejection names the object and the field: {said}"
    );
    // An unknown group, and an unknown kind in a known group.
    for api_version in ["example.org/v1", "compute.datumapis.com/v1alpha"] {
        let said = deploy_file(&format!(
            "apiVersion: {api_version}\nkind: Gadget\nmetadata: {{name: g}}\n"
        ));
        assert!(
            said.contains(&format!("does not know {api_version} Gadget")),
            "{said}"
        );
    }
    let missing = datum(&home, &["status", "nope"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no Workload nope"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // `datum down --purge` with everything still running: every Workload and Network goes
    // the way a user would delete them, the provider tears down what it made, and then the
    // state goes too — no container shim, network namespace, mount or file is left.
    let purged = datum(&home, &["down", "--purge", "--timeout", "3m"]);
    assert!(
        purged.status.success(),
        "datum down --purge: {}",
        String::from_utf8_lossy(&purged.stderr)
    );
    let exit = running.0.wait().expect("datum up exits");
    assert!(exit.success(), "datum up exited with {exit}");
    assert!(!home.exists(), "the state directory is deleted");
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces.contains(&leftovers.netns_prefix),
        "no network namespace of the run is left:\n{namespaces}"
    );
    let home_text = home.display().to_string();
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    assert!(
        !mounts.contains(&home_text),
        "nothing is mounted under the state directory"
    );
    let shims = common::processes_mentioning(&home);
    assert!(
        shims.is_empty(),
        "no process of the run is left: pids {shims:?}"
    );

    // Without a running datum, --purge refuses rather than strand what it cannot remove.
    std::fs::create_dir_all(&home).expect("a directory");
    let refused = datum(&home, &["down", "--purge"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("start it with `datum up`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(registry);
    drop(leftovers);
}

/// A port that is taken is named with the flag that changes it, before anything starts.
#[test]
fn up_refuses_a_taken_port_naming_the_flag_and_starts_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = taken.local_addr().expect("an address").port();
    let dir = std::env::temp_dir().join(format!("datum-up-taken-{}", std::process::id()));
    let free = free_port();
    for (flag, api_port, provider_metrics) in [
        ("--port", port, free_port()),
        ("--provider-metrics-address", free, port),
    ] {
        let (api_port, provider_metrics) = (
            api_port.to_string(),
            format!("127.0.0.1:{provider_metrics}"),
        );
        let output = datum(
            &dir,
            &[
                "up",
                "--provider",
                "sim",
                "--port",
                &api_port,
                "--provider-metrics-address",
                &provider_metrics,
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "datum up fails: {stderr}");
        assert!(
            stderr.contains("is already in use") && stderr.contains(flag),
            "the error names {flag}: {stderr}"
        );
        assert!(!dir.join("kubeconfig").exists(), "nothing was started");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
