//! Jobs as host processes, for machines without Docker. Each job gets its own copy of the
//! workspace (source plus the artifacts it needs) and runs `sh -e` in its own process group and
//! its own cgroup (or, where none can be had, with a marker in its environment: see
//! [`contain`]), so that stopping it stops everything it started, daemons included. The image
//! is ignored.
//!
//! The copy lives outside the project, in the temporary directory: inside it, `git` in a job
//! would find the project's `.git` (and `git reset --hard` or `git clean` would act on the
//! developer's tree), and tools would apply the project's ignore files to the workspace.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

use super::{shell_script, Backend, BackendError, JobSpec, LogSink, Outcome, Stop, Teardowns};
use crate::event::Stream;
use crate::owner::Owner;
use crate::workspace;

mod cgroup;
mod contain;
mod marker;

use contain::{Containment, Tag};

/// How long a job's output may go on once all its processes are stopped.
const OUTPUT_LIMIT: Duration = Duration::from_secs(5);

/// Where this user's local job workspaces live.
fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("pipe-{}", nix::unistd::getuid()))
}

/// A job attempt's workspace: named for its owner first (`PID@START.`), then its project, so
/// that `clean` can tell the leftovers of a pipe that was killed, and whose project they are.
fn workspace_dir(project: &str, spec: &JobSpec) -> PathBuf {
    let attempt = spec
        .scratch
        .file_name()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    scratch_root().join(format!(
        "{}.{project}.run{}.{}.{attempt}",
        Owner::me(),
        spec.run_id,
        spec.slug
    ))
}

/// Processes still working in `dir` (their current directory is in it): what a job of a pipe
/// that was killed left running.
fn processes_in(dir: &std::path::Path) -> Vec<Pid> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid: i32 = p.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(p.path().join("cwd")).ok()?;
            cwd.starts_with(dir).then(|| Pid::from_raw(pid))
        })
        .collect()
}

/// Removes the job workspaces of pipe processes that are gone, stopping what still runs in
/// them and whatever else their jobs left running: those of the project `project` (its
/// `owner::project_key`), or of every project when `None`. Returns how many workspaces.
pub fn clean(project: Option<&str>) -> io::Result<usize> {
    contain::stop_leftovers(|tag| project.is_none_or(|p| tag.project == p))?;
    let Ok(entries) = std::fs::read_dir(scratch_root()) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.split('.');
        // Only what pipe named (a job of a local run may well write beside its workspace).
        let Some(owner) = parts.next().and_then(Owner::parse) else {
            continue;
        };
        let theirs = parts.next();
        if project.is_some_and(|p| theirs != Some(p)) || !entry.file_type()?.is_dir() {
            continue;
        }
        if !owner.is_alive() {
            for pid in processes_in(&entry.path()) {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            }
            workspace::remove(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Stops what jobs of run `run` of the project `project` (its `owner::project_key`) still run
/// for pipe processes that are gone, before another takes the run over. Returns how many jobs
/// had something left. Blocks.
pub fn stop_orphans(project: &str, run: &str) -> io::Result<usize> {
    contain::stop_leftovers(|tag| tag.project == project && tag.run == run)
}

pub struct LocalBackend {
    /// How long a job may take to exit after SIGTERM before it gets SIGKILL.
    grace: Duration,
    /// The project's `owner::project_key`, in the tag of each job.
    project: String,
    /// Whether jobs may get a cgroup of their own (else they are found by a marker).
    cgroups: bool,
    /// The host variables jobs keep ([`host_env`]); nothing else of pipe's environment.
    host_env: Vec<(String, String)>,
    teardowns: Teardowns,
}

impl LocalBackend {
    pub fn new(grace: Duration, project: String, cgroups: bool) -> Self {
        LocalBackend {
            grace,
            project,
            cgroups,
            host_env: Vec::new(),
            teardowns: Teardowns::default(),
        }
    }

    /// Jobs start with these host variables under their own environment.
    pub fn with_host_env(self, host_env: Vec<(String, String)>) -> Self {
        LocalBackend { host_env, ..self }
    }
}

/// What a host process needs to work and a Docker job's image would give it: where programs
/// are, who and where the user is, the locale and time zone, the temporary directory.
const HOST_VARS: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// The variables of `caller` (pipe's environment) that local jobs keep: [`HOST_VARS`] and the
/// locale's `LC_*`. Everything else — credentials, git's hook variables, pipe's own settings —
/// stays out, so that a local job sees what a Docker job sees.
pub fn host_env(caller: &[(String, String)]) -> Vec<(String, String)> {
    caller
        .iter()
        .filter(|(k, _)| HOST_VARS.contains(&k.as_str()) || k.starts_with("LC_"))
        .cloned()
        .collect()
}

impl Backend for LocalBackend {
    /// The host has no image id: its system and the shell jobs run with stand in. Tools
    /// installed or upgraded on the host are not seen (docs/reuse.md says so).
    fn identity<'a>(&'a self, _spec: &'a JobSpec) -> BoxFuture<'a, Result<String, BackendError>> {
        async {
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let host = format!(
                "{} {} {}",
                std::env::consts::OS,
                std::env::consts::ARCH,
                kernel.trim()
            );
            let shell = std::fs::metadata("/bin/sh")
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    format!("{} {} {}", m.size(), m.mtime(), m.ino())
                })
                .unwrap_or_default();
            Ok(format!("local {host}; /bin/sh {shell}"))
        }
        .boxed()
    }

    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        stop: watch::Receiver<Stop>,
    ) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        async move {
            if spec.build.is_some() || spec.push.is_some() {
                return Err(BackendError::Job(
                    "`build_image` and `push` jobs need an engine: run them with the Docker backend"
                        .into(),
                ));
            }
            let mut unfinished = Unfinished {
                backend: self,
                spec,
                armed: true,
            };
            let result = self.run_job(spec, log, stop).await;
            unfinished.armed = false;
            let result = super::keep_artifacts(spec, log, result).await;
            self.teardowns
                .spawn(super::remove_dir(spec.scratch.clone()));
            self.teardowns
                .spawn(super::remove_dir(workspace_dir(&self.project, spec)));
            result
        }
        .boxed()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.teardowns.wait().boxed()
    }
}

