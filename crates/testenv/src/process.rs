//! Child processes that never outlive their parent.
//!
//! Each child is started through `setpriv --pdeathsig KILL`, so the kernel kills it when
//! the thread that spawned it dies. All spawns therefore happen on one supervisor thread
//! that lives as long as the process: a panicking test thread, a SIGKILLed test binary or
//! an interrupted `datum up` all take their control plane with them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::Error;

type SpawnJob = Box<dyn FnOnce() + Send>;

/// The supervisor thread's job queue; the thread is started on first use and never exits.
fn supervisor() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SUPERVISOR: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SUPERVISOR.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("datum-testenv-supervisor".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
                // The sender lives in a static, so the queue never closes: park forever
                // rather than let this thread (the children's parent) exit.
                loop {
                    std::thread::park();
                }
            })
            .expect("the OS refused to start the supervisor thread");
        Mutex::new(tx)
    })
}

/// Spawns `program args` on the supervisor thread, under `setpriv --pdeathsig <signal>`.
fn spawn_supervised(
    signal: &str,
    program: &Path,
    args: &[String],
    output: Stdio,
    errors: Stdio,
) -> std::io::Result<Child> {
    let mut command = Command::new("setpriv");
    command
        .args(["--pdeathsig", signal, "--"])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors);
    let (tx, rx) = mpsc::channel();
    let job: SpawnJob = Box::new(move || {
        let _ = tx.send(command.spawn());
    });
    supervisor()
        .lock()
        .map_err(|_| std::io::Error::other("supervisor lock poisoned"))?
        .send(job)
        .map_err(|_| std::io::Error::other("supervisor thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("supervisor thread dropped the spawn"))?
}

/// One running control-plane process with its log file.
#[derive(Debug)]
pub struct ManagedProcess {
    pub name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    child: Mutex<Child>,
    log: PathBuf,
}

impl ManagedProcess {
    pub fn start(
        name: &'static str,
        program: &Path,
        args: Vec<String>,
        log_dir: &Path,
    ) -> Result<Self, Error> {
        let log = log_dir.join(format!("{name}.log"));
        let child = File::create(&log)
            .and_then(|out| spawn_logging(program, &args, out))
            .map_err(|source| Error::Spawn { name, source })?;
        Ok(Self {
            name,
            program: program.to_owned(),
            args,
            child: Mutex::new(child),
            log,
        })
    }

    /// Stops the process as [`stop`](Self::stop) does, then starts it again with the same
    /// program and arguments, appending to the same log.
    pub fn restart(&self, grace: Duration) -> Result<(), Error> {
        self.stop(grace);
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        *child = File::options()
            .append(true)
            .open(&self.log)
            .and_then(|out| spawn_logging(&self.program, &self.args, out))
            .map_err(|source| Error::Spawn {
                name: self.name,
                source,
            })?;
        Ok(())
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                name: self.name,
                status: status.to_string(),
                log: self.log_tail(),
            }),
            Err(e) => Err(Error::Exited {
                name: self.name,
                status: e.to_string(),
                log: self.log_tail(),
            }),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// The last lines of the process's log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 4096)
    }

    /// Asks the process to stop (SIGTERM), waits up to `grace`, then kills it.
    pub fn stop(&self, grace: Duration) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // No signal API in std: `kill` from procps/coreutils sends SIGTERM.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Spawns `program args` supervised, with stdout and stderr both going to `log`.
fn spawn_logging(program: &Path, args: &[String], log: File) -> std::io::Result<Child> {
    let errors = log.try_clone()?;
    spawn_supervised("KILL", program, args, log.into(), errors.into())
}

fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Removes `dir` when this process dies, however it dies: a supervised shell waits for
/// its parent-death signal, then deletes the directory.
pub fn remove_on_exit(dir: &Path) -> Result<(), Error> {
    let script = r#"trap 'kill $! 2>/dev/null; sleep 1; rm -rf -- "$0"; exit 0' TERM; sleep infinity & wait"#;
    let args = [
        "-c".to_owned(),
        script.to_owned(),
        dir.display().to_string(),
    ];
    spawn_supervised("TERM", Path::new("sh"), &args, Stdio::null(), Stdio::null())
        .map(drop)
        .map_err(|source| Error::Spawn {
            name: "cleanup",
            source,
        })
}
