//! Job caches: what a job's `cache: paths` held when it passed, kept outside the project under
//! its key, and laid into the workspace of a later job with the same key (or a fallback prefix)
//! before its script runs.
//!
//! Layout: `DIR/PROJECT/ID/` per entry (ID: a digest of the key), holding `meta.json` and
//! `data.tar`. An entry is written whole into a temporary folder beside it and renamed into
//! place, so readers see all of it or none; the first of two saves of one key wins, and entries
//! never change after (a restore on the exact key saves nothing). `data.tar`'s modification time
//! is the entry's last use; past the size limit, the least recently used entries (of every
//! project) go first. A fleet keeps its caches in its object store instead ([`shared`]).

mod archive;
pub mod job;
pub mod key;
pub mod shared;

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// 10 GB, as GitHub keeps per repository.
pub const DEFAULT_LIMIT: u64 = 10_000_000_000;
const DATA: &str = "data.tar";
const META: &str = "meta.json";
/// Temporary folders of a pipe that was killed mid-save are removed after this long.
const STALE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The entry holds what no cache may (`..`, an absolute path, a link out): refused whole.
    #[error("cache `{key}` is refused and removed: {why}; nothing of it was restored")]
    Poisoned { key: String, why: String },
    /// The entry's archive in the object store is missing or damaged: forgotten.
    #[error("cache `{key}` is damaged and forgotten: {why}; nothing of it was restored")]
    Damaged { key: String, why: String },
    /// What the job kept cannot be cached as it is (a link out of the workspace).
    #[error("{0}")]
    Unsafe(String),
    #[error(transparent)]
    Objects(crate::objects::ObjectsError),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> CacheError {
    let what = what.into();
    move |source| CacheError::Io { what, source }
}

/// Who made an entry and when: shown by `pipe cache list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub key: String,
    pub created: DateTime<Utc>,
    pub run: i64,
    pub job: String,
}

/// An entry as listed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: Meta,
    pub size: u64,
    pub last_used: SystemTime,
    dir: PathBuf,
}

/// What came of a save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Stored {
        size: u64,
    },
    /// Another job saved this key first; entries never change.
    AlreadyThere,
}

/// Where a run's jobs keep their caches: a folder of this machine, or the object store every
/// agent of a fleet reaches.
#[derive(Clone)]
pub enum Caches {
    Folder(Store),
    Objects(shared::SharedCaches),
}

/// The caches of one project, in a per-user folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    project: String,
    /// Bytes all projects' entries may take together.
    limit: u64,
}

impl Store {
    /// `root`: the user's cache folder; `project`: the project's `owner::project_key`, so that
    /// one project's key never restores another's files.
    pub fn new(root: PathBuf, project: String, limit: u64) -> Store {
        Store {
            root,
            project,
            limit,
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(&self.project)
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        let id: String = Sha256::digest(key.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir().join(id)
    }

    /// This project's entries, newest first.
    pub fn list(&self) -> Result<Vec<Entry>, CacheError> {
        let mut entries = entries_in(&self.dir()).map_err(io_err("read the caches"))?;
        // Saves within one clock tick: the later run's is the newer.
        entries.sort_by_key(|e| std::cmp::Reverse((e.meta.created, e.meta.run)));
        Ok(entries)
    }

    /// The entry to restore: the one with `key`, else the newest whose key starts with the first
    /// of `fallbacks` that any key starts with.
    pub fn find(&self, key: &str, fallbacks: &[String]) -> Result<Option<Entry>, CacheError> {
        if let Some(exact) = read_entry(&self.entry_dir(key)).filter(|e| e.meta.key == key) {
            return Ok(Some(exact));
        }
        if fallbacks.is_empty() {
            return Ok(None);
        }
        let all = self.list()?;
        Ok(fallbacks
            .iter()
            .find_map(|prefix| all.iter().find(|e| e.meta.key.starts_with(prefix.as_str())))
            .cloned())
    }

    /// Unpacks `entry` into `into` (a folder made here) and records the use. A poisoned entry
    /// is removed, and `into` with it. `Ok(false)`: the entry went away meanwhile (evicted).
    pub fn restore(&self, entry: &Entry, into: &Path) -> Result<bool, CacheError> {
        let file = match File::open(entry.dir.join(DATA)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("open the cache")(e)),
        };
        // Last use, for eviction; an open file outlives its eviction, so the restore goes on.
        let _ = file.set_modified(SystemTime::now());
        // Headers are read in 512-byte steps: a large buffer saves a system call per header.
        match archive::unpack(BufReader::with_capacity(256 * 1024, file), into) {
            Ok(()) => Ok(true),
            Err(e) => {
                let _ = crate::workspace::remove(into);
                match e {
                    archive::ArchiveError::Unsafe(why) => {
                        let _ = remove_entry(&entry.dir);
                        Err(CacheError::Poisoned {
                            key: entry.meta.key.clone(),
                            why,
                        })
                    }
                    archive::ArchiveError::Io(e) => Err(io_err("restore the cache")(e)),
                }
            }
        }
    }

    /// Saves what is under `from` as `key`, atomically, then evicts past the limit.
    pub fn save(&self, key: &str, from: &Path, run: i64, job: &str) -> Result<Saved, CacheError> {
        let dest = self.entry_dir(key);
        if dest.exists() {
            return Ok(Saved::AlreadyThere);
        }
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let tmp = dir.join(format!(".tmp-{}", unique()));
        let written = write_entry(&tmp, key, from, run, job);
        let result = written.and_then(|size| match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(Saved::Stored { size }),
            // Another save of this key got there first: its entry is whole, keep it.
            Err(e) if dest.exists() || e.raw_os_error() == Some(nix::libc::ENOTEMPTY) => {
                Ok(Saved::AlreadyThere)
            }
            Err(e) => Err(io_err("save the cache")(e)),
        });
        let _ = crate::workspace::remove(&tmp);
        if result.is_ok() {
            self.evict().map_err(io_err("evict old caches"))?;
        }
        result
    }

