//! What a container gets from the control plane, end to end on a real containerd: its
//! environment from ConfigMaps and Secrets (`env[].valueFrom`, `envFrom`) and from its
//! Instance (`fieldRef`), read from the process's own `/proc/<pid>/environ`; and its image from a registry that demands a
//! password (a loopback `docker-registry` with htpasswd), via `imagePullSecrets` and via the
//! ProviderConfig's `registries[].authSecretRef`. Secret values appear in no condition and
//! no Event. Runs as root.

mod common;

use std::process::{Child, Command, Stdio};

use common::{Host, address, eventually, location, running};
use datum_api::compute::Instance;
use datum_api::provider_config::SecretKeyRef;
use datum_api::provider_config::local::Registry;
use datum_provider_local::{LocalProvider, names};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// A value that must never leave the Secret it is in.
const SECRET_VALUE: &str = "s3cret-value-not-for-logs";
/// The registry's user and password.
const USER: &str = "datum";
const PASSWORD: &str = "pw-Zq81x-not-for-logs";
/// `PASSWORD`, bcrypt (cost 5), as htpasswd holds it.
const PASSWORD_BCRYPT: &str = "$2b$05$llzqGbSsQzy/MHG1rdrz4OJ7aMD3qc6jNcgHPir6XuPonNuixQCYG";

/// An Instance running `sleep` with `sandbox` merged into its sandbox and `container` into
/// its one container.
fn instance(
    name: &str,
    location: &str,
    image: &str,
    sandbox: serde_json::Value,
    container: serde_json::Value,
) -> Instance {
    let mut value = json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": name },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-standard-2" },
                "sandbox": { "containers": [{
                    "name": "app", "image": image,
                    "command": ["/bin/sh", "-c", "exec sleep 100000"],
                }] },
            },
            "networkInterfaces": [{ "network": { "name": "net" } }],
            "location": { "name": location },
            "controller": { "templateHash": "h1" },
        },
    });
    let merge = |target: &mut serde_json::Value, extra: serde_json::Value| {
        if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
            t.extend(e.clone());
        }
    };
    merge(&mut value["spec"]["runtime"]["sandbox"], sandbox);
    merge(
        &mut value["spec"]["runtime"]["sandbox"]["containers"][0],
        container,
    );
    serde_json::from_value(value).expect("a valid Instance")
}

