//! Kept checkouts: the content of a commit (or of the index) for runs of git content, without
//! writing the whole tree for every run.
//!
//! A project keeps checkouts under `.pipe/checkouts/N/`, each recording the tree it holds. A
//! run takes one that no other run holds — one of the same tree if there is one, else any, which
//! is brought to the run's tree by writing only what differs — and holds it (an exclusive
//! `flock`) until its jobs are done: jobs read it as the bottom layer of their workspaces, so no
//! run may change it meanwhile. When every checkout is held (runs of several commits at once) a
//! new one is made. This keeps each run's files its own without copying: an update in place
//! costs what the commits differ by, where a copy per run would cost the whole tree.
//!
//! Paths come from git, and a tree can be made to hold any name: every entry is written beneath
//! the checkout through directory descriptors opened without following links, and a name that
//! would leave it (`..`, an absolute path) or that git would refuse (`.git`) is an error.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use super::lay::{make_beneath_as, names, open_beneath, remove_at};
use super::{private, state_dir};
use crate::git::{self, Change, ExportError};

/// A checkout held by this process: its files stay the tree it was taken for until dropped.
#[derive(Debug)]
pub struct Checkout {
    files: PathBuf,
    _held: Flock<File>,
}

impl Checkout {
    /// The tree's files.
    pub fn files(&self) -> &Path {
        &self.files
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("cannot write the checkout of tree {tree}: {source}")]
    Export { tree: String, source: ExportError },
    #[error("cannot keep a checkout under {}: {source}", .dir.display())]
    Io { dir: PathBuf, source: io::Error },
}

/// The file in a checkout's folder naming the tree its files hold; absent while they are
/// being changed (a checkout left so by a pipe that was killed is written afresh).
const TREE_FILE: &str = "tree";
const LOCK_FILE: &str = "lock";
const FILES: &str = "files";
/// Folders as git checks them out: a job running as another user in its container can read
/// them (`.pipe` itself stays the user's alone).
const FOLDER_MODE: u32 = 0o755;

/// Takes a checkout of `tree` (of the repository holding `project`) for this process. Blocks.
pub fn take(project: &Path, tree: &str) -> Result<Checkout, CheckoutError> {
    let root = project.join(super::STATE_DIR).join("checkouts");
    let io_err = |source| CheckoutError::Io {
        dir: root.clone(),
        source,
    };
    state_dir(project)
        .and_then(|_| private::dir(&root))
        .map_err(io_err)?;
    let mut slots: Vec<u64> = fs::read_dir(&root)
        .map_err(io_err)?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    slots.sort_unstable();
    // One already holding the tree, else the first free one, else a new one.
    let mut free = None;
    for n in &slots {
        let dir = root.join(n.to_string());
        if let Some(held) = try_hold(&dir).map_err(io_err)? {
            if fs::read_to_string(dir.join(TREE_FILE)).is_ok_and(|t| t == tree) {
                return Ok(Checkout {
                    files: dir.join(FILES),
                    _held: held,
                });
            }
            free.get_or_insert((dir, held));
        }
    }
    let (dir, held) = match free {
        Some(free) => free,
        None => new_slot(&root, slots.last().map_or(0, |n| n + 1)).map_err(io_err)?,
    };
    let files = dir.join(FILES);
    update(project, &dir, &files, tree).map_err(|source| match source {
        ExportError::Write(source) => CheckoutError::Io { dir, source },
        other => CheckoutError::Export {
            tree: tree.to_string(),
            source: other,
        },
    })?;
    Ok(Checkout { files, _held: held })
}