    /// Removes the least recently used entries of every project until they fit the limit.
    /// Returns the keys removed.
    pub fn evict(&self) -> io::Result<Vec<String>> {
        let mut all = Vec::new();
        let projects = match fs::read_dir(&self.root) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        for project in projects {
            let project = project?;
            if project.file_type()?.is_dir() {
                all.extend(entries_in(&project.path())?);
            }
        }
        all.sort_by_key(|e| e.last_used);
        let mut total: u64 = all.iter().map(|e| e.size).sum();
        let mut removed = Vec::new();
        for entry in all {
            if total <= self.limit {
                break;
            }
            remove_entry(&entry.dir)?;
            total -= entry.size;
            removed.push(entry.meta.key);
        }
        Ok(removed)
    }

    /// Removes this project's entry `key`, or all of them; returns how many.
    pub fn clear(&self, key: Option<&str>) -> Result<usize, CacheError> {
        let doomed: Vec<Entry> = self
            .list()?
            .into_iter()
            .filter(|e| key.is_none_or(|k| e.meta.key == k))
            .collect();
        for entry in &doomed {
            remove_entry(&entry.dir).map_err(io_err("remove the cache"))?;
        }
        Ok(doomed.len())
    }
}

/// A size for people: `512 B`, `3.1 MB`, `10.0 GB` (powers of 1000, as `du --si`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A size as a user writes it: `500M`, `10G`, `2GB`, `1048576` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(format!("`{text}` is not a size: write e.g. 500M or 10G")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{text}` is not a size: write e.g. 500M or 10G"))
}

/// A name no other save (of this or another pipe) uses.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_entry(tmp: &Path, key: &str, from: &Path, run: i64, job: &str) -> Result<u64, CacheError> {
    fs::create_dir(tmp).map_err(io_err("save the cache"))?;
    let meta = Meta {
        key: key.to_string(),
        created: Utc::now(),
        run,
        job: job.to_string(),
    };
    let json = serde_json::to_vec(&meta).map_err(|e| io_err("save the cache")(e.into()))?;
    fs::write(tmp.join(META), json).map_err(io_err("save the cache"))?;
    let data = File::create(tmp.join(DATA)).map_err(io_err("save the cache"))?;
    let mut out = BufWriter::new(data);
    archive::pack(from, &mut out).map_err(|e| match e {
        archive::ArchiveError::Unsafe(why) => CacheError::Unsafe(why),
        archive::ArchiveError::Io(e) => io_err("save the cache")(e),
    })?;
    let data = out
        .into_inner()
        .map_err(|e| io_err("save the cache")(e.into_error()))?;
    // On disk before the rename makes the entry visible: a crash leaves none, not a torn one.
    data.sync_all().map_err(io_err("save the cache"))?;
    data.metadata()
        .map(|m| m.len())
        .map_err(io_err("save the cache"))
}

/// Takes an entry out of sight at once (a rename), then removes it.
fn remove_entry(dir: &Path) -> io::Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let trash = parent.join(format!(".trash-{}", unique()));
    match fs::rename(dir, &trash) {
        Ok(()) => crate::workspace::remove(&trash),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The whole entries of one project's folder; temporary folders a killed pipe left are removed
/// once stale.
fn entries_in(dir: &Path) -> io::Result<Vec<Entry>> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for item in listing {
        let item = item?;
        let path = item.path();
        if item.file_name().to_string_lossy().starts_with('.') {
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE);
            if old {
                let _ = crate::workspace::remove(&path);
            }
            continue;
        }
        out.extend(read_entry(&path));
    }
    Ok(out)
}

