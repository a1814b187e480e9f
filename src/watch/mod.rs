//! Changes to the files a run sees, in batches: what `pipe run --watch` waits for. The only
//! file that imports `notify`. A batch starts at the first change a run would see (not under
//! `.pipe/` or `.git/`, not git-ignored: see [`ignored`]) and ends when the project has been
//! quiet for [`QUIET`], or [`LONGEST`] after it started, so that a tool that writes all the
//! time still gets its changes run. [`Wakeups`] is the plainer need of a follower (`pipe logs
//! --follow`): to wake when something in a few folders changed.

mod ignored;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use crate::workspace::STATE_DIR;
use ignored::Ignored;

/// How long the project must be quiet for a batch to end: an editor's save (write a temporary
/// file, rename it over, touch the folder) or a `git checkout` lands in one batch, and a person
/// does not notice the wait.
pub const QUIET: Duration = Duration::from_millis(200);

/// The longest a batch gathers changes.
pub const LONGEST: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot read the project folder {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the file watcher stopped")]
    Stopped,
}

/// Watches a project from when it is made; changes that come while nobody asks (during a run)
/// are kept for the next [`Changes::next`].
pub struct Changes {
    root: PathBuf,
    watcher: RecommendedWatcher,
    raw: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    ignored: Ignored,
    /// The project's top folders watched (recursively) so far.
    watched: HashSet<PathBuf>,
}

