//! `datum provider new NAME`: writes a complete provider crate for platform NAME — its
//! ProviderConfig kind, the Provider and ExternalClient impls over a stand-in platform, a
//! binary, the SDK's conformance suite and a README — that builds and passes the suite
//! before any real platform code is written.
//!
//! Inside a Datum checkout the crate's dependencies are `workspace = true` (add its path to
//! the root `Cargo.toml`'s members); anywhere else they name the Datum crates by git.

mod name;
mod template;

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};

use self::name::ProviderName;
use self::template::Layout;

/// `datum provider ...`
#[derive(clap::Subcommand)]
pub enum ProviderCommand {
    /// Write a new provider crate that builds and passes the SDK conformance suite.
    ///
    /// The crate serves Locations whose `spec.provider` key is NAME, has its own
    /// `NAME.provider.datum.net/v1alpha1` ProviderConfig, and talks to a stand-in platform
    /// marked `REPLACE THIS`. Inside a Datum checkout it depends on the workspace's crates;
    /// elsewhere on the Datum repository by git.
    ///
    /// Example: `datum provider new acme`, then add "providers/acme" to the workspace
    /// members and run `cargo test -p datum-provider-acme`
    New(NewArgs),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The provider's name: a DNS label starting with a letter (e.g. `acme`, `my-cloud`).
    name: String,
    /// The directory to create; default `providers/NAME` when `./providers` exists, else
    /// `./NAME`.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

pub fn provider(command: ProviderCommand) -> anyhow::Result<()> {
    match command {
        ProviderCommand::New(args) => new(args),
    }
}

fn new(args: NewArgs) -> anyhow::Result<()> {
    let name = ProviderName::parse(&args.name).map_err(anyhow::Error::msg)?;
    let dir = args.path.unwrap_or_else(|| default_dir(&name));
    if dir.exists() {
        bail!(
            "{} already exists: choose another NAME, pass --path with a new directory, or remove it first",
            dir.display()
        );
    }
    let absolute = std::path::absolute(&dir)
        .map(|path| normalize(&path))
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let checkout = datum_checkout(&absolute);
    let layout = match checkout {
        Some(_) => Layout::Workspace,
        None => Layout::Standalone,
    };
    write(&dir, &template::render(&name, layout))?;
    eprintln!("wrote provider {name} to {}", dir.display());
    match checkout {
        Some(root) => {
            let member = absolute.strip_prefix(&root).unwrap_or(&absolute);
            eprintln!(
                "next: add {:?} to [workspace] members in {}, then run `cargo test -p datum-provider-{name}`",
                member.display().to_string(),
                root.join("Cargo.toml").display()
            );
        }
        None => eprintln!(
            "next: in {}, run `cargo test` (its Cargo.toml takes the Datum crates from git)",
            dir.display()
        ),
    }
    Ok(())
}

fn default_dir(name: &ProviderName) -> PathBuf {
    let providers = Path::new("providers");
    if providers.is_dir() {
        providers.join(name.as_str())
    } else {
        PathBuf::from(name.as_str())
    }
}

/// `path` with `.` and `..` resolved lexically, so that its ancestors are the directories
/// it will really be in.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// The root of the Datum checkout `dir` would be inside, if any: the nearest ancestor
/// with a workspace `Cargo.toml` and the provider SDK at `crates/provider`.
fn datum_checkout(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|ancestor| {
        let manifest = std::fs::read_to_string(ancestor.join("Cargo.toml")).ok()?;
        (manifest.contains("[workspace]") && ancestor.join("crates/provider/Cargo.toml").is_file())
            .then(|| ancestor.to_owned())
    })
}

/// Creates `dir` (which must not exist) and writes `files` into it.
fn write(dir: &Path, files: &[template::File]) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::create_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} already exists: choose another NAME, pass --path with a new directory, or remove it first",
            dir.display()
        ),
        _ => anyhow::anyhow!("cannot create {}: {e}", dir.display()),
    })?;
    for file in files {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dot_and_dot_dot() {
        assert_eq!(
            normalize(Path::new("/work/main/./../elsewhere/acme")),
            Path::new("/work/elsewhere/acme")
        );
    }

    #[test]
    fn a_checkout_is_found_only_above_the_new_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = normalize(&std::path::absolute(root).expect("absolute"));
        assert_eq!(
            datum_checkout(&root.join("providers/acme")),
            Some(root.clone())
        );
        assert_eq!(datum_checkout(Path::new("/")), None);
    }
}