/// Empties the kept checkouts of `project` that no run holds, for `pipe clean`; how many. Each
/// keeps its folder and lock file, unrecorded: a run that takes it meanwhile waits on nothing
/// and writes it afresh, and one listing it at this moment finds its lock where it looks.
pub fn clean(project: &Path) -> io::Result<usize> {
    let root = project.join(super::STATE_DIR).join("checkouts");
    let entries = match fs::read_dir(&root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    let mut emptied = 0;
    for entry in entries.flatten() {
        let slot = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u64>().is_ok());
        if !slot || !entry.file_type()?.is_dir() {
            continue;
        }
        let dir = entry.path();
        let Some(_held) = try_hold(&dir)? else {
            continue;
        };
        match fs::remove_file(dir.join(TREE_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        super::remove(&dir.join(FILES))?;
        emptied += 1;
    }
    Ok(emptied)
}

/// Holds the checkout in `dir` if no one else does.
fn try_hold(dir: &Path) -> io::Result<Option<Flock<File>>> {
    let file = private::open(
        &dir.join(LOCK_FILE),
        fs::OpenOptions::new().write(true).create(true),
    )?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

/// A new, empty checkout numbered `n` or above (another process may make one at once), held.
fn new_slot(root: &Path, mut n: u64) -> io::Result<(PathBuf, Flock<File>)> {
    loop {
        let dir = root.join(n.to_string());
        match private::new_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                n += 1;
                continue;
            }
            Err(e) => return Err(e),
        }
        // Made here, so only a process that lists it just now could hold it: then take the next.
        match try_hold(&dir)? {
            Some(held) => return Ok((dir, held)),
            None => n += 1,
        }
    }
}

/// Brings the files in `files` from the tree recorded in `dir` to `tree`.
fn update(project: &Path, dir: &Path, files: &Path, tree: &str) -> Result<(), ExportError> {
    let recorded = fs::read_to_string(dir.join(TREE_FILE)).ok();
    if recorded.as_deref() == Some(tree) {
        return Ok(());
    }
    // Unrecorded while the files change: a crash half-way leaves a checkout that is rewritten.
    match fs::remove_file(dir.join(TREE_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    if recorded.is_none() {
        super::remove(files)?;
    }
    fs::create_dir_all(files)?;
    git::changes(project, recorded.as_deref(), tree, &mut |change| {
        apply(files, change)
    })?;
    private::write(&dir.join(TREE_FILE), tree)?;
    Ok(())
}

/// Lays one change beneath `root`, never following a link and never leaving `root`.
pub(crate) fn apply(root: &Path, change: Change) -> io::Result<()> {
    let path = match &change {
        Change::Remove(p) | Change::File { path: p, .. } | Change::Link { path: p, .. } => *p,
    };
    let parts = names(path).map_err(|_| refused(path))?;
    let Some((name, parent)) = parts.split_last() else {
        return Err(refused(path));
    };
    if parts.iter().any(|n| n.eq_ignore_ascii_case(".git")) {
        return Err(refused(path));
    }
    let parent: PathBuf = parent.iter().collect();
    match change {
        Change::Remove(_) => {
            if let Some(dir) = open_beneath(root, &parent)? {
                remove_at(&dir, name)?;
            }
            remove_empty_parents(root, &parent);
            Ok(())
        }
        Change::File {
            content,
            executable,
            ..
        } => {
            let dir = make_beneath_as(root, &parent, FOLDER_MODE)?;
            remove_at(&dir, name)?;
            let mode = if executable { 0o755 } else { 0o644 };
            // O_EXCL: a link raced into this place is never opened.
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let mut file = File::from(openat(&dir, *name, flags, Mode::from_bits_truncate(mode))?);
            file.write_all(content)
        }
        Change::Link { target, .. } => {
            let dir = make_beneath_as(root, &parent, FOLDER_MODE)?;
            remove_at(&dir, name)?;
            Ok(symlinkat(OsStr::from_bytes(target), &dir, *name)?)
        }
    }
}

fn refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the tree holds `{}`, which pipe does not write",
            path.display()
        ),
    )
}

