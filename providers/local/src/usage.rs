//! CPU and memory usage of containers, read from their cgroups (v1 `memory` and `cpuacct`
//! hierarchies, or the unified v2 files), as the percentages of the instance type the
//! autoscaler reads. CPU is a rate, so the previous sample is kept per instance.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Raw counters of a set of cgroups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// CPU time used so far, nanoseconds.
    pub cpu_nanos: u64,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The counters of the cgroup at `cgroup` (e.g. `/datum/<id>`), under `root`
/// (`/sys/fs/cgroup`).
pub fn read(root: &Path, cgroup: &str) -> Option<Counters> {
    let relative = cgroup.trim_start_matches('/');
    let v1_memory = root
        .join("memory")
        .join(relative)
        .join("memory.usage_in_bytes");
    let v1_cpu = root.join("cpuacct").join(relative).join("cpuacct.usage");
    if let (Some(memory_bytes), Some(cpu_nanos)) = (read_u64(&v1_memory), read_u64(&v1_cpu)) {
        return Some(Counters {
            memory_bytes,
            cpu_nanos,
        });
    }
    let v2 = root.join(relative);
    let memory_bytes = read_u64(&v2.join("memory.current"))?;
    let stat = std::fs::read_to_string(v2.join("cpu.stat")).ok()?;
    let usec: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some(Counters {
        memory_bytes,
        cpu_nanos: usec.saturating_mul(1000),
    })
}

/// Turns counters into percentages, remembering the last CPU sample per instance.
#[derive(Debug, Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Sampler {
    /// `(cpu %, memory %)` of `counters` against `cpu_millis` and `memory_bytes`; CPU is
    /// `None` on the first sample.
    pub fn percentages(
        &self,
        instance: &str,
        counters: Counters,
        cpu_millis: i64,
        memory_bytes: i64,
    ) -> (Option<i32>, Option<i32>) {
        let memory =
            (memory_bytes > 0).then(|| percent(counters.memory_bytes as f64 / memory_bytes as f64));
        let now = Instant::now();
        let previous = match self.last.lock() {
            Ok(mut last) => last.insert(instance.to_owned(), (now, counters.cpu_nanos)),
            Err(_) => None,
        };
        let cpu = previous.and_then(|(at, nanos)| {
            let elapsed = now.duration_since(at).as_nanos() as f64;
            let granted = cpu_millis as f64 / 1000.0;
            (elapsed > 0.0 && granted > 0.0).then(|| {
                percent(counters.cpu_nanos.saturating_sub(nanos) as f64 / (elapsed * granted))
            })
        });
        (cpu, memory)
    }

    /// Forgets an instance.
    pub fn forget(&self, instance: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.remove(instance);
        }
    }
}

fn percent(fraction: f64) -> i32 {
    (fraction * 100.0).round().clamp(0.0, 1000.0) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_needs_two_samples() {
        let sampler = Sampler::default();
        let first = sampler.percentages(
            "i",
            Counters {
                memory_bytes: 50,
                cpu_nanos: 0,
            },
            1000,
            100,
        );
        assert_eq!(first, (None, Some(50)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (cpu, _) = sampler.percentages(
            "i",
            Counters {
                memory_bytes: 50,
                cpu_nanos: 10_000_000,
            },
            1000,
            100,
        );
        assert!(cpu.is_some_and(|c| c > 0));
    }
}
