//! `concurrency: NAME`: of the jobs of one group in a project, one runs at a time, whichever run,
//! `pipe` process or agent they belong to. A group is a lock file under `.pipe/locks/`, held
//! (`flock`) while its job runs: the kernel lets it go when the job ends or when its process
//! dies, so a run killed with -9 never holds a group up. Locks on two open files of one path
//! exclude each other in one process too, so runs side by side in the agent wait as well.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use crate::backend::Stop;
use crate::workspace::private;

/// How often a waiting job tries its group again: a lock cannot be awaited without a thread
/// blocked on it, which could not be told to stop.
const RETRY: Duration = Duration::from_millis(100);

/// A group held; it is free again once this is dropped (the file closed).
pub struct Held {
    _lock: File,
}

/// Takes `group`'s lock in `dir` for `holder` (written into it, so that a job waiting can say for
/// whom). While another holds it, `waiting` is told once who does, and the lock is tried again
/// until it is free, or `None` once `stop` asks the run to stop.
pub async fn take(
    dir: &Path,
    group: &str,
    holder: &str,
    stop: &mut watch::Receiver<Stop>,
    waiting: impl FnOnce(String),
) -> io::Result<Option<Held>> {
    private::dir(dir)?;
    // The name passed the checker (letters, digits, `.`, `_`, `-`); a link put there is not
    // followed.
    let mut file = private::open(
        &dir.join(format!("{group}.lock")),
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(nix::libc::O_NOFOLLOW),
    )?;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if let Some(tell) = waiting.take() {
            let mut who = String::new();
            file.read_to_string(&mut who)?;
            file.rewind()?;
            tell(who.trim().to_string());
        }
        if *stop.borrow() != Stop::No {
            return Ok(None);
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            changed = stop.changed() => if changed.is_err() {
                return Ok(None);
            },
        }
    }
    file.set_len(0)?;
    file.write_all(holder.as_bytes())?;
    Ok(Some(Held { _lock: file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_is_held_by_one_until_let_go_and_a_stop_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, mut rx) = watch::channel(Stop::No);
        let first = take(dir.path(), "prod", "run 1", &mut rx, |_| panic!("free"))
            .await
            .unwrap()
            .expect("held");
        let (stop_tx, mut stop_rx) = watch::channel(Stop::No);
        let mut told = None;
        let second = take(dir.path(), "prod", "run 2", &mut stop_rx, |who| {
            told = Some(who);
            let _ = stop_tx.send(Stop::Graceful);
        })
        .await
        .unwrap();
        assert!(second.is_none(), "a stop ends the wait");
        assert_eq!(told.as_deref(), Some("run 1"));
        drop(first);
        let again = take(dir.path(), "prod", "run 3", &mut rx, |_| panic!("free"))
            .await
            .unwrap();
        assert!(again.is_some());
    }
}
