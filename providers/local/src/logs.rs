//! Where an instance's output is kept on the host, for `datum logs`: each container's stdout
//! and stderr in `<stateDir>/instances/<external name>/logs/<container>.log`, a VM's serial
//! console in `.../serial.log`.

use std::path::{Path, PathBuf};

/// The name a VM's serial console goes by among an instance's logs.
pub const CONSOLE: &str = "console";

/// The directory an instance's containers write their output into.
pub fn container_logs_dir(state_dir: &Path, external_name: &str) -> PathBuf {
    state_dir.join("instances").join(external_name).join("logs")
}

/// An instance's log files as `(container or "console", path)`, by name; empty when the
/// instance has not started anything on this host.
pub fn files(state_dir: &Path, external_name: &str) -> Vec<(String, PathBuf)> {
    let dir = container_logs_dir(state_dir, external_name);
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.strip_suffix(".log")?.to_owned();
            Some((name, path))
        })
        .collect();
    let vm = crate::vm::qemu::VmFiles {
        dir: state_dir.join("instances").join(external_name),
    };
    let serial = vm.serial_log();
    if serial.is_file() {
        out.push((CONSOLE.to_owned(), serial));
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_and_the_console_are_found_by_name() {
        let dir = std::env::temp_dir().join(format!("datum-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(files(&dir, "datum-x").is_empty(), "nothing started yet");
        let logs = container_logs_dir(&dir, "datum-x");
        std::fs::create_dir_all(&logs).expect("a directory");
        for file in ["web.log", "sidecar.log", "notes.txt"] {
            std::fs::write(logs.join(file), "x\n").expect("writable");
        }
        std::fs::write(dir.join("instances/datum-x/serial.log"), "boot\n").expect("writable");
        let names: Vec<String> = files(&dir, "datum-x").into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["console", "sidecar", "web"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
