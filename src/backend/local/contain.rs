//! What keeps every process of a local job together, so that stopping the job stops all of
//! them, even those that left its process group (`setsid`, daemons): a cgroup of its own where
//! this process may make one, else a marker in the environment. Both are named by a [`Tag`], so
//! that what a pipe process that is gone left running can be found and stopped later.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::cgroup::Cgroup;
use super::marker;
use crate::owner::Owner;

/// How long the processes of a job may take to go after SIGKILL.
const KILL_LIMIT: Duration = Duration::from_secs(10);

/// One attempt of one local job: whose it is, of which project and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub owner: Owner,
    /// `owner::project_key` of the project.
    pub project: String,
    pub run: String,
    /// Tells this process's job attempts apart.
    pub seq: u64,
}

impl Tag {
    /// A tag no other job attempt of this process has.
    pub fn next(project: &str, run: &str) -> Tag {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        Tag {
            owner: Owner::me(),
            project: project.to_string(),
            run: run.to_string(),
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Reads the form written by `Display`.
    pub fn parse(text: &str) -> Option<Tag> {
        let mut parts = text.split('.');
        let tag = Tag {
            owner: Owner::parse(parts.next()?)?,
            project: parts.next()?.to_string(),
            run: parts.next()?.strip_prefix("run")?.to_string(),
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(tag)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Tag {
            owner,
            project,
            run,
            seq,
        } = self;
        write!(f, "{owner}.{project}.run{run}.{seq}")
    }
}

#[derive(Debug, Clone)]
pub enum Containment {
    Cgroup(Cgroup),
    Marker(String),
}

impl Containment {
    /// A cgroup when `cgroups` allows it and one can be made here, else a marker.
    pub fn new(tag: &Tag, cgroups: bool) -> Containment {
        let tag = tag.to_string();
        if cgroups {
            match Cgroup::create(&tag) {
                Ok(cgroup) => return Containment::Cgroup(cgroup),
                Err(e) => tracing::info!("no cgroup for a local job ({e}): marking its processes"),
            }
        }
        Containment::Marker(tag)
    }

    /// Makes the process `cmd` starts (and so all it starts) part of the job from its first
    /// instruction on, before it could start anything that gets away.
    pub fn enclose(&self, cmd: &mut tokio::process::Command) -> io::Result<()> {
        match self {
            Containment::Cgroup(cgroup) => {
                let procs = cgroup.procs()?;
                // SAFETY: runs in the child between fork and exec, where only async-signal-safe
                // calls are allowed: `write` on an open file is one system call, allocating
                // nothing (an error is read from errno).
                unsafe {
                    cmd.pre_exec(move || io::Write::write(&mut &procs, b"0").map(|_| ()));
                }
            }
            Containment::Marker(tag) => {
                cmd.env(marker::VAR, tag);
            }
        }
        Ok(())
    }

    /// Sends `signal` to every process of the job.
    pub fn signal(&self, signal: Signal) {
        match self {
            Containment::Cgroup(cgroup) => cgroup.signal(signal),
            Containment::Marker(tag) => marker::signal(tag, signal),
        }
    }

    /// Kills every process of the job and waits until they are gone; then removes the cgroup.
    /// Blocks.
    pub fn kill(&self) -> io::Result<()> {
        match self {
            Containment::Cgroup(cgroup) => {
                cgroup.kill(KILL_LIMIT)?;
                cgroup.remove()
            }
            Containment::Marker(tag) => {
                if marker::kill_all(|t| t == tag, KILL_LIMIT) {
                    Ok(())
                } else {
                    Err(outlived(tag))
                }
            }
        }
    }
}

fn outlived(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("processes of job {what} outlived SIGKILL"),
    )
}

/// Kills what jobs of pipe processes that are gone left running, if `which` picks their tag:
/// their cgroups (wherever in the hierarchy) and the processes that carry their marker.
/// Returns how many jobs had something left. Blocks.
pub fn stop_leftovers(which: impl Fn(&Tag) -> bool) -> io::Result<usize> {
    let orphan = |tag: &str| Tag::parse(tag).is_some_and(|t| !t.owner.is_alive() && which(&t));
    let mut stopped = 0;
    for (cgroup, tag) in super::cgroup::all() {
        if orphan(&tag) {
            stopped += usize::from(cgroup.kill(KILL_LIMIT)?);
            cgroup.remove()?;
        }
    }
    let mut marked: Vec<String> = marker::processes(orphan)
        .into_iter()
        .map(|(_, tag)| tag)
        .collect();
    marked.sort();
    marked.dedup();
    if !marker::kill_all(orphan, KILL_LIMIT) {
        return Err(outlived(&marked.join(", ")));
    }
    Ok(stopped + marked.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_reads_back_and_nothing_else_reads_as_one() {
        let tag = Tag::next("0123abcd", "12");
        assert_eq!(Tag::parse(&tag.to_string()), Some(tag.clone()));
        assert_ne!(Tag::next("0123abcd", "12").seq, tag.seq);
        for bad in [
            "",
            "1@2.p.run3",
            "1@2.p.3.4",
            "1@2.p.run3.4.5",
            "x.p.run3.4",
        ] {
            assert_eq!(Tag::parse(bad), None, "{bad}");
        }
    }
}
