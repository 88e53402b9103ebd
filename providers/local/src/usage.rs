//! CPU and memory usage of instances, as the percentages of the instance type the
//! autoscaler reads: containers from their cgroups (v1 `memory` and `cpuacct` hierarchies,
//! or the unified v2 files), VMs from their QEMU process in `/proc`. CPU is a rate, so the
//! previous sample is kept per instance.

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

/// The counters of process `pid` and all its threads, from `/proc` (under `proc_root`):
/// `utime + stime` of `stat` and `VmRSS` of `status`. For a VM this is its QEMU: what the
/// guest costs the host, emulation included.
pub fn read_process(proc_root: &Path, pid: i32) -> Option<Counters> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let ticks = process_cpu_ticks(&stat)?;
    let memory_bytes = process_rss_bytes(&status)?;
    Some(Counters {
        memory_bytes,
        cpu_nanos: ticks.saturating_mul(1_000_000_000) / clock_ticks_per_second(),
    })
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields count from its last `)`.
fn process_cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// `VmRSS` of a `/proc/<pid>/status`, in bytes.
fn process_rss_bytes(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// The unit of `/proc` CPU times (`USER_HZ`, 100 on every common architecture).
fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// Turns counters into percentages, remembering the last CPU sample per instance.
#[derive(Debug, Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Sampler {
    /// `(cpu %, memory %)` of `counters` against `cpu_millis` and `memory_bytes`; CPU is
    /// `None` on the first sample, and after the CPU counter went backwards (the container
    /// or VM was started again, so the two samples are of different processes).
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
            let restarted = counters.cpu_nanos < nanos;
            (elapsed > 0.0 && granted > 0.0 && !restarted).then(|| {
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
        // A restart: the counter starts again from zero, which is no rate at all.
        let (cpu, memory) = sampler.percentages(
            "i",
            Counters {
                memory_bytes: 25,
                cpu_nanos: 1_000,
            },
            1000,
            100,
        );
        assert_eq!((cpu, memory), (None, Some(25)));
    }

    #[test]
    fn process_counters_come_from_stat_and_status() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (qemu-system (x) 64) S 1 4241 4241 0 -1 4194624 9 0 0 0 \
                    250 50 0 0 20 0 5 0 100 1000 200";
        assert_eq!(process_cpu_ticks(stat), Some(300));
        assert_eq!(process_cpu_ticks("garbage"), None);
        let status = "Name:\tqemu\nVmPeak:\t  999 kB\nVmRSS:\t   2048 kB\nThreads:\t5\n";
        assert_eq!(process_rss_bytes(status), Some(2 << 20));
        assert_eq!(process_rss_bytes("Name:\tkthreadd\n"), None);

        let dir = std::env::temp_dir().join(format!("datum-usage-{}", std::process::id()));
        let proc_dir = dir.join("4242");
        std::fs::create_dir_all(&proc_dir).expect("a fake /proc");
        std::fs::write(proc_dir.join("stat"), stat).expect("stat");
        std::fs::write(proc_dir.join("status"), status).expect("status");
        let counters = read_process(&dir, 4242).expect("counters");
        assert_eq!(counters.memory_bytes, 2 << 20);
        assert_eq!(
            counters.cpu_nanos,
            300 * 1_000_000_000 / clock_ticks_per_second()
        );
        assert_eq!(read_process(&dir, 1), None, "no such process");
        let _ = std::fs::remove_dir_all(&dir);

        // This very process: it has used some CPU and holds some memory.
        let own = read_process(Path::new("/proc"), std::process::id() as i32).expect("own");
        assert!(own.memory_bytes > 0);
    }
}
