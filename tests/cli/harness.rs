//! A pipeline in a temporary project, the real binary run on it, and what came out.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The image container tests use: FROM scratch with a static busybox, built here because no
/// registry can be reached.
pub const IMAGE: &str = "pipe-test/busybox:1";

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The pipe process's pid: every Docker object it made is labelled with it.
    pub pid: u32,
}

impl Project {
    pub fn new(pipeline: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pipe.yml"), pipeline).expect("write pipeline");
        Project { dir }
    }

    /// A project in a folder of `parent` (a file system the test set up).
    pub fn new_in(parent: &Path, pipeline: &str) -> Project {
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        std::fs::write(dir.path().join("pipe.yml"), pipeline).expect("write pipeline");
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What pipe labels this project's Docker objects and names its local leftovers with:
    /// `pipe clean` in the project touches only those.
    pub fn key(&self) -> String {
        pipe::owner::project_key(self.path())
    }

    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(args)
            .current_dir(self.path())
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs pipe to completion.
    pub fn pipe(&self, args: &[&str]) -> Ran {
        finish(self.command(args))
    }

    /// Runs pipe to completion from folder `rel` of the project (made if missing).
    pub fn pipe_in(&self, rel: &str, args: &[&str]) -> Ran {
        let dir = self.path().join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = self.command(args);
        cmd.current_dir(dir);
        finish(cmd)
    }

    /// `pipe run` on Docker; checks that the run left no container or volume behind.
    pub fn run_docker(&self, extra: &[&str]) -> Ran {
        docker_image();
        let mut args = vec!["run", "--pull", "never"];
        args.extend(extra);
        let ran = self.pipe(&args);
        assert_no_leftovers(ran.pid);
        ran
    }

    pub fn log(&self, run: &str, job: &str) -> String {
        std::fs::read_to_string(self.path().join(format!(".pipe/runs/{run}/logs/{job}.log")))
            .unwrap_or_default()
    }

    pub fn artifact(&self, run: &str, job: &str, rel: &str) -> PathBuf {
        self.path()
            .join(format!(".pipe/runs/{run}/artifacts/{job}/{rel}"))
    }
}

/// Waits for pipe to end and gathers what it said.
pub fn finish(mut cmd: Command) -> Ran {
    let child = cmd.spawn().expect("start pipe");
    let pid = child.id();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait for pipe");
    let ran = Ran {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        pid,
    };
    assert!(
        !ran.stderr.contains("panicked"),
        "pipe panicked:\n{}",
        ran.stderr
    );
    ran
}

impl Ran {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The summary table's row for a job, split into words.
    pub fn row(&self, job: &str) -> String {
        self.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{job} ")))
            .unwrap_or_else(|| panic!("no summary row for {job} in:\n{}", self.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn json_events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI is installed");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the test image once per test process. Fails loudly when no engine answers: container
/// tests are never skipped silently.
pub fn docker_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let info = Command::new("docker").arg("info").output();
        assert!(
            info.map(|o| o.status.success()).unwrap_or(false),
            "container tests need a running Docker engine (.ci/run starts one)"
        );
        if Command::new("docker").args(["image", "inspect", IMAGE]).output().unwrap().status.success() {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("a static busybox (Debian: busybox-static) for the test image");
        let ctx = tempfile::tempdir().unwrap();
        std::fs::copy(busybox, ctx.path().join("busybox")).unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        )
        .unwrap();
        docker(&["build", "-q", "-t", IMAGE, ctx.path().to_str().unwrap()]);
    });
    IMAGE
}

/// No container or volume made by the pipe process `pid` is left.
pub fn assert_no_leftovers(pid: u32) {
    let filter = format!("label=dev.pipe.pid={pid}");
    let containers = docker(&["ps", "-aq", "--filter", &filter]);
    let volumes = docker(&["volume", "ls", "-q", "--filter", &filter]);
    assert!(
        containers.trim().is_empty() && volumes.trim().is_empty(),
        "left behind: containers {containers:?} volumes {volumes:?}"
    );
}

/// Starts pipe and waits until a line containing `marker` appears on its stdout.
pub fn spawn_until(project: &Project, args: &[&str], marker: &str) -> (Child, Vec<String>) {
    spawn_command_until(project.command(args), marker)
}

/// Starts `cmd` (pipe, as `Project::command` sets it up) and waits until a line containing
/// `marker` appears on its stdout.
pub fn spawn_command_until(mut cmd: Command, marker: &str) -> (Child, Vec<String>) {
    let mut child = cmd.spawn().expect("start pipe");
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("pipe ended before printing {marker:?}: {seen:?}");
        }
        let done = line.contains(marker);
        seen.push(line);
        if done {
            break;
        }
    }
    // Keep draining so that pipe never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    (child, seen)
}

/// How pipe holds a local job's processes together: its own cgroup, or (`PIPE_NO_CGROUP=1`, and
/// where no cgroup can be had) a marker in their environment.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Contain {
    Cgroup,
    Marker,
}

impl Project {
    /// `command`, with local jobs held as `contain` says.
    pub fn command_holding(&self, contain: Contain, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        if contain == Contain::Marker {
            cmd.env("PIPE_NO_CGROUP", "1");
        }
        cmd
    }
}

/// Whether process `pid` is gone: no such process, or a zombie (killed; only its exit status
/// is left for a parent that may reap it late).
pub fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Kills process `pid` when dropped, so that a failing test leaves nothing running.
pub struct KillOnDrop(pub i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !gone(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `git` in `dir`, with no user or system configuration to depend on; its stdout, trimmed at
/// the end.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}
