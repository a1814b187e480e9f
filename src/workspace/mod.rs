//! Where a run's files live under `.pipe/runs/N/`: the source snapshot every job starts from,
//! the artifacts jobs hand on, each job's scratch space and log.
//!
//! The working tree is copied once per run (tracked and untracked-but-not-ignored files), so a
//! run sees the tree as it was when it started; a run of a tree that hashes as an earlier run's
//! snapshot shares that one instead (see `shared`). Jobs never write to a snapshot: the Docker
//! backend stacks it with the needed artifacts under a per-job overlay, and only the local
//! backend copies it again per job.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::owner::Owner;
use crate::pipeline::ArtifactPath;

pub mod checkout;
mod lay;
pub use lay::{lay, walk, Entry};
mod masked_names;
pub use masked_names::mask_names;
pub mod private;
pub mod shared;

/// The directory under the project that holds pipe's own state.
pub const STATE_DIR: &str = ".pipe";

/// Creates the project's `.pipe` (private to the user, see `private`), with a `.gitignore` of its
/// own so that runs, logs and the store never show up in `git status` or get committed, whatever
/// the project's own ignore rules say.
pub fn state_dir(project: &Path) -> io::Result<PathBuf> {
    let dir = project.join(STATE_DIR);
    private::dir(&dir)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        private::write(
            &ignore,
            "# Written by pipe: runs, logs and the run store stay local.\n*\n",
        )?;
    }
    Ok(dir)
}

/// Names the pipe process that owns a run directory (`PID@START`, see `owner`).
const OWNER_FILE: &str = "owner";

/// The folder under `.pipe` of the jobs claimed from a fleet's queue (see [`RunDir::claim`]).
const CLAIMS_DIR: &str = "claims";

/// One run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: i64,
    pub root: PathBuf,
}

impl RunDir {
    /// The directory of run `id` (as numbered by the run store), created empty. One that exists
    /// already is never taken over: it holds another run's logs and artifacts (the store numbers
    /// new runs past [`highest_run`], so this is only an error).
    pub fn create(project: &Path, id: i64) -> io::Result<RunDir> {
        let root = Self::path(project, id);
        state_dir(project)?;
        private::dir(root.parent().expect("runs/N has a parent"))?;
        private::new_dir(&root).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => io::Error::new(
                e.kind(),
                format!(
                    "{} exists already and belongs to another run",
                    root.display()
                ),
            ),
            _ => e,
        })?;
        private::write(&root.join(OWNER_FILE), Owner::me().to_string())?;
        Ok(RunDir { id, root })
    }

    /// The scratch directory of one job of run `id` that this agent claimed from a fleet's
    /// queue at claim `epoch`: `.pipe/claims/RUN-JOB-EPOCH`, laid out as a run's directory (the
    /// job's log, the artifacts of its needs and its own), owned by this process. Its caller
    /// removes it once the job is over; [`clean_dead_runs`] removes those of dead agents.
    pub fn claim(project: &Path, id: i64, slug: &str, epoch: i64) -> io::Result<RunDir> {
        let claims = state_dir(project)?.join(CLAIMS_DIR);
        private::dir(&claims)?;
        let root = claims.join(format!("{id}-{slug}-{epoch}"));
        private::new_dir(&root)?;
        private::write(&root.join(OWNER_FILE), Owner::me().to_string())?;
        Ok(RunDir { id, root })
    }

    /// The directory of an existing run, now owned by this process.
    pub fn open(project: &Path, id: i64) -> io::Result<RunDir> {
        let run = Self::at(project, id);
        private::write(&run.root.join(OWNER_FILE), Owner::me().to_string())?;
        Ok(run)
    }

    /// Where run `id`'s directory is, to look at without taking it over.
    pub fn at(project: &Path, id: i64) -> RunDir {
        RunDir {
            id,
            root: Self::path(project, id),
        }
    }

    fn path(project: &Path, id: i64) -> PathBuf {
        project.join(STATE_DIR).join("runs").join(id.to_string())
    }

    /// The project's folder of `concurrency:` group locks, shared by all its runs.
    pub fn locks(&self) -> PathBuf {
        let state = self.root.parent().and_then(Path::parent);
        state.unwrap_or(&self.root).join("locks")
    }

    /// The copy of the pipeline file the run was started with; release and retry use it.
    pub fn pipeline_file(&self) -> PathBuf {
        self.root.join("pipeline.yml")
    }

    pub fn source(&self) -> PathBuf {
        self.root.join("source")
    }
    /// For a run of a commit or of the index, instead of a snapshot: the id of the tree it
    /// runs, whose kept checkout is the bottom layer of its jobs' workspaces.
    pub fn tree_file(&self) -> PathBuf {
        self.root.join("tree")
    }
    /// The files the run changes, one per line, read-only to its jobs (`PIPE_CHANGED_FILES`).
    pub fn changed_files(&self) -> PathBuf {
        self.root.join("changed-files")
    }
    pub fn artifacts(&self, slug: &str) -> PathBuf {
        self.root.join("artifacts").join(slug)
    }
    pub fn scratch(&self, slug: &str) -> PathBuf {
        self.root.join("jobs").join(slug)
    }
    pub fn log(&self, slug: &str) -> PathBuf {
        self.logs().join(format!("{slug}.log"))
    }
    /// The folder of the jobs' logs.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// A scan job's SARIF report.
    pub fn sarif(&self, slug: &str) -> PathBuf {
        self.root.join("scan").join(format!("{slug}.sarif"))
    }

    /// The logs of the job's services, `NAME.log` each, beside the job's log.
    pub fn service_logs(&self, slug: &str) -> PathBuf {
        self.root.join("logs").join(format!("{slug}.services"))
    }
}

