//! Snapshots shared between runs. A run of the working tree whose files hash as those of an
//! earlier run's snapshot, and a retry, run on that snapshot instead of copying it again: jobs
//! never write to a snapshot (see the module above), so runs can share one. The run whose
//! directory holds the files is the snapshot's origin; a run sharing it names the origin in its
//! own directory, and pruning keeps an origin's files while a kept run names it. A live run
//! also holds the snapshot it runs on (a shared lock on the origin's `source.lock`) from before
//! it is recorded as running, and a prune removes only a snapshot it can lock alone.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{private, RunDir};

impl RunDir {
    /// For a run on another run's snapshot: that run's id, in place of a `source` of its own.
    fn shared_file(&self) -> PathBuf {
        self.root.join("source-run")
    }

    /// The digest of the files in the run's own snapshot (see [`crate::reuse::Manifest::digest`]),
    /// written only once they were checked to be the tree that was hashed.
    fn digest_file(&self) -> PathBuf {
        self.root.join("source.sha256")
    }

    /// Locked shared by each live run on the run's own snapshot, alone by a prune.
    fn snapshot_lock(&self) -> PathBuf {
        self.root.join("source.lock")
    }
}

/// A live run's hold on the snapshot it runs on: a prune leaves it alone while this lives.
pub struct Held {
    _lock: Flock<File>,
}

/// Holds `run`'s snapshot (its own or the one it shares) and returns where its files are;
/// `None` when they are gone. Waits while a prune is removing it (then it is gone).
pub fn hold(project: &Path, run: &RunDir) -> io::Result<Option<(PathBuf, Held)>> {
    let origin = RunDir::at(project, origin(run));
    let file = match lock_file(&origin) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    let lock = Flock::lock(file, FlockArg::LockShared).map_err(|(_, e)| io::Error::from(e))?;
    // Looked at once held: a prune that got there first has removed all of it.
    let dir = origin.source();
    Ok(dir.is_dir().then_some((dir, Held { _lock: lock })))
}

/// Removes `run`'s own snapshot unless a live run holds it; whether it was removed.
pub fn remove_unheld(run: &RunDir) -> io::Result<bool> {
    if !run.source().is_dir() {
        return Ok(false);
    }
    let held = match Flock::lock(lock_file(run)?, FlockArg::LockExclusiveNonblock) {
        Ok(held) => held,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(false),
        Err((_, e)) => return Err(e.into()),
    };
    super::remove(&run.source())?;
    drop(held);
    Ok(true)
}

fn lock_file(run: &RunDir) -> io::Result<File> {
    private::open(
        &run.snapshot_lock(),
        fs::OpenOptions::new().write(true).create(true),
    )
}

/// Records that the files of `run`'s own snapshot have `digest`, so later runs of the same tree
/// may share it.
pub fn record_digest(run: &RunDir, digest: &str) -> io::Result<()> {
    private::write(&run.digest_file(), digest)
}

/// Makes `run` run on the snapshot of run `of` (or of the run whose snapshot `of` shares), and
/// returns that origin's id; an error when its files are gone.
pub fn share(project: &Path, run: &RunDir, of: i64) -> io::Result<i64> {
    let origin = origin(&RunDir::at(project, of));
    // Named before it is looked at: a prune that reads this run's name from now on keeps the
    // origin's files (see `kept_origins`).
    private::write(&run.shared_file(), origin.to_string())?;
    if !RunDir::at(project, origin).source().is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the snapshot of run {origin} is gone"),
        ));
    }
    Ok(origin)
}

/// The run whose directory holds `run`'s snapshot: the run it names, else itself.
pub fn origin(run: &RunDir) -> i64 {
    fs::read_to_string(run.shared_file())
        .ok()
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or(run.id)
}

/// The first of `runs` whose snapshot (its own or the one it shares) holds files with
/// `digest`: the origin of that snapshot.
pub fn with_digest(
    project: &Path,
    runs: impl IntoIterator<Item = i64>,
    digest: &str,
) -> Option<i64> {
    runs.into_iter().find_map(|id| {
        let origin = RunDir::at(project, origin(&RunDir::at(project, id)));
        let recorded = fs::read_to_string(origin.digest_file()).ok()?;
        (recorded == digest && origin.source().is_dir()).then_some(origin.id)
    })
}

/// The origins of the snapshots that `runs` share, which must stay while these runs are kept.
pub fn kept_origins(project: &Path, runs: impl IntoIterator<Item = i64>) -> Vec<i64> {
    runs.into_iter()
        .map(|id| origin(&RunDir::at(project, id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with_snapshot(project: &Path, id: i64, digest: &str) -> RunDir {
        let run = RunDir::create(project, id).unwrap();
        fs::create_dir_all(run.source()).unwrap();
        fs::write(run.source().join("f"), id.to_string()).unwrap();
        record_digest(&run, digest).unwrap();
        run
    }

    #[test]
    fn a_run_shares_the_origin_of_the_snapshot_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        run_with_snapshot(p, 1, "aaa");
        let second = RunDir::create(p, 2).unwrap();
        assert_eq!(share(p, &second, 1).unwrap(), 1);
        let third = RunDir::create(p, 3).unwrap();
        assert_eq!(share(p, &third, 2).unwrap(), 1, "never a chain of runs");
        let (files, _held) = hold(p, &third).unwrap().unwrap();
        assert_eq!(files, RunDir::at(p, 1).source());
        assert!(!third.source().exists(), "nothing was copied");
        assert_eq!(kept_origins(p, [3, 1]), vec![1, 1]);
    }

    #[test]
    fn only_a_snapshot_with_the_same_digest_that_is_still_there_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        run_with_snapshot(p, 1, "aaa");
        run_with_snapshot(p, 2, "bbb");
        let third = RunDir::create(p, 3).unwrap();
        share(p, &third, 1).unwrap();
        assert_eq!(with_digest(p, [3, 2, 1], "bbb"), Some(2));
        assert_eq!(
            with_digest(p, [3, 2], "aaa"),
            Some(1),
            "through a run sharing it"
        );
        assert_eq!(with_digest(p, [3, 2, 1], "ccc"), None);
        fs::remove_dir_all(RunDir::at(p, 1).source()).unwrap();
        assert_eq!(with_digest(p, [3, 2, 1], "aaa"), None);
        assert!(hold(p, &third).unwrap().is_none());
        let fourth = RunDir::create(p, 4).unwrap();
        assert!(share(p, &fourth, 3).is_err(), "the snapshot is gone");
    }

    #[test]
    fn a_held_snapshot_is_not_removed_and_a_removed_one_cannot_be_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let first = run_with_snapshot(p, 1, "aaa");
        let second = RunDir::create(p, 2).unwrap();
        share(p, &second, 1).unwrap();
        let (files, held) = hold(p, &second).unwrap().unwrap();
        assert_eq!(files, first.source());
        assert!(!remove_unheld(&first).unwrap(), "held by run 2");
        assert!(first.source().is_dir());
        drop(held);
        assert!(remove_unheld(&first).unwrap());
        assert!(hold(p, &second).unwrap().is_none(), "gone");
        assert!(!remove_unheld(&first).unwrap(), "nothing left to remove");
    }
}
