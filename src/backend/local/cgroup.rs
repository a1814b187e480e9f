//! A cgroup v2 per local job, where this process may make one beneath its own cgroup. Every
//! process the job starts stays in it whatever it does to its session or process group
//! (`setsid`, a daemon's double fork), and `cgroup.kill` ends all of them at once.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The start of the name of every job cgroup pipe makes; the rest is the job's tag.
const PREFIX: &str = "pipe-job.";

/// One job's cgroup.
#[derive(Debug, Clone)]
pub struct Cgroup {
    dir: PathBuf,
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// machine that mounts cgroup v1 too), and which of its cgroups the mount shows at its top.
fn mount() -> Option<(PathBuf, PathBuf)> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // Fields before " - " vary in number; the filesystem type comes right after it.
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = before.split_whitespace().skip(3);
        let (root, point) = (fields.next()?, fields.next()?);
        Some((PathBuf::from(point), PathBuf::from(root)))
    })
}

/// This process's own cgroup, from the `0::` line of /proc/self/cgroup.
fn own() -> Option<PathBuf> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    // "/foo (deleted)" or a path outside this namespace ("/../x") cannot be made beneath.
    if path.contains("..") || path.ends_with(" (deleted)") {
        return None;
    }
    let (point, root) = mount()?;
    Some(point.join(Path::new(path).strip_prefix(&root).ok()?))
}

impl Cgroup {
    /// Makes the cgroup named for `tag` beneath this process's own cgroup, or says why it
    /// cannot be had (no cgroup2 mounted, not writable, not delegated to this user).
    pub fn create(tag: &str) -> io::Result<Cgroup> {
        let parent =
            own().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 hierarchy"))?;
        let dir = parent.join(format!("{PREFIX}{tag}"));
        fs::create_dir(&dir)?;
        let cgroup = Cgroup { dir };
        // Moving a process needs write access to the procs file of both cgroups (their common
        // ancestor is ours): find out now rather than when the job starts.
        let probe = OpenOptions::new()
            .write(true)
            .open(parent.join("cgroup.procs"))
            .and_then(|_| cgroup.procs());
        if let Err(e) = probe {
            let _ = fs::remove_dir(&cgroup.dir);
            return Err(e);
        }
        Ok(cgroup)
    }

    /// The cgroup's procs file, open for writing: a process that writes "0" to it moves in.
    pub fn procs(&self) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))
    }

    /// Sends `signal` to every process in the cgroup and in the cgroups beneath it.
    pub fn signal(&self, signal: Signal) {
        for dir in subtree(&self.dir) {
            for pid in pids(&dir) {
                let _ = kill(pid, signal);
            }
        }
    }

    /// Kills every process in the cgroup and waits until none is left, for at most `limit`.
    /// Returns whether there was any.
    pub fn kill(&self, limit: Duration) -> io::Result<bool> {
        if !self.populated()? {
            return Ok(false);
        }
        let deadline = Instant::now() + limit;
        // Kernels before 5.14 have no cgroup.kill: kill each process until none is left.
        let all_at_once = fs::write(self.dir.join("cgroup.kill"), "1").is_ok();
        while self.populated()? {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("processes in {} outlived SIGKILL", self.dir.display()),
                ));
            }
            if !all_at_once {
                self.signal(Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(true)
    }

    /// Whether a process is left in the cgroup or beneath it.
    fn populated(&self) -> io::Result<bool> {
        match fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(events) => Ok(events.lines().any(|l| l == "populated 1")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the (empty) cgroup and any beneath it, deepest first.
    pub fn remove(&self) -> io::Result<()> {
        for dir in subtree(&self.dir).into_iter().rev() {
            match fs::remove_dir(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Every job cgroup in the hierarchy, with its tag: wherever the pipe process that made it ran.
pub fn all() -> Vec<(Cgroup, String)> {
    let Some((root, _)) = mount() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for dir in subtree(&root) {
        let tag = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX))
            .map(str::to_string);
        if let Some(tag) = tag {
            found.push((Cgroup { dir }, tag));
        }
    }
    found
}

/// `dir` and the cgroups beneath it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            let children = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path());
            out.extend(children.collect::<Vec<_>>());
        }
        i += 1;
    }
    out
}

fn pids(dir: &Path) -> Vec<Pid> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok().map(Pid::from_raw))
        .collect()
}