/// The highest run number with a directory under `.pipe/runs`, 0 if none. New runs are numbered
/// past it, so that a store that was lost or emptied never hands out a number whose logs and
/// artifacts are still there.
pub fn highest_run(project: &Path) -> io::Result<i64> {
    let entries = match fs::read_dir(project.join(STATE_DIR).join("runs")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut highest = 0;
    for entry in entries {
        if let Some(n) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            highest = highest.max(n);
        }
    }
    Ok(highest)
}

/// Removes the per-job scratch space of runs whose pipe process is gone (killed before it could
/// clean up), and the folders of claimed jobs whose agent is gone. Snapshots stay: a failed or
/// interrupted run keeps its own for `pipe retry`. Returns how many runs and claims were
/// cleaned.
pub fn clean_dead_runs(project: &Path) -> io::Result<usize> {
    let state = project.join(STATE_DIR);
    let mut cleaned = 0;
    for root in dead_owners(&state.join("runs"))? {
        let scratch = root.join("jobs");
        if scratch.exists() {
            remove(&scratch)?;
            cleaned += 1;
        }
    }
    for root in dead_owners(&state.join(CLAIMS_DIR))? {
        remove(&root)?;
        cleaned += 1;
    }
    Ok(cleaned)
}

/// The folders in `dir` whose owning process is gone (or never said who it was).
fn dead_owners(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut dead = Vec::new();
    for entry in entries {
        let root = entry?.path();
        let owner = fs::read_to_string(root.join(OWNER_FILE))
            .ok()
            .and_then(|o| Owner::parse(&o));
        if !owner.is_some_and(|o| o.is_alive()) {
            dead.push(root);
        }
    }
    Ok(dead)
}

/// A job name as a path component and Docker name: `unit [TARGET=x86]` → `unit-TARGET-x86`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    // No leading dot: `..` or `.` must never become a path component, nor a hidden file.
    let out = out
        .trim_start_matches(['-', '.'])
        .trim_end_matches('-')
        .to_string();
    if out.is_empty() {
        "job".into()
    } else if out.len() > MAX_SLUG {
        // Kept short for file and Docker names; the hash of the whole name keeps it unique.
        use sha2::{Digest, Sha256};
        let hash = format!("{:x}", Sha256::digest(name.as_bytes()));
        format!("{}-{}", &out[..MAX_SLUG - 9], &hash[..8])
    } else {
        out
    }
}