fn read_entry(dir: &Path) -> Option<Entry> {
    let meta: Meta = serde_json::from_slice(&fs::read(dir.join(META)).ok()?).ok()?;
    let data = fs::metadata(dir.join(DATA)).ok()?;
    Some(Entry {
        meta,
        size: data.len(),
        last_used: data.modified().ok()?,
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(dir: &Path, name: &str, content: &str) -> PathBuf {
        let from = dir.join(name);
        fs::create_dir_all(from.join("deps")).unwrap();
        fs::write(from.join("deps/lib"), content).unwrap();
        from
    }

    #[test]
    fn sizes_read_and_shown() {
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("ten").is_err());
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3_100_000), "3.1 MB");
    }

    #[test]
    fn saves_finds_by_key_or_newest_fallback_prefix_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("c"), "p".into(), DEFAULT_LIMIT);
        let from = kept(dir.path(), "a", "one");
        assert!(matches!(
            store.save("deps-1", &from, 1, "build").unwrap(),
            Saved::Stored { .. }
        ));
        assert_eq!(
            store.save("deps-1", &from, 2, "build").unwrap(),
            Saved::AlreadyThere
        );
        store
            .save("deps-2", &kept(dir.path(), "b", "two"), 3, "build")
            .unwrap();
        assert!(store.find("other", &[]).unwrap().is_none());
        let hit = store
            .find("deps-9", &["nope-".into(), "deps-".into()])
            .unwrap()
            .unwrap();
        assert_eq!(hit.meta.key, "deps-2");
        let exact = store.find("deps-1", &["deps-".into()]).unwrap().unwrap();
        assert_eq!((exact.meta.run, exact.meta.job.as_str()), (1, "build"));
        let into = dir.path().join("restored");
        assert!(store.restore(&exact, &into).unwrap());
        assert_eq!(fs::read_to_string(into.join("deps/lib")).unwrap(), "one");
        assert_eq!(store.clear(Some("deps-1")).unwrap(), 1);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn two_saves_of_one_key_at_once_leave_one_whole_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("c"), "p".into(), DEFAULT_LIMIT);
        let big = |c: char| c.to_string().repeat(4 << 20);
        let (a, b) = (
            kept(dir.path(), "a", &big('a')),
            kept(dir.path(), "b", &big('b')),
        );
        for _ in 0..5 {
            store.clear(None).unwrap();
            let barrier = std::sync::Barrier::new(2);
            let saved: Vec<Saved> = std::thread::scope(|s| {
                let one = s.spawn(|| {
                    barrier.wait();
                    store.save("k", &a, 1, "a").unwrap()
                });
                let two = s.spawn(|| {
                    barrier.wait();
                    store.save("k", &b, 1, "b").unwrap()
                });
                vec![one.join().unwrap(), two.join().unwrap()]
            });
            assert_eq!(
                saved.iter().filter(|s| **s == Saved::AlreadyThere).count(),
                1,
                "{saved:?}"
            );
            let entry = store.find("k", &[]).unwrap().unwrap();
            let into = dir.path().join("into");
            let _ = fs::remove_dir_all(&into);
            store.restore(&entry, &into).unwrap();
            let got = fs::read_to_string(into.join("deps/lib")).unwrap();
            let whole = if entry.meta.job == "a" {
                big('a')
            } else {
                big('b')
            };
            assert!(got == whole, "the entry is one save's whole content");
            let left: Vec<_> = fs::read_dir(store.dir()).unwrap().collect();
            assert_eq!(left.len(), 1, "no temporary folder is left");
        }
    }

    #[test]
    fn past_the_limit_the_least_recently_used_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let from = kept(dir.path(), "a", "x");
        let one = Store::new(dir.path().join("c"), "p".into(), DEFAULT_LIMIT);
        let Saved::Stored { size } = one.save("old", &from, 1, "j").unwrap() else {
            panic!("saved")
        };
        // Room for two entries, not three.
        let store = Store::new(dir.path().join("c"), "p".into(), size * 5 / 2);
        store.save("used", &from, 1, "j").unwrap();
        let old = store.find("old", &[]).unwrap().unwrap();
        let used = store.find("used", &[]).unwrap().unwrap();
        File::options()
            .write(true)
            .open(old.dir.join(DATA))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        store.restore(&used, &dir.path().join("r")).unwrap();
        store.save("new", &from, 2, "j").unwrap();
        let keys: Vec<String> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.meta.key)
            .collect();
        assert_eq!(keys, ["new", "used"]);
    }

    #[test]
    fn a_poisoned_entry_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("c"), "p".into(), DEFAULT_LIMIT);
        store
            .save("k", &kept(dir.path(), "a", "x"), 1, "j")
            .unwrap();
        let entry = store.find("k", &[]).unwrap().unwrap();
        let mut b = tar::Builder::new(File::create(entry.dir.join(DATA)).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "escape", "/etc").unwrap();
        b.finish().unwrap();
        drop(b);
        let into = dir.path().join("into");
        let err = store.restore(&entry, &into).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cache `k` is refused and removed: `escape` is a link to `/etc`, outside the workspace; nothing of it was restored"
        );
        assert!(!into.exists());
        assert!(store.find("k", &[]).unwrap().is_none());
    }
}
