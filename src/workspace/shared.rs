//! Snapshots shared between runs. A run of the working tree whose files hash as those of an
//! earlier run's snapshot, and a retry, run on that snapshot instead of copying it again: jobs
//! never write to a snapshot (see the module above), so runs can share one. The run whose
//! directory holds the files is the snapshot's origin; a run sharing it names the origin in its
//! own directory, and pruning keeps an origin's files while a kept run names it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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

/// Where `run`'s snapshot is, if it is still there.
pub fn files(project: &Path, run: &RunDir) -> Option<PathBuf> {
    let dir = RunDir::at(project, origin(run)).source();
    dir.is_dir().then_some(dir)
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
        assert_eq!(files(p, &third), Some(RunDir::at(p, 1).source()));
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
        assert_eq!(files(p, &third), None);
        let fourth = RunDir::create(p, 4).unwrap();
        assert!(share(p, &fourth, 3).is_err(), "the snapshot is gone");
    }
}