/// git has no empty folders: those a removal emptied go too, as a checkout would have them.
fn remove_empty_parents(root: &Path, parent: &Path) {
    let mut dir = parent.to_path_buf();
    while let (Some(name), Some(up)) = (dir.file_name().map(|n| n.to_owned()), dir.parent()) {
        let Ok(Some(fd)) = open_beneath(root, up) else {
            return;
        };
        if unlinkat(&fd, name.as_os_str(), UnlinkatFlags::RemoveDir).is_err() {
            return;
        }
        dir = up.to_path_buf();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Change<'_> {
        Change::File {
            path: Path::new(path),
            content: b"x",
            executable: false,
        }
    }

    #[test]
    fn a_change_never_lands_outside_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("co"), dir.path().join("outside"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "mine").unwrap();
        for bad in [
            "../escape",
            "a/../../escape",
            "/abs",
            ".git/hooks/pre-commit",
            ".GIT/x",
        ] {
            assert!(apply(&root, file(bad)).is_err(), "{bad}");
        }
        assert!(apply(&root, Change::Remove(Path::new("../outside/keep"))).is_err());
        assert!(!dir.path().join("escape").exists());
        assert!(!root.join(".git").exists());

        // A link to outside, then a file through it: the link is replaced by a folder.
        let target = outside.as_os_str().as_encoded_bytes();
        apply(
            &root,
            Change::Link {
                path: Path::new("l"),
                target,
            },
        )
        .unwrap();
        apply(&root, file("l/evil")).unwrap();
        assert!(!outside.join("evil").exists());
        assert!(root.join("l").is_dir() && root.join("l/evil").is_file());
        // Removing through a link removes the link's entry only, never its target's.
        apply(
            &root,
            Change::Link {
                path: Path::new("m"),
                target,
            },
        )
        .unwrap();
        apply(&root, Change::Remove(Path::new("m/keep"))).unwrap();
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "mine");
    }

    /// A tree object written by hand can hold names git itself never makes.
    #[test]
    fn a_crafted_tree_cannot_write_outside_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let repo = git2::Repository::init(&project).unwrap();
        let blob = repo.blob(b"escaped").unwrap();
        for name in ["../../../../escape", "..", ".git"] {
            let mut raw = format!("100644 {name}\0").into_bytes();
            raw.extend_from_slice(blob.as_bytes());
            let tree = repo
                .odb()
                .unwrap()
                .write(git2::ObjectType::Tree, &raw)
                .unwrap();
            // libgit2 reads such a tree and diffs it: pipe's own check refuses the name.
            let err = take(&project, &tree.to_string()).unwrap_err().to_string();
            assert!(err.contains("which pipe does not write"), "{name}: {err}");
        }
        assert!(!dir.path().join("escape").exists());
        assert!(!project.join(".pipe/escape").exists());
        assert!(!project.join(".pipe/checkouts/escape").exists());
    }

    #[test]
    fn a_held_checkout_is_not_taken_by_another_run() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let tree = |text: &[u8]| {
            let blob = repo.blob(text).unwrap();
            let mut builder = repo.treebuilder(None).unwrap();
            builder.insert("f", blob, 0o100644).unwrap();
            builder.write().unwrap().to_string()
        };
        let (a, b) = (tree(b"a"), tree(b"b"));
        let held_a = take(dir.path(), &a).unwrap();
        let held_b = take(dir.path(), &b).unwrap();
        assert_ne!(held_a.files(), held_b.files());
        assert_eq!(fs::read(held_a.files().join("f")).unwrap(), b"a");
        assert_eq!(fs::read(held_b.files().join("f")).unwrap(), b"b");
        // Let go, a checkout is brought to another tree in place.
        let a_files = held_a.files().to_path_buf();
        drop(held_a);
        let again = take(dir.path(), &tree(b"c")).unwrap();
        assert_eq!(again.files(), a_files);
        assert_eq!(fs::read(again.files().join("f")).unwrap(), b"c");
    }
}
