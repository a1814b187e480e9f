//! Where no cgroup can be had: a job's processes are found by a marker in their environment,
//! which every process the job starts inherits, whatever it does to its session or process
//! group, and which outlives pipe itself (as Jenkins' process tree killer finds a build's
//! processes). A process that clears its environment and leaves the process group escapes it.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The variable that carries a job's tag.
pub const VAR: &str = "PIPE_JOB_TAG";

/// The processes whose marker says a tag that `which` picks, with the tag.
pub fn processes(which: impl Fn(&str) -> bool) -> Vec<(Pid, String)> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let prefix = format!("{VAR}=");
    procs
        .flatten()
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            if pid == me {
                return None;
            }
            // Another user's processes cannot be read, and are not ours to stop.
            let environ = fs::read(p.path().join("environ")).ok()?;
            let tag = environ
                .split(|&b| b == 0)
                .find_map(|var| var.strip_prefix(prefix.as_bytes()))?;
            let tag = std::str::from_utf8(tag).ok()?;
            which(tag).then(|| (Pid::from_raw(pid as i32), tag.to_string()))
        })
        .collect()
}

/// Sends `signal` to every process marked with `tag`.
pub fn signal(tag: &str, signal: Signal) {
    for (pid, _) in processes(|t| t == tag) {
        let _ = kill(pid, signal);
    }
}

/// Kills the processes that `which` picks until none is found, for at most `limit`: a process
/// may fork while it is being looked for. Returns whether none is left.
pub fn kill_all(which: impl Fn(&str) -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let found = processes(&which);
        if found.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        for (pid, _) in found {
            let _ = kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