fn condition(i: &Instance, type_: &str) -> Option<(String, String, String)> {
    i.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// `Programmed=False` with `reason`: its message.
fn failed_with(i: &Instance, reason: &str) -> Option<String> {
    condition(i, "Programmed")
        .filter(|(status, r, _)| status == "False" && r == reason)
        .map(|(_, _, message)| message)
}

/// The environment of the container `app` of the instance with `uid`, from `/proc`.
async fn environ(host: &Host, uid: &str) -> Vec<String> {
    let id = names::container_id(&format!("datum-{uid}"), "app");
    let task = host
        .containerd()
        .task(&id)
        .await
        .expect("tasks")
        .expect("a task");
    let raw = std::fs::read(format!("/proc/{}/environ", task.pid)).expect("the environment");
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// No Event in `namespace` mentions `value`.
async fn no_event_mentions(client: &kube::Client, namespace: &str, value: &str) {
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .expect("events list");
    for e in events {
        let text = format!(
            "{} {}",
            e.reason.unwrap_or_default(),
            e.message.unwrap_or_default()
        );
        assert!(!text.contains(value), "an Event shows a secret: {text}");
    }
}

#[tokio::test]
async fn env_comes_from_config_maps_and_secrets() {
    let host = common::host("env").await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-env")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    let cfg = format!("{ns}-cfg");
    host.apply_config(&host.config(&cfg, None)).await;
    let post = PostParams::default();
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "settings" },
        "data": { "MODE": "fast", "LEVEL": "3", "GREETING": "from-configmap" },
    }))
    .expect("a ConfigMap");
    Api::namespaced(host.client.clone(), &ns)
        .create(&post, &config_map)
        .await
        .expect("created");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" }, "stringData": { "token": SECRET_VALUE },
    }))
    .expect("a Secret");
    let secrets: Api<Secret> = Api::namespaced(host.client.clone(), &ns);
    secrets.create(&post, &secret).await.expect("created");
    let provider = LocalProvider {
        kube: Some(host.client.clone()),
        ..LocalProvider::default()
    };
    let running_provider = host.start(provider, &cfg, &ns);
    let image = format!("{}/datum/busybox:v1", host.registry);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);

    // envFrom first (a ConfigMap with and without a prefix, a missing optional Secret), then
    // env: a literal overriding envFrom, a secretKeyRef, a configMapKeyRef, an optional miss,
    // and the Instance's own fields.
    let field = |name: &str, path: &str| json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": path } } });
    let mut web = instance(
        "web-0",
        &loc,
        &image,
        json!({}),
        json!({
            "envFrom": [
                { "configMapRef": { "name": "settings" } },
                { "prefix": "CM_", "configMapRef": { "name": "settings" } },
                { "secretRef": { "name": "absent", "optional": true } },
            ],
            "env": [
                { "name": "GREETING", "value": "literal-wins" },
                { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } },
                { "name": "LEVEL_COPY", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "LEVEL" } } },
                { "name": "MAYBE", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "nope", "optional": true } } },
                field("MY_NAME", "metadata.name"),
                field("MY_NAMESPACE", "metadata.namespace"),
                field("MY_UID", "metadata.uid"),
                field("MY_APP", "metadata.labels['app']"),
                field("MY_TEAM", "metadata.annotations['example.org/team']"),
                field("MY_UNSET", "metadata.labels['unset']"),
                field("MY_IP", "status.networkInterfaces[0].assignments.networkIP"),
            ],
        }),
    );
    web.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    web.metadata.annotations = Some([("example.org/team".to_owned(), "edge".to_owned())].into());
    let uid = instances
        .create(&post, &web)
        .await
        .expect("created")
        .uid()
        .expect("a uid");
    eventually("web-0 runs", || async {
        instances.get("web-0").await.ok().filter(running)
    })
    .await;
    let env = environ(&host, &uid).await;
    let ip = address(&instances.get("web-0").await.expect("exists")).expect("an address");
    for wanted in [
        "MY_NAME=web-0",
        &format!("MY_NAMESPACE={ns}"),
        &format!("MY_UID={uid}"),
        "MY_APP=web",
        "MY_TEAM=edge",
        "MY_UNSET=",
        &format!("MY_IP={ip}"),
        "MODE=fast",
        "LEVEL=3",
        "CM_MODE=fast",
        "CM_LEVEL=3",
        "CM_GREETING=from-configmap",
        "GREETING=literal-wins",
        &format!("TOKEN={SECRET_VALUE}"),
        "LEVEL_COPY=3",
        "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
    ] {
        assert!(env.iter().any(|e| e == wanted), "{wanted} in {env:?}");
    }
    assert!(
        !env.iter().any(|e| e.starts_with("MAYBE=")),
        "an optional missing key sets nothing: {env:?}"
    );
    assert_eq!(
        env.iter().filter(|e| e.starts_with("GREETING=")).count(),
        1,
        "one GREETING: {env:?}"
    );

    // A missing key that is not optional: a clear error naming the variable, the Secret and
    // the key. Adding the key makes the instance run.
    let broken = instance(
        "broken-0",
        &loc,
        &image,
        json!({}),
        json!({ "env": [
            { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } },
            { "name": "API_KEY", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "api-key" } } },
        ] }),
    );
    instances.create(&post, &broken).await.expect("created");
    let message = eventually("broken-0 fails naming the key", || async {
        failed_with(&instances.get("broken-0").await.ok()?, "EnvFailed")
    })
    .await;
    assert!(
        message.contains(&format!(
            "container app: env API_KEY: Secret {ns}/creds has no key \"api-key\""
        )),
        "{message}"
    );
    assert!(!running(&instances.get("broken-0").await.expect("exists")));
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "api-key": "k" } })),
        )
        .await
        .expect("the key is added");
    eventually("broken-0 runs once the key exists", || async {
        instances.get("broken-0").await.ok().filter(running)
    })
    .await;
    // A fieldRef path the provider does not serve: an error naming the variable and path.
    let unknown_field = instance(
        "field-0",
        &loc,
        &image,
        json!({}),
        json!({ "env": [field("NODE", "spec.nodeName")] }),
    );
    instances
        .create(&post, &unknown_field)
        .await
        .expect("created");
    let message = eventually("field-0 fails naming the path", || async {
        failed_with(&instances.get("field-0").await.ok()?, "EnvFailed")
    })
    .await;
    assert!(
        message.contains(
            "container app: env NODE: valueFrom.fieldRef.fieldPath \"spec.nodeName\" is not supported"
        ),
        "{message}"
    );
    // A missing non-optional envFrom source is an error too.
    let missing = instance(
        "missing-0",
        &loc,
        &image,
        json!({}),
        json!({ "envFrom": [{ "configMapRef": { "name": "nowhere" } }] }),
    );
    instances.create(&post, &missing).await.expect("created");
    let message = eventually("missing-0 fails naming the ConfigMap", || async {
        failed_with(&instances.get("missing-0").await.ok()?, "EnvFailed")
    })
    .await;
    assert!(
        message.contains(&format!(
            "container app: envFrom[0]: ConfigMap {ns}/nowhere does not exist"
        )),
        "{message}"
    );

    // The secret's value is in no status and no Event.
    for i in instances.list(&Default::default()).await.expect("lists") {
        let status = serde_json::to_string(&i.status).unwrap_or_default();
        assert!(!status.contains(SECRET_VALUE), "a status shows a secret");
    }
    no_event_mentions(&host.client, &ns, SECRET_VALUE).await;
    for name in ["web-0", "broken-0", "missing-0", "field-0"] {
        instances
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    common::all_gone(&instances).await;
    running_provider.stop().await;
}