impl Changes {
    /// Starts watching the project at `root`. Its top folders are watched one by one, so that
    /// `.pipe/` (a snapshot of the whole tree per run), `.git/` and ignored folders such as
    /// `target/` cost no watches.
    pub fn watch(root: &Path) -> Result<Changes, WatchError> {
        let read = |source| WatchError::Read {
            path: root.to_path_buf(),
            source,
        };
        let root = root.canonicalize().map_err(read)?;
        let (tx, raw) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event| {
            // Nobody listens any more once the session ended.
            let _ = tx.send(event);
        })
        .map_err(|source| WatchError::Watch {
            path: root.clone(),
            source,
        })?;
        let mut changes = Changes {
            ignored: Ignored::new(&root),
            root,
            watcher,
            raw,
            watched: HashSet::new(),
        };
        let root = changes.root.clone();
        changes.add(&root, RecursiveMode::NonRecursive)?;
        for entry in std::fs::read_dir(&root).map_err(read)? {
            let path = entry.map_err(read)?.path();
            changes.watch_top_folder(&path)?;
        }
        Ok(changes)
    }

    /// Waits for the next batch of changes a run would see; returns their paths relative to
    /// the project, sorted.
    pub async fn next(&mut self) -> Result<Vec<PathBuf>, WatchError> {
        self.ignored.new_batch();
        let mut batch = BTreeSet::new();
        while batch.is_empty() {
            let event = self.raw.recv().await.ok_or(WatchError::Stopped)?;
            self.take(event, &mut batch)?;
        }
        let last = Instant::now() + LONGEST;
        loop {
            let quiet = (Instant::now() + QUIET).min(last);
            match timeout_at(quiet, self.raw.recv()).await {
                Ok(Some(event)) => self.take(event, &mut batch)?,
                Ok(None) => return Err(WatchError::Stopped),
                Err(_) => return Ok(batch.into_iter().collect()),
            }
        }
    }

    /// Adds what `event` changed to `batch`.
    fn take(
        &mut self,
        event: notify::Result<notify::Event>,
        batch: &mut BTreeSet<PathBuf>,
    ) -> Result<(), WatchError> {
        let event = match event {
            Ok(event) => event,
            // A full event queue: the batch may lack a path, the next change brings it.
            Err(e) => {
                tracing::warn!("file watcher: {e}");
                return Ok(());
            }
        };
        // Reads (a run's own snapshot opens every file) change nothing.
        if matches!(event.kind, EventKind::Access(_)) {
            return Ok(());
        }
        for path in event.paths {
            let Ok(rel) = path.strip_prefix(&self.root).map(Path::to_path_buf) else {
                continue;
            };
            if path.parent() == Some(self.root.as_path()) {
                self.watch_top_folder(&path)?;
            }
            if matches!(
                rel.file_name().and_then(|n| n.to_str()),
                Some(".gitignore" | ".ignore")
            ) {
                self.ignored.reload();
            }
            if !self.ignored.ignored(&rel) {
                batch.insert(rel);
            }
        }
        Ok(())
    }

    /// Watches a top folder of the project that a run sees, once; forgets one that is gone.
    fn watch_top_folder(&mut self, path: &Path) -> Result<(), WatchError> {
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            self.watched.remove(path);
            return Ok(());
        }
        let Ok(rel) = path.strip_prefix(&self.root).map(Path::to_path_buf) else {
            return Ok(());
        };
        if self.watched.contains(path)
            || matches!(rel.to_str(), Some(".git") | Some(STATE_DIR))
            || self.ignored.ignored(&rel)
        {
            return Ok(());
        }
        self.add(path, RecursiveMode::Recursive)?;
        self.watched.insert(path.to_path_buf());
        Ok(())
    }

    fn add(&mut self, path: &Path, mode: RecursiveMode) -> Result<(), WatchError> {
        match self.watcher.watch(path, mode) {
            Ok(()) => Ok(()),
            // Gone between being seen and being watched: its removal is the change.
            Err(notify::Error {
                kind: notify::ErrorKind::PathNotFound,
                ..
            }) => Ok(()),
            Err(source) => Err(WatchError::Watch {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// Wakes a follower when a file in one of some folders (not their subfolders) is made, written
/// or removed: `pipe logs --follow` waits on its run's logs and store this way instead of
/// reading them again and again.
pub struct Wakeups {
    _watcher: RecommendedWatcher,
    woken: std::sync::mpsc::Receiver<()>,
}

impl Wakeups {
    /// Watches `dirs`; one that does not exist is left out.
    pub fn watch(dirs: &[PathBuf]) -> Result<Wakeups, WatchError> {
        let (tx, woken) = std::sync::mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reading a file is an event too: the follower's own reads must not wake it.
                if event.is_ok_and(|e| !matches!(e.kind, EventKind::Access(_))) {
                    let _ = tx.send(());
                }
            })
            .map_err(|source| WatchError::Watch {
                path: dirs.first().cloned().unwrap_or_default(),
                source,
            })?;
        for dir in dirs {
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(())
                | Err(notify::Error {
                    kind: notify::ErrorKind::PathNotFound,
                    ..
                }) => {}
                Err(source) => {
                    return Err(WatchError::Watch {
                        path: dir.clone(),
                        source,
                    })
                }
            }
        }
        Ok(Wakeups {
            _watcher: watcher,
            woken,
        })
    }

    /// Blocks until something changed since the last wait, or for `at_most`.
    pub fn wait(&self, at_most: Duration) {
        let _ = self.woken.recv_timeout(at_most);
        // One wake-up for however many changes came meanwhile.
        while self.woken.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_in_a_watched_folder_wakes_the_follower() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("job.log");
        std::fs::write(&log, "begin\n").unwrap();
        let wakeups =
            Wakeups::watch(&[dir.path().to_path_buf(), dir.path().join("missing")]).unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
            f.write_all(b"end\n").unwrap();
        });
        // Without the watch this would wait the hour out.
        wakeups.wait(Duration::from_secs(3600));
        writer.join().unwrap();
    }

    async fn next(changes: &mut Changes) -> Vec<PathBuf> {
        tokio::time::timeout(Duration::from_secs(30), changes.next())
            .await
            .expect("a batch within 30 s")
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_names_what_changed_and_never_what_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.tmp\ntarget/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("target")).unwrap();
        std::fs::create_dir_all(dir.path().join(".pipe")).unwrap();
        let mut changes = Changes::watch(dir.path()).unwrap();
        // Had any ignored change counted, the batch would name it too.
        std::fs::write(dir.path().join("scratch.tmp"), "x").unwrap();
        std::fs::write(dir.path().join("target/out"), "x").unwrap();
        std::fs::write(dir.path().join(".pipe/state"), "x").unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "x").unwrap();
        assert_eq!(next(&mut changes).await, vec![PathBuf::from("src/lib.rs")]);
    }

    #[tokio::test]
    async fn a_new_top_folder_is_watched() {
        let dir = tempfile::tempdir().unwrap();
        let mut changes = Changes::watch(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("docs")).unwrap();
        assert_eq!(next(&mut changes).await, vec![PathBuf::from("docs")]);
        std::fs::write(dir.path().join("docs/a.md"), "x").unwrap();
        assert_eq!(next(&mut changes).await, vec![PathBuf::from("docs/a.md")]);
    }
}
