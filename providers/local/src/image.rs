//! Container images: pulled from a registry with `oci-client` (plain HTTP only for
//! registries the ProviderConfig marks `insecure`, which the CRD allows only on loopback;
//! mirrors tried first), their layers unpacked once into `<stateDir>/images/<digest>/rootfs`
//! (unpacked into a temporary directory and renamed, so a crash leaves no half image), and
//! their config (entrypoint, cmd, env, working directory) kept beside it as `config.json`.
//! The manifest is resolved on every call (a tag may move, and a private image needs its
//! credentials every time); layers are downloaded only for a digest not yet unpacked.
//!
//! Credentials ([`RegistryCredentials`]) come from docker config documents: the instance's
//! `imagePullSecrets` (Secrets in its namespace with a `.dockerconfigjson` or `.dockercfg`
//! key), tried first, then the ProviderConfig's `registries[].authSecretRef`. Each entry of
//! `auths` is keyed by registry host (optionally a scheme and a repository path prefix) and
//! holds `auth` (base64 of `user:password`) or `username` and `password`. Every credential
//! matching the host being pulled from (a mirror has its own) is tried in turn; with none,
//! the pull is anonymous. A pull secret that does not exist is skipped, as the kubelet
//! does, and named in the error if the pull then fails. Passwords never reach a log, an
//! error or an Event.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use datum_api::compute::LocalSecretReference;
use datum_api::provider_config::local::Registry;
use k8s_openapi::api::core::v1::Secret;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, manifest};
use serde::{Deserialize, Serialize};

/// Errors from pulling and unpacking images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference does not parse.
    #[error("invalid image reference {image:?}: {message}")]
    Reference {
        /// The image.
        image: String,
        /// Why.
        message: String,
    },
    /// The registry refused or was unreachable.
    #[error("failed to pull {image}: {message}")]
    Pull {
        /// The image.
        image: String,
        /// Why.
        message: String,
    },
    /// An image pull secret could not be read or is not a docker config document.
    #[error("imagePullSecret {namespace}/{name}: {message}")]
    PullSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why (never a value).
        message: String,
    },
    /// Unpacking failed.
    #[error("failed to unpack {image} into {path}: {source}")]
    Unpack {
        /// The image.
        image: String,
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Unpacks started by this process: concurrent pulls of one image never share a directory.
static UNPACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What the image says to run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `Env`, `KEY=value`.
    #[serde(default)]
    pub env: Vec<String>,
    /// `WorkingDir`.
    #[serde(default)]
    pub working_dir: String,
}

/// An image unpacked on disk.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// The root filesystem (the read-only lower layer of each container's overlay).
    pub rootfs: PathBuf,
    /// What the image runs.
    pub config: ImageConfig,
}

/// The image store under `<stateDir>/images`.
#[derive(Clone, Debug)]
pub struct Images {
    dir: PathBuf,
    registries: Vec<Registry>,
    credentials: RegistryCredentials,
}

#[derive(Deserialize)]
struct RawConfigFile {
    #[serde(default)]
    config: Option<RawConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
}

impl Images {
    /// Images under `<state_dir>/images`, pulled with `registries`' settings.
    pub fn new(state_dir: &Path, registries: Vec<Registry>) -> Self {
        install_crypto_provider();
        Self {
            dir: state_dir.join("images"),
            registries,
            credentials: RegistryCredentials::default(),
        }
    }

    /// The same store, pulling with `credentials` (the ProviderConfig's) when an instance's
    /// own pull secrets have none for a registry.
    pub fn with_credentials(self, credentials: RegistryCredentials) -> Self {
        Self {
            credentials,
            ..self
        }
    }

    /// The credentials to try for `reference`, in order; anonymous when none match.
    fn auths(&self, reference: &Reference, pull: &PullSecrets) -> Vec<RegistryAuth> {
        let mut out: Vec<RegistryAuth> = pull
            .credentials
            .matching(reference)
            .chain(self.credentials.matching(reference))
            .collect();
        if out.is_empty() {
            out.push(RegistryAuth::Anonymous);
        }
        out
    }