/// A loopback `docker-registry` that wants `USER`/`PASSWORD` (htpasswd, over plain HTTP),
/// holding `datum/busybox:v1` copied from the host's open registry; killed when dropped.
struct AuthRegistry {
    address: String,
    process: Child,
}

impl AuthRegistry {
    async fn start(host: &Host) -> Self {
        let dir = host.dir.join("auth-registry");
        std::fs::create_dir_all(&dir).expect("a directory");
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, format!("{USER}:{PASSWORD_BCRYPT}\n")).expect("htpasswd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let address = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: {address} }}\nauth: {{ htpasswd: {{ realm: datum-test, path: {} }} }}\n",
                dir.join("data").display(),
                htpasswd.display()
            ),
        )
        .expect("the registry config");
        let process = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "docker-registry", "serve"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Self { address, process };
        let mut copied = false;
        for _ in 0..50 {
            let status = Command::new("skopeo")
                .args([
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    &format!("{USER}:{PASSWORD}"),
                ])
                .arg(format!("docker://{}/datum/busybox:v1", host.registry))
                .arg(format!("docker://{}/private/busybox:v1", registry.address))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("skopeo runs");
            if status.success() {
                copied = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(copied, "the image is pushed to the authenticating registry");
        registry
    }

    /// A `.dockerconfigjson` document for this registry.
    fn docker_config(&self, password: &str) -> String {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        json!({ "auths": { (self.address.clone()): { "auth": auth } } }).to_string()
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test]
async fn private_images_pull_with_pull_secrets_or_the_config_credentials() {
    let host = common::host("pull-auth").await;
    let registry = AuthRegistry::start(&host).await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-pull")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    let cfg = format!("{ns}-cfg");
    let mut config = host.config(&cfg, None);
    config.spec.registries.push(Registry {
        host: registry.address.clone(),
        insecure: true,
        ..Registry::default()
    });
    host.apply_config(&config).await;
    let post = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(host.client.clone(), &ns);
    let pull_secret = |name: &str, password: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": { ".dockerconfigjson": registry.docker_config(password) },
        }))
        .expect("a Secret")
    };
    secrets
        .create(&post, &pull_secret("regcred", PASSWORD))
        .await
        .expect("created");
    secrets
        .create(&post, &pull_secret("wrong", "not-the-password"))
        .await
        .expect("created");
    let provider = LocalProvider {
        kube: Some(host.client.clone()),
        ..LocalProvider::default()
    };
    let running_provider = host.start(provider, &cfg, &ns);
    let image = format!("{}/private/busybox:v1", registry.address);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);

    // Without credentials: the registry's 401, by name.
    instances
        .create(
            &post,
            &instance("anonymous-0", &loc, &image, json!({}), json!({})),
        )
        .await
        .expect("created");
    let message = eventually("anonymous-0 fails with the registry's 401", || async {
        failed_with(&instances.get("anonymous-0").await.ok()?, "ImagePullFailed")
    })
    .await;
    assert!(
        message.contains(&format!(
            "the registry {} answered 401 Unauthorized",
            registry.address
        )),
        "{message}"
    );
    // A wrong password, then a missing secret, then the right one: each tried in turn.
    let with_secret = instance(
        "private-0",
        &loc,
        &image,
        json!({ "imagePullSecrets": [{ "name": "wrong" }, { "name": "absent" }, { "name": "regcred" }] }),
        json!({}),
    );
    instances
        .create(&post, &with_secret)
        .await
        .expect("created");
    eventually("private-0 runs with its pull secret", || async {
        instances.get("private-0").await.ok().filter(running)
    })
    .await;
    // Only the wrong password: 401 again, naming the missing secret too.
    let wrong = instance(
        "wrong-0",
        &loc,
        &image,
        json!({ "imagePullSecrets": [{ "name": "wrong" }, { "name": "absent" }] }),
        json!({}),
    );
    instances.create(&post, &wrong).await.expect("created");
    let message = eventually("wrong-0 fails with the registry's 401", || async {
        failed_with(&instances.get("wrong-0").await.ok()?, "ImagePullFailed")
    })
    .await;
    assert!(
        message.contains("401 Unauthorized")
            && message.contains("imagePullSecrets that do not exist: absent"),
        "{message}"
    );
    // The image unpacked for private-0 does not let anonymous-0 run: still 401.
    let anonymous = instances.get("anonymous-0").await.expect("exists");
    assert!(failed_with(&anonymous, "ImagePullFailed").is_some() && !running(&anonymous));

    // The ProviderConfig's registry credentials serve instances without pull secrets.
    let config_secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "registry-auth" },
        "stringData": { ".dockerconfigjson": registry.docker_config(PASSWORD) },
    }))
    .expect("a Secret");
    secrets
        .create(&post, &config_secret)
        .await
        .expect("created");
    if let Some(r) = config
        .spec
        .registries
        .iter_mut()
        .find(|r| r.host == registry.address)
    {
        r.auth_secret_ref = Some(SecretKeyRef {
            name: "registry-auth".to_owned(),
            namespace: ns.clone(),
            key: ".dockerconfigjson".to_owned(),
        });
    }
    host.apply_config(&config).await;
    eventually(
        "anonymous-0 runs with the ProviderConfig's credentials",
        || async { instances.get("anonymous-0").await.ok().filter(running) },
    )
    .await;
    no_event_mentions(&host.client, &ns, PASSWORD).await;
    for i in instances.list(&Default::default()).await.expect("lists") {
        let status = serde_json::to_string(&i.status).unwrap_or_default();
        assert!(!status.contains(PASSWORD), "a status shows a password");
    }
    for name in ["anonymous-0", "private-0", "wrong-0"] {
        instances
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    common::all_gone(&instances).await;
    running_provider.stop().await;
    drop(registry);
}
