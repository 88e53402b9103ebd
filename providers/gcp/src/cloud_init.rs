//! The `user-data` metadata of instances: a `#cloud-config` document (JSON, which is YAML).
//!
//! - **VM**: nothing beyond what the image does; ConfigMap/Secret volumes are not
//!   delivered yet (upstream pulls secrets from Secret Manager at boot).
//! - **Sandbox** (upstream's design): a Container-Optimized OS host whose kubelet runs one
//!   static pod, written to `/etc/kubernetes/manifests/instance.yaml`, with host networking.
//!   Container env is copied only where it is a literal `value`: references to Secrets
//!   (`valueFrom`, `envFrom`) are never resolved into metadata, which any process on the VM
//!   and anyone with `compute.instances.get` can read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use datum_api::compute::SandboxRuntime;
use serde_json::{Value, json};

/// The cloud-config of a sandbox host running `sandbox`'s containers.
pub fn sandbox(sandbox: &SandboxRuntime) -> String {
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
            container
        })
        .collect();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "instance", "namespace": "default" },
        "spec": { "hostNetwork": true, "containers": containers },
    });
    let config = json!({
        "write_files": [{
            "path": "/etc/kubernetes/manifests/instance.yaml",
            "permissions": "0644",
            "owner": "root",
            "encoding": "b64",
            "content": STANDARD.encode(pod.to_string()),
        }],
        "runcmd": [
            "iptables -I INPUT 1 -j ACCEPT",
            "systemctl enable kubelet.service",
            "systemctl start kubelet.service",
        ],
    });
    format!("#cloud-config\n{config}\n")
}

/// The cloud-config of a VM.
pub fn virtual_machine() -> String {
    "#cloud-config\n{}\n".to_owned()
}
