//! The pipe process that owns a run, its containers and its scratch space. It is known by its
//! pid and the kernel's start time of that process, so that a pid reused after a crash or a
//! reboot is never taken for the owner (which would keep leftovers, or a run "running", forever).

use std::fmt;

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

/// The start time of a process, or None if it is gone.
fn start_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: count fields after it.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19).map(str::to_string)
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
        child.wait().unwrap();
        assert!(!owner.is_alive());
        assert_eq!(
            Owner::parse("12"),
            None,
            "a bare pid says nothing of the process"
        );
    }
}
