//! `datum crds`: the generated CRDs, printed or written out.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct CrdsArgs {
    /// Write `<group>_<plural>.yaml` files and a kustomization.yaml into this directory
    /// instead of printing.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

pub fn crds(args: CrdsArgs) -> anyhow::Result<()> {
    let crds = datum_api::crds::all();
    let Some(dir) = args.write else {
        for crd in &crds {
            print!("---\n{}", datum_api::crds::to_yaml(crd)?);
        }
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Files of CRDs that no longer exist go, so the directory is exactly the generated set.
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            std::fs::remove_file(entry.path())?;
        }
    }
    for crd in &crds {
        let path = dir.join(datum_api::crds::file_name(crd));
        std::fs::write(&path, datum_api::crds::to_yaml(crd)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(
        dir.join("kustomization.yaml"),
        datum_api::crds::kustomization(&crds),
    )?;
    eprintln!("wrote {} CRDs to {}", crds.len(), dir.display());
    Ok(())
}
