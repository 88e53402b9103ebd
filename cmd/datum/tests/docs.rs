//! Every command in the docs' `console` blocks (lines starting with `$ `), run in order
//! against a real `./datum up` on the local provider: docs/quickstart.md,
//! docs/providers/local.md and docs/operations.md. Ports, the registry address and the
//! data directory are swapped for test-owned ones; everything else runs as written.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `datum up` started by a doc; killed if the doc does not stop it.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_doc(doc: &str) {
    let markdown = std::fs::read_to_string(repo().join(doc)).expect("the doc is readable");
    let commands = common::commands(&markdown);
    assert!(!commands.is_empty(), "{doc} has commands");
    let leftovers = common::Leftovers::new(&format!(
        "docs-{}",
        doc.trim_end_matches(".md").replace('/', "-")
    ));
    let scratch = leftovers.dir.clone();
    let home = scratch.join("home");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_datum"));
    let swaps = [
        ("127.0.0.1:5000", format!("127.0.0.1:{}", free_port())),
        ("127.0.0.1:9464", format!("127.0.0.1:{}", free_port())),
        ("127.0.0.1:9465", format!("127.0.0.1:{}", free_port())),
        ("~/.local/share/datum", home.display().to_string()),
        ("./datum ", format!("{} ", binary.display())),
    ];
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATUM_HOME".to_owned(), home.display().to_string()),
        ("DATUM_REGISTRY".to_owned(), swaps[0].1.clone()),
        (
            "DATUM_REGISTRY_DIR".to_owned(),
            scratch.join("registry").display().to_string(),
        ),
    ]);
    let mut up: Option<Up> = None;
    for original in &commands {
        let mut command = original.clone();
        for (from, to) in &swaps {
            command = command.replace(from, to);
        }
        // Example files the docs apply get the same swaps, in a copy.
        for word in original.split_whitespace() {
            if word.starts_with("docs/examples/") {
                let mut text =
                    std::fs::read_to_string(repo().join(word)).expect("the example is readable");
                for (from, to) in &swaps {
                    text = text.replace(from, to);
                }
                let copy = scratch.join(word.replace('/', "-"));
                std::fs::write(&copy, text).expect("writable");
                command = command.replace(word, &copy.display().to_string());
            }
        }
        if let Some(rest) = original.strip_prefix("./datum up") {
            let mut args: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
            for arg in &mut args {
                for (from, to) in &swaps {
                    *arg = arg.replace(from, to);
                }
            }
            let mut child = Command::new(&binary)
                .arg("up")
                .args(&args)
                .args(["--port", &free_port().to_string()])
                .args(["--metrics-address", &swaps[1].1])
                .args(["--provider-metrics-address", &swaps[2].1])
                .args(["--netns-prefix", &leftovers.netns_prefix])
                .envs(&env)
                .env_remove("KUBECONFIG")
                .current_dir(repo())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("datum up starts");
            let stdout = child.stdout.take().expect("piped");
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.starts_with("Datum is up"));
            assert!(ready, "{doc}: `{original}` never came up");
            std::thread::spawn(move || lines.for_each(drop));
            up = Some(Up(child));
            continue;
        }
        if let Some(assignment) = command.strip_prefix("export ") {
            let (key, value) = assignment.split_once('=').expect("export KEY=value");
            env.insert(key.to_owned(), value.to_owned());
            continue;
        }
        let output = Command::new("bash")
            .args(["-c", &command])
            .env_remove("KUBECONFIG")
            .envs(&env)
            .current_dir(repo())
            .output()
            .expect("bash runs");
        if !output.status.success() {
            let status = Command::new(&binary)
                .args(["status", "-A"])
                .env_remove("KUBECONFIG")
                .envs(&env)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!(
                "{doc}: `{original}` failed ({}):\n{}{}\ndatum status -A:\n{status}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if original.starts_with("./datum down")
            && let Some(mut up) = up.take()
        {
            let status = up.0.wait().expect("datum up exits");
            assert!(status.success(), "{doc}: datum up exited with {status}");
        }
    }
    assert!(
        up.is_none(),
        "{doc} stops what it started with ./datum down"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn the_docs_commands_run_as_written() {
    let only = std::env::var("DATUM_DOCS").unwrap_or_default();
    for doc in [
        "docs/quickstart.md",
        "docs/providers/local.md",
        "docs/operations.md",
    ] {
        if only.is_empty() || only.split(',').any(|o| doc.contains(o)) {
            run_doc(doc);
        }
    }
}

#[test]
fn console_blocks_are_found() {
    let markdown = "text\n```console\n$ one\noutput\n$ two\n```\n```sh\n$ not this\n```\n";
    assert_eq!(common::commands(markdown), ["one", "two"]);
    let two = "```console\n$ a\n```\n```\n$ no\n```\n```console\n$ b\n$ c\n```\n";
    assert_eq!(common::console_blocks(two), [vec!["a"], vec!["b", "c"]]);
}
