//! The hashes of a tree's files, kept between runs as git's index keeps them: a file whose
//! size, mtime, ctime and inode are what the index recorded is not read again, so a warm key
//! computation over a large tree costs one `lstat` per file.
//!
//! Racy files: a file changed again within the timestamp granularity after it was hashed keeps
//! its mtime. An entry whose mtime is not clearly older than the index's own writing is never
//! trusted: that file is hashed again on the next run.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::workspace::private;

/// How much older than the index an entry's mtime must be to be trusted (coarse file systems
/// keep whole seconds; two leave room for a clock step).
const RACY_NS: i128 = 2_000_000_000;

pub type Hash = [u8; 32];

/// Every file (and link) of a tree with its content hash, sorted by path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<(String, Hash)>,
}

impl Manifest {
    /// One hash of every path and content hash: two trees with the same digest hold the same
    /// files, links and executable bits.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (path, hash) in &self.files {
            h.update((path.len() as u64).to_le_bytes());
            h.update(path.as_bytes());
            h.update(hash);
        }
        hex(&h.finalize())
    }
}

/// What the index keeps of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
        }
    }
}

struct Index {
    written_ns: i128,
    entries: HashMap<String, (Stat, Hash)>,
}

/// The manifest of `paths` (relative to `root`), using and then updating the index in
/// `index_file`. Returns it and how many files had to be read.
pub fn manifest(
    root: &Path,
    paths: Vec<PathBuf>,
    index_file: &Path,
) -> io::Result<(Manifest, usize)> {
    let old = read_index(index_file);
    let started = now_ns();
    let fresh = Mutex::new(Vec::<(String, Stat, Hash)>::new());
    let hashed = std::sync::atomic::AtomicUsize::new(0);
    let first_error: Mutex<Option<io::Error>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in paths.chunks(chunk) {
            let (old, fresh, hashed, first_error) = (&old, &fresh, &hashed, &first_error);
            scope.spawn(move || {
                let mut mine = Vec::with_capacity(part.len());
                for rel in part {
                    let Some(name) = rel.to_str().map(str::to_string) else {
                        continue; // not UTF-8: no name a glob or a key could carry
                    };
                    match entry(root, rel, &name, old) {
                        Ok(Some((stat, hash, read))) => {
                            if read {
                                hashed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            mine.push((name, stat, hash));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            first_error.lock().expect("no panics").get_or_insert(e);
                            return;
                        }
                    }
                }
                fresh.lock().expect("no panics").extend(mine);
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("no panics") {
        return Err(e);
    }
    let mut fresh = fresh.into_inner().expect("no panics");
    fresh.sort_by(|a, b| a.0.cmp(&b.0));
    fresh.dedup_by(|a, b| a.0 == b.0);
    let read = hashed.into_inner();
    // Nothing read and no file added or gone: the index holds every entry already, and keeping
    // its older writing time keeps them trusted.
    let same = old
        .as_ref()
        .is_some_and(|o| read == 0 && o.entries.len() == fresh.len());
    if !same {
        write_index(index_file, started, &fresh)?;
    }
    let files = fresh
        .into_iter()
        .map(|(name, _, hash)| (name, hash))
        .collect();
    Ok((Manifest { files }, read))
}

/// One file's stat and hash, and whether it had to be read; `None` for what is no file.
fn entry(
    root: &Path,
    rel: &Path,
    name: &str,
    old: &Option<Index>,
) -> io::Result<Option<(Stat, Hash, bool)>> {
    let path = root.join(rel);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        // Gone since the walk: not part of the tree any more.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = Stat::of(&meta);
    if let Some(index) = old {
        if let Some((known, hash)) = index.entries.get(name) {
            if *known == stat && stat.mtime_ns + RACY_NS < index.written_ns {
                return Ok(Some((stat, *hash, false)));
            }
        }
    }
    let hash = if meta.file_type().is_symlink() {
        let target = fs::read_link(&path)?;
        let mut h = Sha256::new();
        h.update(b"link\0");
        h.update(target.as_os_str().as_encoded_bytes());
        h.finalize().into()
    } else if meta.is_file() {
        let mut h = Sha256::new();
        // The executable bit changes what a job can do with the file.
        h.update(if meta.mode() & 0o111 != 0 {
            b"exec\0"
        } else {
            b"file\0"
        });
        let mut file = fs::File::open(&path)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.finalize().into()
    } else {
        return Ok(None);
    };
    Ok(Some((stat, hash, true)))
}

fn now_ns() -> i128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as i128
}

/// The index, or `None` when there is none or it cannot be read (then every file is hashed).
fn read_index(path: &Path) -> Option<Index> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let written_ns = lines.next()?.strip_prefix("pipe-index 1 ")?.parse().ok()?;
    let mut entries = HashMap::new();
    for line in lines {
        let mut parts = line.splitn(6, ' ');
        let mut next = || parts.next();
        let (Some(hash), Some(size), Some(mtime), Some(ctime), Some(ino), Some(name)) =
            (next(), next(), next(), next(), next(), next())
        else {
            return None;
        };
        let stat = Stat {
            size: size.parse().ok()?,
            mtime_ns: mtime.parse().ok()?,
            ctime_ns: ctime.parse().ok()?,
            ino: ino.parse().ok()?,
        };
        entries.insert(name.to_string(), (stat, unhex(hash)?));
    }
    Some(Index {
        written_ns,
        entries,
    })
}

/// Writes the index whole, then renames it over the old one: a reader never sees half of it.
fn write_index(path: &Path, started: i128, entries: &[(String, Stat, Hash)]) -> io::Result<()> {
    use std::fmt::Write;
    let mut text = format!("pipe-index 1 {started}\n");
    for (name, s, hash) in entries.iter().filter(|(name, ..)| !name.contains('\n')) {
        let _ = writeln!(
            text,
            "{} {} {} {} {} {name}",
            hex(hash),
            s.size,
            s.mtime_ns,
            s.ctime_ns,
            s.ino
        );
    }
    if let Some(dir) = path.parent() {
        private::dir(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    private::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &Path) -> Vec<PathBuf> {
        crate::workspace::walk(root)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn a_warm_index_reads_only_what_changed_and_never_a_racy_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("src")).unwrap();
        for i in 0..20 {
            fs::write(root.join("src").join(format!("{i}.rs")), format!("{i}")).unwrap();
        }
        let index = dir.path().join("index");
        let (first, read) = manifest(&root, files(&root), &index).unwrap();
        assert_eq!((first.files.len(), read), (20, 20));
        // Just written: every file is racy, so all are read again, with the same hashes.
        let (again, read) = manifest(&root, files(&root), &index).unwrap();
        assert_eq!((&again, read), (&first, 20));

        // Files older than the index are trusted; a changed one is read again.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for i in 0..20 {
            let f = fs::File::options()
                .write(true)
                .open(root.join("src").join(format!("{i}.rs")))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        manifest(&root, files(&root), &index).unwrap();
        fs::write(root.join("src/3.rs"), "changed").unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("src/3.rs"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let (changed, read) = manifest(&root, files(&root), &index).unwrap();
        // The size changed, and so did the ctime: only that file is read.
        assert_eq!(read, 1);
        assert_ne!(changed, first);
        assert_eq!(changed.files.len(), 20);
    }

    #[test]
    fn a_broken_index_means_hashing_everything_not_failing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("a"), "a").unwrap();
        let index = dir.path().join("index");
        fs::write(&index, "garbage\n").unwrap();
        let (m, read) = manifest(&root, files(&root), &index).unwrap();
        assert_eq!((m.files.len(), read), (1, 1));
    }
}
