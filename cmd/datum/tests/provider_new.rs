//! `datum provider new`: the generated crate for `example` is byte-identical to the
//! committed `providers/example` (which CI builds and runs the conformance suite of), so the
//! templates and the example cannot drift; bad input fails with one clear sentence and
//! writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("datum-provider-new-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    /// Makes the directory look like a Datum checkout to the generator.
    fn checkout(test: &str) -> Self {
        let scratch = Self::new(test);
        std::fs::write(scratch.0.join("Cargo.toml"), "[workspace]\n").expect("manifest");
        std::fs::create_dir_all(scratch.0.join("crates/provider")).expect("sdk dir");
        std::fs::write(scratch.0.join("crates/provider/Cargo.toml"), "").expect("sdk");
        std::fs::create_dir_all(scratch.0.join("providers")).expect("providers dir");
        scratch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn datum(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_datum"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("datum runs")
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("readable directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                let contents = std::fs::read(&path).expect("readable file");
                files.insert(relative.display().to_string(), contents);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

#[test]
fn generating_example_reproduces_providers_example_byte_for_byte() {
    let scratch = Scratch::checkout("example");
    let output = datum(&scratch.0, &["provider", "new", "example"]);
    assert!(
        output.status.success(),
        "datum provider new example: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = tree(&scratch.0.join("providers/example"));
    let committed = tree(&repo().join("providers/example"));
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (path, contents) in &generated {
        assert!(
            committed.get(path) == Some(contents),
            "providers/example/{path} differs from what `datum provider new example` writes: \
             change the template under cmd/datum/templates/provider/ and regenerate"
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"providers/example\" to [workspace] members"),
        "says what to do next: {stderr}"
    );
}

#[test]
fn outside_a_checkout_the_datum_crates_come_from_git() {
    let scratch = Scratch::new("standalone");
    let output = datum(
        &scratch.0,
        &["provider", "new", "my-cloud", "--path", "out"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = scratch.0.join("out");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains("name = \"datum-provider-my-cloud\""));
    assert!(manifest.contains("datum-provider = { git = "));
    assert!(!manifest.contains("workspace = true"));
    // Third-party dependencies match the workspace's, line for line.
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).expect("root manifest");
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    for line in dependencies.lines() {
        if line.contains('=') && !line.starts_with("datum-") {
            assert!(
                workspace.lines().any(|l| l == line),
                "{line:?} differs from the workspace's dependency"
            );
        }
    }
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("MyCloudProvider") && lib.contains("`my-cloud`"));
    let config = std::fs::read_to_string(dir.join("src/config.rs")).expect("config.rs");
    assert!(config.contains("group = \"my-cloud.provider.datum.net\""));
}

#[test]
fn a_bad_name_is_refused_with_one_sentence_and_nothing_written() {
    let scratch = Scratch::checkout("bad-name");
    for name in ["Acme", "1cloud", "my_cloud", "a-", "a.b", ""] {
        let output = datum(&scratch.0, &["provider", "new", name]);
        assert!(!output.status.success(), "{name:?} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("is not a valid provider name") && stderr.contains("DNS label"),
            "{stderr}"
        );
    }
    assert!(
        tree(&scratch.0.join("providers")).is_empty(),
        "nothing written"
    );
}

#[test]
fn an_existing_directory_is_left_alone() {
    let scratch = Scratch::checkout("existing");
    let target = scratch.0.join("providers/acme");
    std::fs::create_dir_all(&target).expect("dir");
    std::fs::write(target.join("keep.txt"), "mine").expect("file");
    let output = datum(&scratch.0, &["provider", "new", "acme"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("providers/acme already exists")
            && stderr.contains("choose another NAME, pass --path"),
        "{stderr}"
    );
    assert_eq!(
        tree(&target).into_keys().collect::<Vec<_>>(),
        ["keep.txt"],
        "nothing written"
    );
}

#[test]
fn help_shows_an_example() {
    let output = datum(&repo(), &["provider", "new", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Example: `datum provider new acme`"),
        "{help}"
    );
}

/// The commands `docs/writing-a-provider.md` may show, each with what runs it.
const DOC_COMMANDS: &[(&str, &str)] = &[
    (
        "./datum provider new example",
        "generating_example_reproduces_providers_example_byte_for_byte, above",
    ),
    (
        "cargo test -p datum-provider-example",
        "CI: tools/test.sh runs `cargo test --workspace`",
    ),
    ("./datum up", "cmd/datum/tests/up.rs"),
];

#[test]
fn the_walkthrough_shows_only_commands_that_are_run() {
    let doc = std::fs::read_to_string(repo().join("docs/writing-a-provider.md")).expect("the doc");
    let mut in_shell = false;
    let mut shown = Vec::new();
    for line in doc.lines() {
        match line.trim() {
            "```sh" | "```bash" | "```shell" | "```console" => in_shell = true,
            fence if fence.starts_with("```") => in_shell = false,
            command if in_shell && !command.is_empty() && !command.starts_with('#') => {
                assert!(
                    DOC_COMMANDS.iter().any(|(c, _)| *c == command),
                    "docs/writing-a-provider.md shows `{command}`, which no test or CI runs: \
                     run it somewhere and list it in DOC_COMMANDS, or take it out"
                );
                shown.push(command.to_owned());
            }
            _ => {}
        }
    }
    for (command, _) in DOC_COMMANDS {
        assert!(
            shown.iter().any(|s| s == command),
            "the walkthrough shows `{command}`"
        );
    }
}
