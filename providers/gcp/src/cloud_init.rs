//! The `user-data` metadata of instances: a `#cloud-config` document (JSON, which is YAML).
//!
//! - **Volumes** (both runtimes): when the instance has configMap or secret volumes, the
//!   document writes [`FETCH_VOLUMES`] and runs it first. It reads the `datum-volumes`
//!   metadata item (secret names and directories — never values), takes the VM service
//!   account's token from the metadata server, fetches each secret's latest version from
//!   Secret Manager and writes the files (`0400` for secrets, `0444` for configMaps),
//!   retrying until the accessor grant has propagated.
//! - **VM**: nothing else; users and `ssh-keys` are the guest environment's business.
//! - **Sandbox** (upstream's design): a Container-Optimized OS host whose kubelet runs one
//!   static pod, written to `/etc/kubernetes/manifests/instance.yaml`, with host networking.
//!   Volumes are `hostPath`s of the fetched directories, mounted read-only; kubelet starts
//!   only after the files exist (upstream started it first). Container env is copied only
//!   where it is a literal `value`: references to Secrets (`valueFrom`, `envFrom`) are
//!   never resolved into metadata, which any process on the VM and anyone with
//!   `compute.instances.get` can read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use datum_api::compute::SandboxRuntime;
use serde_json::{Value, json};

use crate::volumes::host_dir;

/// Where the volume fetcher lives on the VM.
pub const FETCH_VOLUMES_PATH: &str = "/var/lib/datum/fetch-volumes.py";

/// The boot-time volume fetcher (Python 3 standard library only). It prints secret names
/// and exception types, never contents. `DATUM_METADATA`, `DATUM_SECRET_MANAGER` and
/// `DATUM_ROOT` (a prefix for every directory) exist for tests, which run it against the
/// fake.
pub const FETCH_VOLUMES: &str = r#"import base64, json, os, time, urllib.request
MD = os.environ.get("DATUM_METADATA", "http://metadata.google.internal/computeMetadata/v1/")
SM = os.environ.get("DATUM_SECRET_MANAGER", "https://secretmanager.googleapis.com/v1/")
ROOT = os.environ.get("DATUM_ROOT", "")
def get(url, headers):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).read()
def md(path):
    return get(MD + path, {"Metadata-Flavor": "Google"})
volumes = json.loads(md("instance/attributes/datum-volumes"))
for v in volumes:
    while True:
        try:
            token = json.loads(md("instance/service-accounts/default/token"))["access_token"]
            reply = json.loads(get(SM + v["secret"] + "/versions/latest:access", {"Authorization": "Bearer " + token}))
            files = json.loads(base64.b64decode(reply["payload"]["data"]))["files"]
            break
        except Exception as e:
            print("datum: waiting for", v["secret"], type(e).__name__, flush=True)
            time.sleep(5)
    for d in v["dirs"]:
        d = ROOT + d
        os.makedirs(d, mode=0o500 if v["kind"] == "secret" else 0o555, exist_ok=True)
        for rel, data in files.items():
            path = os.path.join(d, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".datum-tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64decode(data))
            os.chmod(tmp, int(v["mode"], 8))
            os.replace(tmp, path)
    print("datum: volume", v["volume"], "ready", flush=True)
"#;

fn fetcher_file() -> Value {
    json!({
        "path": FETCH_VOLUMES_PATH,
        "permissions": "0700",
        "owner": "root",
        "encoding": "b64",
        "content": STANDARD.encode(FETCH_VOLUMES),
    })
}

fn fetch_command() -> String {
    format!("python3 {FETCH_VOLUMES_PATH}")
}

/// The cloud-config of a sandbox host running `sandbox`'s containers; `volumes` are the
/// configMap/secret volumes delivered to the host.
pub fn sandbox(sandbox: &SandboxRuntime, volumes: &[String]) -> String {
    let containers: Vec<Value> = sandbox
        .containers
        .iter()
        .map(|c| {
            let env: Vec<Value> = serde_json::to_value(&c.env)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e["value"].is_string() && e.get("valueFrom").is_none())
                .map(|e| json!({ "name": e["name"], "value": e["value"] }))
                .collect();
            let mut container = json!({ "name": c.name, "image": c.image, "env": env });
            if let Some(command) = &c.command {
                container["command"] = json!(command);
            }
            if let Some(args) = &c.args {
                container["args"] = json!(args);
            }
            let mounts: Vec<Value> = c
                .volume_attachments
                .iter()
                .flatten()
                .filter(|a| volumes.contains(&a.name))
                .filter_map(|a| {
                    a.mount_path
                        .as_ref()
                        .map(|path| json!({ "name": a.name, "mountPath": path, "readOnly": true }))
                })
                .collect();
            if !mounts.is_empty() {
                container["volumeMounts"] = json!(mounts);
            }
            container
        })
        .collect();
    let pod_volumes: Vec<Value> = volumes
        .iter()
        .map(|name| json!({ "name": name, "hostPath": { "path": host_dir(name), "type": "Directory" } }))
        .collect();
    let mut spec = json!({ "hostNetwork": true, "containers": containers });
    if !pod_volumes.is_empty() {
        spec["volumes"] = json!(pod_volumes);
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "instance", "namespace": "default" },
        "spec": spec,
    });
    let mut files = vec![json!({
        "path": "/etc/kubernetes/manifests/instance.yaml",
        "permissions": "0644",
        "owner": "root",
        "encoding": "b64",
        "content": STANDARD.encode(pod.to_string()),
    })];
    let mut commands = vec![json!("iptables -I INPUT 1 -j ACCEPT")];
    if !volumes.is_empty() {
        files.push(fetcher_file());
        commands.push(json!(fetch_command()));
    }
    commands.push(json!("systemctl enable kubelet.service"));
    commands.push(json!("systemctl start kubelet.service"));
    let config = json!({ "write_files": files, "runcmd": commands });
    format!("#cloud-config\n{config}\n")
}

/// The cloud-config of a VM; `with_volumes` when it has configMap/secret volumes.
pub fn virtual_machine(with_volumes: bool) -> String {
    if !with_volumes {
        return "#cloud-config\n{}\n".to_owned();
    }
    let config = json!({ "write_files": [fetcher_file()], "runcmd": [fetch_command()] });
    format!("#cloud-config\n{config}\n")
}
