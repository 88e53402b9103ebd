//! The ledger: everything that exists in the simulated cloud, in one JSON file under the
//! state directory.
//!
//! Why a file and not a separate "cloud" process: it survives the provider being SIGKILLed
//! with nothing else to run or supervise, and tests read it directly. Every change takes an
//! exclusive `flock` on `ledger.lock` (so a restarted provider, a test reading the ledger and
//! a dying provider never interleave), writes `ledger.json.tmp`, fsyncs it and renames it
//! over `ledger.json` — a kill at any instant leaves either the old or the new ledger, never
//! a torn one.
//!
//! Each handle keeps the ledger it last read or wrote in memory with the file's identity
//! (inode, size, modification time): while the file is unchanged, reading costs a `stat`
//! instead of parsing the whole ledger, and a change only the serialising and the write. At
//! 10,000 instances re-parsing (and, for reads, rewriting) the file per call made the
//! simulated cloud the slowest part of the scale benchmark.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("ledger-doc-{}", std::process::id()));
//! let ledger = datum_provider_sim::ledger::Ledger::open(&dir).unwrap();
//! ledger.update(|state| state.records.clear()).unwrap();
//! assert!(ledger.read().unwrap().records.is_empty());
//! # std::fs::remove_dir_all(dir).ok();
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state directory could not be created.
    #[error("failed to create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The ledger could not be locked, read or written.
    #[error("failed to {action} the ledger at {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The ledger file is not valid JSON.
    #[error("the ledger at {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The ledger's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The last ID handed out.
    pub last_id: u64,
    /// Everything that exists, in creation order.
    pub records: Vec<Record>,
}

/// One resource in the simulated cloud.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its ID.
    pub id: String,
    /// Its kind: `instance`, `network_context` or `subnet`.
    pub kind: String,
    /// Its name (the SDK's deterministic external name). Names are not unique in this
    /// cloud, so a duplicate create would show up as two records.
    pub name: String,
    /// A fingerprint of the spec it was created or updated with.
    pub spec_hash: String,
}

/// A handle on the ledger in one state directory.
#[derive(Clone, Debug)]
pub struct Ledger {
    dir: PathBuf,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The ledger as this handle last saw it, and which file that was.
#[derive(Debug)]
struct Cached {
    file: Option<FileIdentity>,
    state: State,
}

/// Device, inode, size and modification time (s, ns) of `ledger.json`: every store renames
/// a new file over it, so another writer changes at least the inode.
type FileIdentity = (u64, u64, u64, i64, i64);

impl Ledger {
    /// Opens (creating if needed) the ledger in `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            cache: Arc::default(),
        })
    }

    /// The ledger as it is now.
    pub fn read(&self) -> Result<State, Error> {
        self.view(State::clone)
    }

    /// What `look` finds in the ledger as it is now, without copying or writing it.
    pub fn view<T>(&self, look: impl FnOnce(&State) -> T) -> Result<T, Error> {
        let _lock = self.lock()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        Ok(look(self.current(&mut cache)?))
    }

    /// Changes the ledger atomically; returns what `change` returns.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, Error> {
        let _lock = self.lock()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let state = self.current(&mut cache)?;
        let result = change(state);
        match self.store(state) {
            Ok(file) => {
                if let Some(cached) = cache.as_mut() {
                    cached.file = file;
                }
                Ok(result)
            }
            Err(e) => {
                // The change is not on disk: forget it.
                *cache = None;
                Err(e)
            }
        }
    }

    /// The ledger on disk (the lock held): the cached copy while the file is the one it
    /// came from, else read again.
    fn current<'c>(&self, cache: &'c mut Option<Cached>) -> Result<&'c mut State, Error> {
        let file = self.identity()?;
        if cache.as_ref().is_none_or(|c| c.file != file) {
            *cache = Some(Cached {
                state: self.load()?,
                file,
            });
        }
        Ok(&mut cache
            .get_or_insert_with(|| Cached {
                file: None,
                state: State::default(),
            })
            .state)
    }

    fn identity(&self) -> Result<Option<FileIdentity>, Error> {
        let path = self.path();
        match fs::metadata(&path) {
            Ok(m) => Ok(Some((
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read", path)(e)),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    fn io(&self, action: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// An exclusive lock, released when the file closes (also when the process dies).
    fn lock(&self) -> Result<File, Error> {
        let path = self.dir.join("ledger.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io("open the lock of", path.clone()))?;
        file.lock().map_err(self.io("lock", path))?;
        Ok(file)
    }

    fn load(&self) -> Result<State, Error> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| Error::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(self.io("read", path)(e)),
        }
    }

    /// Writes `state` and returns the identity of the file it is now in.
    fn store(&self, state: &State) -> Result<Option<FileIdentity>, Error> {
        let path = self.path();
        let tmp = self.dir.join("ledger.json.tmp");
        let bytes = serde_json::to_vec(state).map_err(|source| Error::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut file = File::create(&tmp).map_err(self.io("create", tmp.clone()))?;
        file.write_all(&bytes)
            .map_err(self.io("write", tmp.clone()))?;
        file.sync_all().map_err(self.io("sync", tmp.clone()))?;
        fs::rename(&tmp, &path).map_err(self.io("replace", path))?;
        self.identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sim-ledger-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn changes_persist_across_handles() {
        let dir = temp_dir("persist");
        let ledger = Ledger::open(&dir).expect("opens");
        ledger
            .update(|s| {
                s.last_id += 1;
                s.records.push(Record {
                    id: "1".into(),
                    kind: "instance".into(),
                    name: "datum-a".into(),
                    spec_hash: "h".into(),
                });
            })
            .expect("updates");
        let again = Ledger::open(&dir).expect("reopens");
        assert_eq!(again.read().expect("reads").records.len(), 1);
        assert!(
            !dir.join("ledger.json.tmp").exists(),
            "no temporary file left"
        );
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn concurrent_updates_are_never_lost() {
        let dir = temp_dir("concurrent");
        let ledger = Ledger::open(&dir).expect("opens");
        // Two threads share this handle (and its cached copy); two open their own, as
        // another process would: every handle must see the others' writes.
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let ledger = if i % 2 == 0 {
                    ledger.clone()
                } else {
                    Ledger::open(&dir).expect("opens")
                };
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        ledger.update(|s| s.last_id += 1).expect("updates");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("joins");
        }
        assert_eq!(ledger.read().expect("reads").last_id, 100);
        fs::remove_dir_all(dir).ok();
    }
}