    /// The places to try for `image`, mirrors first.
    fn candidates(&self, image: &str) -> Result<Vec<(Reference, bool)>, Error> {
        let reference: Reference =
            image
                .parse()
                .map_err(|e: oci_client::ParseError| Error::Reference {
                    image: image.to_owned(),
                    message: e.to_string(),
                })?;
        let registry = self
            .registries
            .iter()
            .find(|r| r.host == reference.registry() || r.host == reference.resolve_registry());
        let mut out = Vec::new();
        for mirror in registry.map(|r| r.mirrors.as_slice()).unwrap_or_default() {
            let (plain, host) = match mirror.split_once("://") {
                Some(("http", host)) => (true, host),
                Some((_, host)) => (false, host),
                None => (false, mirror.as_str()),
            };
            let host = host.trim_end_matches('/');
            let mirrored = match reference.digest() {
                Some(d) => Reference::with_digest(
                    host.to_owned(),
                    reference.repository().to_owned(),
                    d.to_owned(),
                ),
                None => Reference::with_tag(
                    host.to_owned(),
                    reference.repository().to_owned(),
                    reference.tag().unwrap_or("latest").to_owned(),
                ),
            };
            out.push((mirrored, plain));
        }
        out.push((reference, registry.is_some_and(|r| r.insecure)));
        Ok(out)
    }

    /// Pulls `image` (unless already unpacked) with the instance's `pull` secrets and
    /// returns it.
    pub async fn ensure(&self, image: &str, pull: &PullSecrets) -> Result<Unpacked, Error> {
        let mut last = String::new();
        let candidates = self.candidates(image)?;
        let attempts = candidates.iter().flat_map(|(reference, plain)| {
            self.auths(reference, pull)
                .into_iter()
                .map(move |auth| (reference.clone(), *plain, auth))
        });
        for (reference, plain, auth) in attempts.collect::<Vec<_>>() {
            let protocol = if plain {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            };
            let client = Client::new(ClientConfig {
                protocol,
                ..ClientConfig::default()
            });
            // Resolve the manifest first: an image already unpacked is not downloaded again.
            let digest = match client.pull_image_manifest(&reference, &auth).await {
                Ok((_, digest)) => digest,
                Err(e) => {
                    last = failure(&reference, &e);
                    continue;
                }
            };
            let dir = self.dir.join(digest.replace(':', "-"));
            if let Some(config) = std::fs::read(dir.join("config.json"))
                .ok()
                .and_then(|c| serde_json::from_slice::<ImageConfig>(&c).ok())
                && dir.join("rootfs").is_dir()
            {
                return Ok(Unpacked {
                    rootfs: dir.join("rootfs"),
                    config,
                });
            }
            let data = match client
                .pull(
                    &reference,
                    &auth,
                    vec![
                        manifest::IMAGE_LAYER_MEDIA_TYPE,
                        manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
                        manifest::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
                        manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
                    ],
                )
                .await
            {
                Ok(data) => data,
                Err(e) => {
                    last = failure(&reference, &e);
                    continue;
                }
            };
            let config = parse_config(&data.config.data);
            let unpacked = Unpacked {
                rootfs: dir.join("rootfs"),
                config,
            };
            if unpacked.rootfs.is_dir() {
                return Ok(unpacked);
            }
            let image_name = image.to_owned();
            let fail = move |path: &Path| {
                let image = image_name.clone();
                let path = path.to_path_buf();
                move |source| Error::Unpack {
                    image,
                    path,
                    source,
                }
            };
            let tmp = self.dir.join(format!(
                ".tmp-{}-{}-{}",
                std::process::id(),
                UNPACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                crate::names::short_hash(&[&digest], 8)
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            let rootfs = tmp.join("rootfs");
            std::fs::create_dir_all(&rootfs).map_err(fail(&rootfs))?;
            for layer in &data.layers {
                let gz = layer.media_type.ends_with("gzip");
                unpack_layer(&layer.data, gz, &rootfs).map_err(fail(&rootfs))?;
            }
            let config_file = tmp.join("config.json");
            let config_json = serde_json::to_vec(&unpacked.config).unwrap_or_default();
            std::fs::write(&config_file, config_json).map_err(fail(&config_file))?;
            std::fs::create_dir_all(&self.dir).map_err(fail(&self.dir))?;
            match std::fs::rename(&tmp, &dir) {
                Ok(()) => {}
                // Another reconcile unpacked it first.
                Err(_) if unpacked.rootfs.is_dir() => {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                Err(source) => return Err(fail(&dir)(source)),
            }
            return Ok(unpacked);
        }
        if !pull.missing.is_empty() {
            last.push_str(&format!(
                " (imagePullSecrets that do not exist: {})",
                pull.missing.join(", ")
            ));
        }
        // The last attempt is the image's own reference: naming it again adds nothing.
        let message = last
            .strip_prefix(&format!("{image}: "))
            .map_or(last.clone(), str::to_owned);
        Err(Error::Pull {
            image: image.to_owned(),
            message,
        })
    }
}

/// Why a pull from `reference` failed, saying so plainly when the registry refused the
/// credentials (or their absence).
fn failure(reference: &Reference, e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            format!(
                "{reference}: the registry {} answered 401 Unauthorized ({e})",
                reference.registry()
            )
        }
        _ => format!("{reference}: {e}"),
    }
}

/// One credential: for a registry host (and, optionally, repositories under a path).
#[derive(Clone, PartialEq, Eq)]
struct Credential {
    host: String,
    path: String,
    username: String,
    password: String,
}

/// Registry credentials parsed from docker config documents. `Debug` shows hosts only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryCredentials {
    entries: Vec<Credential>,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|c| format!("{}/{}", c.host, c.path)),
            )
            .finish()
    }
}