/// An attempt whose future ends before it finished (a bug in pipe panicked in it): what still
/// works in its workspace is killed, and its workspace and scratch space go with the rest of
/// the run's teardown.
struct Unfinished<'a> {
    backend: &'a LocalBackend,
    spec: &'a JobSpec,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let dir = workspace_dir(&self.backend.project, self.spec);
        let scratch = self.spec.scratch.clone();
        self.backend.teardowns.spawn(async move {
            let workspace = dir.clone();
            // Until none is left (a killed process lingers a moment before it is gone), within
            // a bound: the teardown must end.
            let _ = tokio::task::spawn_blocking(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                loop {
                    let left = processes_in(&workspace);
                    if left.is_empty() || std::time::Instant::now() > deadline {
                        break;
                    }
                    for pid in left {
                        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .await;
            super::remove_dir(dir).await;
            super::remove_dir(scratch).await;
        });
    }
}

impl LocalBackend {
    async fn run_job(
        &self,
        spec: &JobSpec,
        log: &LogSink,
        mut stop: watch::Receiver<Stop>,
    ) -> Result<Outcome, BackendError> {
        let dir = workspace_dir(&self.project, spec);
        let prepare = {
            let (layers, dir) = (spec.layers.clone(), dir.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                // Private to this user: the temporary directory is shared.
                std::os::unix::fs::DirBuilderExt::mode(
                    std::fs::DirBuilder::new().recursive(true),
                    0o700,
                )
                .create(scratch_root())?;
                workspace::lay_layers(&layers, &dir).map(drop)
            })
        };
        prepare
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(|e| {
                BackendError::Internal(format!(
                    "cannot prepare the workspace {}: {e}",
                    dir.display()
                ))
            })?;

        let contain = Containment::new(&Tag::next(&self.project, &spec.run_id), self.cgroups);
        let mut command = Command::new("sh");
        command
            .arg("-ec")
            .arg(shell_script(&spec.script))
            .current_dir(&dir)
            .env_clear()
            .envs(self.host_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PIPE_WORKSPACE", &dir)
            // A process's environment is readable only by its user (and root), as the job's
            // files are: on the host the secrets go where the job's tools look for them.
            .envs(spec.secrets.iter())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let spawned = contain.enclose(&mut command).and_then(|()| command.spawn());
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                // Nothing ran: this only removes the cgroup.
                let _ = stop_all(&contain).await;
                return Err(BackendError::Job(format!("cannot start sh: {e}")));
            }
        };
        let pgid = Pid::from_raw(child.id().expect("a just-spawned child has a pid") as i32);
        let out = pump(
            child.stdout.take().expect("piped"),
            log.clone(),
            Stream::Stdout,
        );
        let err = pump(
            child.stderr.take().expect("piped"),
            log.clone(),
            Stream::Stderr,
        );

        let mut grace_deadline: Option<tokio::time::Instant> = None;
        let status = loop {
            let grace = async {
                match grace_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = child.wait() => break status,
                changed = stop.changed() => {
                    // A dropped sender means the run is over: stop as if killed.
                    let level = if changed.is_err() { Stop::Kill } else { *stop.borrow_and_update() };
                    match level {
                        Stop::No => {}
                        Stop::Graceful if grace_deadline.is_none() => {
                            let _ = killpg(pgid, Signal::SIGTERM);
                            contain.signal(Signal::SIGTERM);
                            grace_deadline = Some(tokio::time::Instant::now() + self.grace);
                        }
                        Stop::Graceful => {}
                        Stop::Kill => {
                            let _ = killpg(pgid, Signal::SIGKILL);
                            contain.signal(Signal::SIGKILL);
                        }
                    }
                }
                _ = grace => {
                    let _ = killpg(pgid, Signal::SIGKILL);
                    contain.signal(Signal::SIGKILL);
                    grace_deadline = None;
                }
            }
        };
        // Processes the script left behind (in the background, or daemons that left its process
        // group) would hold the pipes open and outlive the job: end them all.
        let _ = killpg(pgid, Signal::SIGKILL);
        if let Err(e) = stop_all(&contain).await {
            tracing::warn!("a local job's processes are still running: {e}");
        }
        let status =
            status.map_err(|e| BackendError::Job(format!("waiting for the job failed: {e}")))?;
        // Only a process that escaped the job (possible without a cgroup) can still hold the
        // pipes open: stop reading after a while rather than wait for it.
        let (mut out, mut err) = (out, err);
        let output = async {
            let _ = tokio::join!(&mut out, &mut err);
        };
        if tokio::time::timeout(OUTPUT_LIMIT, output).await.is_err() {
            out.abort();
            err.abort();
        }

        let exit_code = status.code().map(i64::from).unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + i64::from(status.signal().unwrap_or(9))
        });
        let missing_artifacts = if exit_code == 0 {
            let (dir, paths, dest) = (
                dir.clone(),
                spec.artifacts.clone(),
                spec.artifacts_dest.clone(),
            );
            let into = dest.clone();
            tokio::task::spawn_blocking(move || workspace::collect_artifacts(&dir, &paths, &dest))
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?
                .map_err(|e| {
                    BackendError::Internal(format!(
                        "cannot keep the artifacts in {}: {e}",
                        into.display()
                    ))
                })?
        } else {
            Vec::new()
        };
        if let (0, Some(cache)) = (exit_code, spec.cache.clone()) {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                workspace::collect_artifacts(&dir, &cache.paths, &cache.dest)
            })
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(|e| BackendError::Internal(format!("cannot copy the cached paths: {e}")))?;
        }
        Ok(Outcome {
            exit_code,
            missing_artifacts,
            findings: None,
        })
    }
}

