//! The files of a generated provider crate: templates under `cmd/datum/templates/provider/`,
//! compiled in with `include_str!`, and a plain placeholder substitution — `{{name}}`
//! (`my-cloud`), `{{name_snake}}` (`my_cloud`), `{{NAME}}` (`MY_CLOUD`) and `{{Name}}`
//! (`MyCloud`). No template engine: the templates hold no logic.
//!
//! `providers/example` in this repository is the rendering for `example`; a test keeps the
//! two byte-identical.

use super::name::ProviderName;

/// Where the generated crate gets the Datum crates and its other dependencies from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A member of a Datum checkout's workspace: every dependency is `workspace = true`.
    Workspace,
    /// Anywhere else: the Datum crates by git from the project's repository, the others by
    /// version.
    Standalone,
}

/// One file of the crate: its path inside the crate, and its contents.
#[derive(Debug)]
pub struct File {
    pub path: &'static str,
    pub contents: String,
}

/// `(path in the crate, template)` for every file but `Cargo.toml`.
const FILES: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../templates/provider/README.md.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/provider/src/lib.rs.tmpl"),
    ),
    (
        "src/config.rs",
        include_str!("../../templates/provider/src/config.rs.tmpl"),
    ),
    (
        "src/provider.rs",
        include_str!("../../templates/provider/src/provider.rs.tmpl"),
    ),
    (
        "src/platform.rs",
        include_str!("../../templates/provider/src/platform.rs.tmpl"),
    ),
    (
        "src/main.rs",
        include_str!("../../templates/provider/src/main.rs.tmpl"),
    ),
    (
        "tests/common/mod.rs",
        include_str!("../../templates/provider/tests/common/mod.rs.tmpl"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../../templates/provider/tests/conformance.rs.tmpl"),
    ),
];

const CARGO_WORKSPACE: &str = include_str!("../../templates/provider/Cargo.toml.workspace.tmpl");
const CARGO_STANDALONE: &str = include_str!("../../templates/provider/Cargo.toml.standalone.tmpl");

/// Every file of the crate for provider `name`.
pub fn render(name: &ProviderName, layout: Layout) -> Vec<File> {
    let cargo = match layout {
        Layout::Workspace => CARGO_WORKSPACE,
        Layout::Standalone => CARGO_STANDALONE,
    };
    std::iter::once(("Cargo.toml", cargo))
        .chain(FILES.iter().copied())
        .map(|(path, template)| File {
            path,
            contents: substitute(template, name),
        })
        .collect()
}

fn substitute(template: &str, name: &ProviderName) -> String {
    template
        .replace("{{name}}", name.as_str())
        .replace("{{name_snake}}", &name.snake_case())
        .replace("{{NAME}}", &name.upper_snake_case())
        .replace("{{Name}}", &name.camel_case())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_substituted() {
        let name = ProviderName::parse("my-cloud").expect("valid");
        for layout in [Layout::Workspace, Layout::Standalone] {
            for file in render(&name, layout) {
                assert!(
                    !file.contents.contains("{{"),
                    "{} keeps a placeholder",
                    file.path
                );
                assert!(
                    !file.contents.contains("example"),
                    "{} mentions `example` where the name belongs",
                    file.path
                );
            }
        }
    }
}