/// A registry host as docker config keys and image references name it: no scheme, no
/// path, lower case, Docker Hub's aliases as `docker.io`.
pub fn normalize_host(key: &str) -> (String, String) {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let host = host.to_ascii_lowercase();
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    };
    // `https://index.docker.io/v1/` names the whole of Docker Hub.
    let path = match path.trim_matches('/') {
        "v1" | "v2" => "",
        p => p,
    };
    (host, path.to_owned())
}

impl RegistryCredentials {
    /// Parses a docker config document: `{"auths": {host: entry}}` (`.dockerconfigjson`) or
    /// `{host: entry}` (`.dockercfg`). An entry without `auth` or `username`/`password`
    /// (e.g. only an identity token) is skipped. Errors never quote the document.
    pub fn parse(document: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(document).map_err(|e| {
            format!(
                "not a docker config JSON document (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let auths = match value.get("auths") {
            Some(auths) => auths,
            None => &value,
        };
        let auths = auths
            .as_object()
            .ok_or("not a docker config document: `auths` must be an object of registry hosts")?;
        let mut entries = Vec::new();
        for (key, entry) in auths {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let (username, password) = match (field("auth"), field("username")) {
                (Some(auth), _) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|d| String::from_utf8(d).ok())
                        .ok_or_else(|| format!("the `auth` of {key:?} is not base64 text"))?;
                    let (user, password) = decoded
                        .split_once(':')
                        .ok_or_else(|| format!("the `auth` of {key:?} is not user:password"))?;
                    (user.to_owned(), password.to_owned())
                }
                (None, Some(user)) => (
                    user.to_owned(),
                    field("password").unwrap_or_default().to_owned(),
                ),
                (None, None) => continue,
            };
            let (host, path) = normalize_host(key);
            entries.push(Credential {
                host,
                path,
                username,
                password,
            });
        }
        Ok(Self { entries })
    }

