//! The README's run command: `datum up` brings up a control plane with the CRDs, `datum down`
//! stops it, and a second `datum up` finds the state the first one left. In between, a
//! Workload placed on the default Location becomes Ready through the controllers and the
//! sim provider that `datum up` runs.

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

/// Starts `datum up` and returns once it printed that it is up.
fn up(dir: &Path, port: u16) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(dir)
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

fn kubectl(dir: &Path, args: &[&str]) -> String {
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

    let mut first = up(&dir, port);
    let crds = kubectl(&dir, &["get", "crds", "-o", "name"]);
    for crd in datum_api::crds::all() {
        let name = crd.metadata.name.expect("CRDs have names");
        assert!(crds.contains(&name), "{name} is installed:\n{crds}");
    }
    kubectl(&dir, &["create", "namespace", "kept-across-restarts"]);

    // A first Workload runs on the default Location (served by the sim provider).
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

    let mut second = up(&dir, port);
    let namespaces = kubectl(&dir, &["get", "namespaces", "-o", "name"]);
    assert!(
        namespaces.contains("namespace/kept-across-restarts"),
        "{namespaces}"
    );
    wait_for_ready_instances(&dir, 2);
    let _ = std::fs::remove_file(&workload);
    down(&dir, &mut second);
    let _ = std::fs::remove_dir_all(&dir);
}
