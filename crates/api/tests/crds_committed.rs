//! The CRDs committed under `config/crd/` are exactly what the Rust types generate.
//! Regenerate them with `cargo run -p datum -- crds --write config/crd`.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/crd");
    let crds = datum_api::crds::all();
    assert!(!crds.is_empty());
    let mut stale = Vec::new();
    let mut expected_files = BTreeSet::new();
    for crd in &crds {
        let file = datum_api::crds::file_name(crd);
        let generated = datum_api::crds::to_yaml(crd).expect("CRD renders as YAML");
        match std::fs::read_to_string(dir.join(&file)) {
            Ok(committed) if committed == generated => {}
            Ok(_) => stale.push(format!("{file} differs from the types")),
            Err(_) => stale.push(format!("{file} is missing")),
        }
        expected_files.insert(file);
    }
    match std::fs::read_to_string(dir.join("kustomization.yaml")) {
        Ok(committed) if committed == datum_api::crds::kustomization(&crds) => {}
        _ => stale.push("kustomization.yaml is missing or differs".to_owned()),
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml")
            && name != "kustomization.yaml"
            && !expected_files.contains(&name)
        {
            stale.push(format!("{name} is no longer generated"));
        }
    }
    assert!(
        stale.is_empty(),
        "config/crd is stale ({}); run `cargo run -p datum -- crds --write config/crd`",
        stale.join(", ")
    );
}

#[test]
fn crd_names_are_unique() {
    let crds = datum_api::crds::all();
    let names: BTreeSet<_> = crds.iter().map(datum_api::crds::file_name).collect();
    assert_eq!(names.len(), crds.len());
}