    /// Adds `other`'s credentials after these.
    pub fn extend(&mut self, other: Self) {
        self.entries.extend(other.entries);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any credential is for `host` (an image reference's registry).
    pub fn has_host(&self, host: &str) -> bool {
        let (host, _) = normalize_host(host);
        self.entries.iter().any(|c| c.host == host)
    }

    /// The credentials for `reference`, most specific path first.
    pub fn matching(&self, reference: &Reference) -> impl Iterator<Item = RegistryAuth> + '_ {
        let (host, _) = normalize_host(reference.registry());
        let repository = reference.repository().to_owned();
        let mut found: Vec<&Credential> = self
            .entries
            .iter()
            .filter(|c| {
                c.host == host
                    && (c.path.is_empty()
                        || repository == c.path
                        || repository.starts_with(&format!("{}/", c.path)))
            })
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        found
            .into_iter()
            .map(|c| RegistryAuth::Basic(c.username.clone(), c.password.clone()))
    }
}

/// An instance's image pull secrets, read.
#[derive(Clone, Debug, Default)]
pub struct PullSecrets {
    /// Their credentials, in `imagePullSecrets` order.
    pub credentials: RegistryCredentials,
    /// The names of those that do not exist.
    pub missing: Vec<String>,
}

impl PullSecrets {
    /// Reads `secrets` from `namespace`: each a Secret with a `.dockerconfigjson` key (type
    /// `kubernetes.io/dockerconfigjson`) or a `.dockercfg` key (`kubernetes.io/dockercfg`).
    pub async fn read(
        kube: Option<&kube::Client>,
        namespace: &str,
        secrets: &[LocalSecretReference],
    ) -> Result<Self, Error> {
        let mut out = Self::default();
        for reference in secrets {
            let fail = |message: String| Error::PullSecret {
                namespace: namespace.to_owned(),
                name: reference.name.clone(),
                message,
            };
            let kube = kube.ok_or_else(|| {
                fail("reading it needs the provider's Kubernetes client".to_owned())
            })?;
            let Some(secret) = kube::Api::<Secret>::namespaced(kube.clone(), namespace)
                .get_opt(&reference.name)
                .await
                .map_err(|e| fail(format!("failed to read it: {e}")))?
            else {
                tracing::warn!(
                    "imagePullSecret {namespace}/{} does not exist; pulling without it",
                    reference.name
                );
                out.missing.push(reference.name.clone());
                continue;
            };
            let data = secret.data.unwrap_or_default();
            let document = [".dockerconfigjson", ".dockercfg"]
                .iter()
                .find_map(|key| data.get(*key))
                .ok_or_else(|| {
                    fail("it has neither a .dockerconfigjson nor a .dockercfg key".to_owned())
                })?;
            let credentials = RegistryCredentials::parse(&document.0)
                .map_err(|m| fail(format!("its docker config is invalid: {m}")))?;
            out.credentials.extend(credentials);
        }
        Ok(out)
    }
}

/// Names ring as the process's TLS crypto provider. Both ring and aws-lc-rs are linked (kube
/// uses ring, the registry client's HTTP stack brings aws-lc-rs), and then rustls refuses to
/// pick one: every process using this crate calls this before making any TLS client
/// (including a Kubernetes client). Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn parse_config(data: &[u8]) -> ImageConfig {
    let Ok(RawConfigFile { config: Some(raw) }) = serde_json::from_slice::<RawConfigFile>(data)
    else {
        return ImageConfig::default();
    };
    ImageConfig {
        entrypoint: raw.entrypoint.unwrap_or_default(),
        cmd: raw.cmd.unwrap_or_default(),
        env: raw.env.unwrap_or_default(),
        working_dir: raw.working_dir.unwrap_or_default(),
    }
}