/// The longest slug: a job's log, artifacts and containers are named by it, with room to spare
/// in a file name (255 bytes) and beside the run's other name parts.
const MAX_SLUG: usize = 64;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
}

/// Copies the project's working tree as git would see it — tracked files, and untracked ones that
/// are not ignored — into `dest`. `.git` and pipe's own state are left out. Walks and copies in
/// parallel.
pub fn snapshot(project: &Path, dest: &Path) -> io::Result<CopyStats> {
    fs::create_dir_all(dest)?;
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let first_error: Mutex<Option<io::Error>> = Mutex::new(None);
    tree_walk(project).run(|| {
        Box::new(|entry| {
            let result = entry.map_err(io::Error::other).and_then(|entry| {
                let rel = entry
                    .path()
                    .strip_prefix(project)
                    .map_err(io::Error::other)?;
                if rel.as_os_str().is_empty() {
                    return Ok(());
                }
                let n = copy_entry(entry.path(), &dest.join(rel))?;
                if n.is_some() {
                    files.fetch_add(1, Ordering::Relaxed);
                }
                bytes.fetch_add(n.unwrap_or(0), Ordering::Relaxed);
                Ok(())
            });
            match result {
                Ok(()) => ignore::WalkState::Continue,
                Err(e) => {
                    first_error
                        .lock()
                        .expect("no panics while held")
                        .get_or_insert(e);
                    ignore::WalkState::Quit
                }
            }
        })
    });
    if let Some(e) = first_error.into_inner().expect("no panics while held") {
        return Err(e);
    }
    let mut stats = CopyStats {
        files: files.into_inner(),
        bytes: bytes.into_inner(),
    };
    // Files that git tracks although they match an ignore rule are part of the tree too.
    for rel in crate::git::tracked_files(project) {
        let internal = matches!(
            rel.components().next().and_then(|c| c.as_os_str().to_str()),
            Some(".git" | STATE_DIR)
        );
        let (from, to) = (project.join(&rel), dest.join(&rel));
        if internal || fs::symlink_metadata(&to).is_ok() || fs::symlink_metadata(&from).is_err() {
            continue;
        }
        if let Some(n) = copy_entry(&from, &to)? {
            stats.files += 1;
            stats.bytes += n;
        }
    }
    Ok(stats)
}

/// Walks the working tree as git sees it (tracked files and untracked ones that are not
/// ignored), without `.git` and pipe's own state; add [`crate::git::tracked_files`] for the
/// files git tracks although they match an ignore rule. Snapshots and reuse keys see the same.
pub fn tree_walk(project: &Path) -> ignore::WalkParallel {
    ignore::WalkBuilder::new(project)
        .hidden(false)
        .parents(true)
        .git_ignore(true)
        .git_exclude(true)
        // git's own rules, the user's global excludes included: the same rules by which a run's
        // uncommitted changes are counted (`git::facts`), so nothing is copied uncounted.
        .git_global(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| {
            !(e.depth() == 1 && matches!(e.file_name().to_str(), Some(".git" | STATE_DIR)))
        })
        .build_parallel()
}

/// Copies one file, symlink or directory (not its contents). Returns the bytes of a file copied.
fn copy_entry(src: &Path, dest: &Path) -> io::Result<Option<u64>> {
    let meta = fs::symlink_metadata(src)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    if meta.is_dir() {
        fs::create_dir_all(dest)?;
        fs::set_permissions(dest, meta.permissions())?;
        Ok(None)
    } else if meta.file_type().is_symlink() {
        let _ = fs::remove_file(dest);
        std::os::unix::fs::symlink(fs::read_link(src)?, dest)?;
        Ok(Some(0))
    } else if meta.is_file() {
        let _ = fs::remove_file(dest);
        // fs::copy keeps permissions and uses copy_file_range, which reflinks where it can.
        fs::copy(src, dest).map(Some)
    } else {
        Ok(None) // sockets and fifos do not belong in a workspace
    }
}

