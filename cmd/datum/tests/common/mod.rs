//! Cleaning up after a `datum up` on the local provider, whatever state a failed test left:
//! processes in the run's network namespaces, the namespaces, containerd shims and daemons
//! started for the run's directory, mounts under it, and the directory; and the commands
//! of the docs' `console` blocks, which tests run as written.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Removes everything of one test run when dropped.
pub struct Leftovers {
    /// The run's scratch directory.
    pub dir: PathBuf,
    /// The network-namespace prefix the run's provider used.
    pub netns_prefix: String,
}

impl Leftovers {
    /// A unique prefix and scratch directory for test `name`.
    pub fn new(name: &str) -> Leftovers {
        let id = std::process::id() % 100_000;
        let dir = std::env::temp_dir().join(format!("datum-{name}-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Leftovers {
            dir,
            netns_prefix: format!("t{}{id}-", &name[..1]),
        }
    }
}

/// The processes (other than this one) whose command line mentions `path`.
pub fn processes_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

fn kill(pids: impl IntoIterator<Item = String>) {
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-9", &pid])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let list = Command::new("ip").args(["netns", "list"]).output();
        let names: Vec<String> = list
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&self.netns_prefix))
            .map(str::to_owned)
            .collect();
        for name in &names {
            let pids = Command::new("ip").args(["netns", "pids", name]).output();
            kill(
                pids.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned),
            );
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        kill(
            processes_mentioning(&self.dir)
                .into_iter()
                .map(|p| p.to_string()),
        );
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let prefix = self.dir.display().to_string();
        for target in mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|t| t.starts_with(&prefix))
        {
            let _ = Command::new("umount").args(["-l", target]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The commands (lines starting with `$ `) of each `console` block of a Markdown file.
pub fn console_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    // Inside a fenced block; `Some` when it is a console block.
    let mut open: Option<Option<Vec<String>>> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            open = match open.take() {
                Some(block) => {
                    blocks.extend(block);
                    None
                }
                None => Some((info.trim() == "console").then(Vec::new)),
            };
            continue;
        }
        if let Some(Some(block)) = &mut open
            && let Some(command) = trimmed.strip_prefix("$ ")
        {
            block.push(command.to_owned());
        }
    }
    blocks
}

/// The commands of a Markdown file's `console` blocks, in order.
pub fn commands(markdown: &str) -> Vec<String> {
    console_blocks(markdown).concat()
}