/// Unpacks one layer tarball into `rootfs`, applying whiteouts (`.wh.` files).
fn unpack_layer(data: &[u8], gzip: bool, rootfs: &Path) -> std::io::Result<()> {
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        Box::new(data)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            entry.unpack_in(rootfs)?;
            continue;
        };
        if file_name == ".wh..wh..opq" {
            if let Some(parent) = path.parent() {
                let dir = rootfs.join(parent);
                if let Ok(children) = std::fs::read_dir(&dir) {
                    for child in children.filter_map(Result::ok) {
                        let p = child.path();
                        let _ = if p.is_dir() && !p.is_symlink() {
                            std::fs::remove_dir_all(p)
                        } else {
                            std::fs::remove_file(p)
                        };
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = file_name.strip_prefix(".wh.") {
            let target = rootfs.join(path.with_file_name(hidden));
            let _ = if target.is_dir() && !target.is_symlink() {
                std::fs::remove_dir_all(target)
            } else {
                std::fs::remove_file(target)
            };
            continue;
        }
        // `unpack_in` refuses paths that escape `rootfs`.
        entry.unpack_in(rootfs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths(credentials: &RegistryCredentials, image: &str) -> Vec<(String, String)> {
        let reference: Reference = image.parse().expect("a reference");
        credentials
            .matching(&reference)
            .map(|a| match a {
                RegistryAuth::Basic(u, p) => (u, p),
                _ => panic!("basic only"),
            })
            .collect()
    }

    fn pair(user: &str, password: &str) -> (String, String) {
        (user.to_owned(), password.to_owned())
    }

    #[test]
    fn docker_config_json_gives_basic_auth_by_host() {
        // `auth` is base64("ci:pa:ss") — the password may hold colons.
        let doc = br#"{"auths": {
            "127.0.0.1:5000": {"auth": "Y2k6cGE6c3M="},
            "https://ghcr.io": {"username": "bot", "password": "tok"},
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
            "quay.io/team": {"username": "team", "password": "t"},
            "quay.io": {"username": "any", "password": "a"},
            "token.example": {"identitytoken": "x"}
        }}"#;
        let c = RegistryCredentials::parse(doc).expect("parses");
        assert_eq!(
            auths(&c, "127.0.0.1:5000/datum/busybox:v1"),
            [pair("ci", "pa:ss")]
        );
        assert_eq!(auths(&c, "ghcr.io/datum/app:1"), [pair("bot", "tok")]);
        assert_eq!(auths(&c, "busybox:1"), [pair("hub", "hubpw")]);
        assert_eq!(
            auths(&c, "quay.io/team/app:1"),
            [pair("team", "t"), pair("any", "a")]
        );
        assert_eq!(auths(&c, "quay.io/other/app:1"), [pair("any", "a")]);
        assert_eq!(auths(&c, "127.0.0.1:5001/datum/busybox:v1"), []);
        assert_eq!(auths(&c, "token.example/app:1"), []);
        assert!(c.has_host("INDEX.docker.io") && !c.has_host("example.org"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("tok") && !shown.contains("hubpw"),
            "{shown}"
        );
    }

    #[test]
    fn legacy_dockercfg_parses_and_errors_never_quote_the_document() {
        let c = RegistryCredentials::parse(
            br#"{"registry.example": {"auth": "dTpw", "email": "x@y"}}"#,
        )
        .expect("parses");
        assert_eq!(auths(&c, "registry.example/a:1"), [pair("u", "p")]);
        for bad in [
            &br#"{"auths": {"r.example": {"auth": "not base64 s3cret!"}}}"#[..],
            br#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#,
            br#"{"auths": ["s3cret"]}"#,
            br#"{"auths": {"r.example": {"auth": "s3cret"#,
        ] {
            let e = RegistryCredentials::parse(bad).expect_err("refused");
            assert!(!e.contains("s3cret") && !e.contains("nocolon"), "{e}");
        }
    }
}