/// Kills every process of a job and waits until they are gone, off the async threads.
async fn stop_all(contain: &Containment) -> io::Result<()> {
    let contain = contain.clone();
    tokio::task::spawn_blocking(move || contain.kill())
        .await
        .map_err(io::Error::other)?
}

fn pump(
    mut reader: impl AsyncRead + Unpin + Send + 'static,
    log: LogSink,
    stream: Stream,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut output = log.output(stream);
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            output.push(&buf[..n]);
            log.room().await;
        }
        output.finish();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};

    /// A panic unwinding through an attempt drops its future as this test does.
    #[tokio::test]
    async fn an_attempt_that_never_finishes_is_torn_down_with_the_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        let spec = JobSpec {
            build: None,
            push: None,
            drift: Default::default(),
            run_id: format!("unfinished-{}", std::process::id()),
            job: "long".into(),
            slug: "long".into(),
            image: None,
            // A process the job started in the background, which records its pid.
            script: vec![
                format!(
                    "sh -c 'echo $$ > {0}/tmp; mv {0}/tmp {0}/pid; exec sleep 300' &",
                    dir.path().display()
                ),
                format!(
                    "while [ ! -e {}/pid ]; do sleep 0.05; done",
                    dir.path().display()
                ),
                "sleep 300".into(),
            ],
            env: Vec::new(),
            secrets: Default::default(),
            layers: vec![dir.path().join("source")],
            scratch: dir.path().join("jobs/long/1"),
            artifacts: Vec::new(),
            artifacts_dest: dir.path().join("kept"),
            privileged: false,
            network: true,
            binds: Vec::new(),
            scan: None,
            cache: None,
            services: Default::default(),
        };
        let backend = LocalBackend::new(Duration::ZERO, "0123abcd".into(), false);
        let workspace = workspace_dir(&backend.project, &spec);
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let (_stop, stop) = watch::channel(Stop::No);
        let log = LogSink::new("long".into(), events);
        let mut attempt = backend.run(&spec, &log, stop);
        // Runs the attempt until the job says it sleeps.
        loop {
            tokio::select! {
                _ = &mut attempt => panic!("the job ended"),
                event = received.recv() => match event.map(|e| e.kind) {
                    Some(EventKind::JobOutput { line, .. }) if line == "$ sleep 300" => break,
                    Some(_) => {}
                    None => panic!("no more output"),
                },
            }
        }
        assert!(workspace.is_dir());
        drop(attempt);
        backend.shutdown().await;
        assert!(!workspace.exists(), "the workspace is removed");
        let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
        // Gone, or a zombie: killed, waiting to be reaped.
        let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).map(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'))
        });
        assert!(
            !matches!(state, Ok(Some(false))),
            "the job's background process {pid} is killed"
        );
    }
}