/// Makes `dest` afresh from `layers` laid bottom first, as an overlay mount of them would look.
/// Layers hold what jobs made: no link in them is followed.
pub fn lay_layers(layers: &[PathBuf], dest: &Path) -> io::Result<CopyStats> {
    remove(dest)?;
    fs::create_dir_all(dest)?;
    let mut stats = CopyStats::default();
    for layer in layers {
        if let Some(laid) = lay(layer, dest, Path::new(""))? {
            stats.files += laid.files;
            stats.bytes += laid.bytes;
        }
    }
    Ok(stats)
}

/// Copies each declared artifact path of a finished job from its workspace into `dest`, never
/// following a link the job made. Returns the paths that did not exist.
pub fn collect_artifacts(
    workspace: &Path,
    artifacts: &[ArtifactPath],
    dest: &Path,
) -> io::Result<Vec<String>> {
    let mut missing = Vec::new();
    for artifact in artifacts {
        let found = if artifact.is_glob() {
            collect_glob(workspace, artifact, dest)?
        } else {
            lay(workspace, dest, artifact.base())?.is_some()
        };
        if !found {
            missing.push(artifact.to_string());
        }
    }
    Ok(missing)
}

/// Copies what a glob selects under its base directory: a matching directory whole, without
/// looking into it. Whether anything matched.
fn collect_glob(workspace: &Path, artifact: &ArtifactPath, dest: &Path) -> io::Result<bool> {
    let mut found = false;
    let mut stack = vec![artifact.base().to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Some(entries) = lay::list(workspace, &dir)? else {
            continue;
        };
        for (name, is_dir) in entries {
            let rel = dir.join(name);
            if artifact.matches(&rel) {
                found |= lay(workspace, dest, &rel)?.is_some();
            } else if is_dir {
                stack.push(rel);
            }
        }
    }
    Ok(found)
}

/// Removes a directory tree, ignoring that it may already be gone.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe() {
        assert_eq!(
            slug("unit [TARGET=x86_64, OS=linux]"),
            "unit-TARGET-x86_64-OS-linux"
        );
        assert_eq!(slug("///"), "job");
        assert_eq!(slug(".."), "job", "never a path out of the run directory");
        assert_eq!(slug("."), "job");
        assert_eq!(slug(".hidden/x"), "hidden-x");
        assert_eq!(slug("v1.2"), "v1.2");
        let long = slug(&format!("test [VERSION={}]", "9".repeat(300)));
        assert_eq!(long.len(), MAX_SLUG);
        assert!(long.starts_with("test-VERSION-999"), "{long}");
        let other = slug(&format!("test [VERSION={}8]", "9".repeat(299)));
        assert_ne!(
            long, other,
            "names that differ only past the cut stay apart"
        );
    }

    #[test]
    fn snapshot_skips_ignored_files_and_state() {
        let project = tempfile::tempdir().unwrap();
        let p = project.path();
        fs::write(p.join(".gitignore"), "target/\n*.log\n").unwrap();
        fs::create_dir_all(p.join("src")).unwrap();
        fs::create_dir_all(p.join("target")).unwrap();
        fs::create_dir_all(p.join(".pipe/runs")).unwrap();
        fs::write(p.join("src/main.c"), "int main(){}").unwrap();
        fs::write(p.join("target/out"), "x").unwrap();
        fs::write(p.join("debug.log"), "x").unwrap();
        fs::write(p.join(".env.example"), "A=1").unwrap();
        let dest = tempfile::tempdir().unwrap();
        let stats = snapshot(p, dest.path()).unwrap();
        assert!(dest.path().join("src/main.c").is_file());
        assert!(dest.path().join(".env.example").is_file());
        assert!(!dest.path().join("target").exists());
        assert!(!dest.path().join("debug.log").exists());
        assert!(!dest.path().join(".pipe").exists());
        assert_eq!(stats.files, 3); // .gitignore, src/main.c, .env.example
    }

    #[test]
    fn lay_copies_a_single_file_too() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("a")).unwrap();
        fs::write(src.path().join("a/f"), "x").unwrap();
        let dest = tempfile::tempdir().unwrap();
        lay(src.path(), dest.path(), Path::new("a/f")).unwrap();
        assert_eq!(fs::read_to_string(dest.path().join("a/f")).unwrap(), "x");
    }
}
