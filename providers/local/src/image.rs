//! Container images: pulled from a registry with `oci-client` (plain HTTP only for
//! registries the ProviderConfig marks `insecure`, which the CRD allows only on loopback;
//! mirrors tried first), their layers unpacked once into `<stateDir>/images/<digest>/rootfs`
//! (unpacked into a temporary directory and renamed, so a crash leaves no half image), and
//! their config (entrypoint, cmd, env, working directory) kept beside it as `config.json`.
//! The manifest is resolved on every call (a tag may move); layers are downloaded only for
//! a digest not yet unpacked.

use std::io::Read;
use std::path::{Path, PathBuf};

use datum_api::provider_config::local::Registry;
use oci_client::client::{ClientConfig, ClientProtocol};
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
        }
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

    /// Pulls `image` (unless already unpacked) and returns it.
    pub async fn ensure(&self, image: &str) -> Result<Unpacked, Error> {
        let mut last = String::new();
        for (reference, plain) in self.candidates(image)? {
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
            let digest = match client
                .pull_image_manifest(&reference, &RegistryAuth::Anonymous)
                .await
            {
                Ok((_, digest)) => digest,
                Err(e) => {
                    last = format!("{reference}: {e}");
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
                    &RegistryAuth::Anonymous,
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
                    last = format!("{reference}: {e}");
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
        Err(Error::Pull {
            image: image.to_owned(),
            message: last,
        })
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
