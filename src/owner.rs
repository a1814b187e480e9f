//! The pipe process that owns a run, its containers and its scratch space. It is known by its
//! pid and the kernel's start time of that process, so that a pid reused after a crash or a
//! reboot is never taken for the owner (which would keep leftovers, or a run "running", forever).

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat: clock ticks after boot. Empty when it could not be read.
    pub start: String,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_of(pid).unwrap_or_default(),
        }
    }

    /// Reads the `PID@START` form written by `Display`.
    pub fn parse(text: &str) -> Option<Owner> {
        let (pid, start) = text.trim().split_once('@')?;
        Some(Owner {
            pid: pid.parse().ok()?,
            start: start.to_string(),
        })
    }

    /// Whether the process is still the one that took ownership.
    pub fn is_alive(&self) -> bool {
        start_of(self.pid).is_some_and(|start| start == self.start)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pid, self.start)
    }
}

/// A short name for the project at `project`, for what a run leaves outside the project (local
/// jobs' cgroups and markers, Docker labels): run numbers are per project, so "run 3" alone
/// could be another project's.
pub fn project_key(project: &Path) -> String {
    let path = project
        .canonicalize()
        .unwrap_or_else(|_| project.to_path_buf());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The start time of a process, or None if it is gone. A zombie is gone too: killed, with only
/// its exit status left until its parent (or an init that reaps late) collects it.
fn start_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: count fields after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::me();
        assert!(!me.start.is_empty());
        assert!(me.is_alive());
        assert_eq!(Owner::parse(&me.to_string()), Some(me.clone()));
        let reused = Owner {
            start: "1".into(),
            ..me
        };
        assert!(!reused.is_alive(), "same pid, another process");
    }

    #[test]
    fn a_finished_process_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let owner = Owner {
            pid: child.id(),
            start: start_of(child.id()).unwrap_or_default(),
        };
        // Exited, not yet waited for: a zombie.
        while std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            std::thread::yield_now();
        }
        assert!(!owner.is_alive(), "a zombie is not alive");
        child.wait().unwrap();
        assert!(!owner.is_alive());
        assert_eq!(
            Owner::parse("12"),
            None,
            "a bare pid says nothing of the process"
        );
    }
}
