//! Running a plan in a run's directory: where jobs run (the backend and its options), what is
//! refused before anything runs, orphans of dead processes, and the scheduler with its
//! recorders and cancellation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Cancel, Context, EngineError, Internal, Pull, Refusal};
use crate::backend::docker::{self, DockerBackend};
use crate::backend::inprocess::InProcess;
use crate::backend::local::LocalBackend;
use crate::backend::route::ScanRouter;
use crate::backend::{Backend, BackendError, Backlog};
use crate::event::{EventKind, RunStatus};
use crate::owner::project_key;
use crate::pipeline::{Job, Pipeline, Pos, Problem};
use crate::plan::Plan;
use crate::report::{self, StoreSink};
use crate::run::{self as scheduler, RunOptions, RunResult};
use crate::secret::{Secrets, Supply};
use crate::store::{self, RunId, Store};
use crate::workspace::{self, private, RunDir};

/// How long a job has to exit after SIGTERM (first cancel, fail-fast) before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// The file in a run's directory that says where its jobs ran.
const BACKEND_FILE: &str = "backend";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Docker,
    Local,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Docker => "docker",
            BackendKind::Local => "local",
        }
    }

    fn parse(name: &str) -> Option<BackendKind> {
        match name.trim() {
            "docker" => Some(BackendKind::Docker),
            "local" => Some(BackendKind::Local),
            _ => None,
        }
    }
}

/// How jobs run: the same for a run, its release and its retry.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Where jobs run; `None`: Docker, or for a release or retry where the run ran.
    pub backend: Option<BackendKind>,
    pub pull: Pull,
    /// At most this many jobs at once; `None`: one per 256 MB of available memory, 4 to 16 ×
    /// CPUs (`default_concurrency`).
    pub concurrency: Option<usize>,
    pub fail_fast: bool,
    /// Let jobs run privileged and mount host paths (including the Docker socket).
    pub allow_privileged: bool,
    /// Docker: lay workspaces as overlay mounts (off: copies, for engines whose overlay mounts
    /// misbehave without failing outright).
    pub overlay: bool,
    /// Local: contain jobs in cgroups where they can be had (off: find their processes by an
    /// environment marker).
    pub cgroups: bool,
    /// Variables passed by the caller (`--env`, `--env-file`), in order: every job gets them
    /// under the pipeline's `env`, which may use them as `${NAME}`.
    pub vars: Vec<(String, String)>,
    /// Where secrets' values may come from besides the pipeline's commands; the caller's
    /// environment in it also gives local jobs the host variables they keep.
    pub supply: Supply,
    /// Where jobs' caches live (the user's cache folder); `None`: `cache:` is not acted on,
    /// unless the runs keep their outputs in an object store, which then keeps caches too.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the caches of all projects may take; past it the least recently used go.
    pub cache_size: u64,
    /// The output lines on their way to the screen that shows the request's events, if it
    /// counts them (`report::show`): the recorder waits while it lags far behind.
    pub screen: Arc<report::ScreenQueue>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            backend: None,
            pull: Pull::Missing,
            concurrency: None,
            fail_fast: false,
            allow_privileged: false,
            overlay: true,
            cgroups: true,
            vars: Vec::new(),
            supply: Supply::default(),
            cache_dir: None,
            cache_size: crate::cache::DEFAULT_LIMIT,
            screen: Arc::default(),
        }
    }
}

impl ExecOptions {
    fn kind(&self) -> BackendKind {
        self.backend.unwrap_or(BackendKind::Docker)
    }

    /// These settings for a later phase of `run` (release, retry): without a backend of their
    /// own, its jobs run where the run's jobs ran.
    pub(super) fn following(&self, run: &RunDir) -> ExecOptions {
        ExecOptions {
            backend: self.backend.or(recorded_backend(run)),
            ..self.clone()
        }
    }

    /// Docker jobs need an answering engine and an image, and may not be privileged or mount
    /// host paths unless allowed: refuse before anything runs or is recorded. Checks the jobs
    /// about to run. Returns what was granted, each as an event already sent, for the audit
    /// trail once the run is known.
    pub(super) async fn check_jobs(
        &self,
        ctx: &Context,
        file: &Path,
        jobs: &[Job],
    ) -> Result<Vec<String>, EngineError> {
        if self.kind() != BackendKind::Docker {
            // A job that must not reach anything would silently reach everything.
            let offline = jobs.iter().find_map(|j| Some((j, j.spans.network?)));
            return match offline {
                Some((job, pos)) => Err(Refusal::NetworkOnHost {
                    file: file.to_path_buf(),
                    line: pos.line,
                    col: pos.col,
                    job: job.name.clone(),
                }
                .into()),
                None => services_on_host(file, jobs),
            };
        }
        let asks = privileges_asked(jobs.iter());
        if let Some((job, pos, what)) = asks.first().filter(|_| !self.allow_privileged) {
            return Err(Refusal::Privileged {
                file: file.to_path_buf(),
                line: pos.line,
                col: pos.col,
                job: job.name.clone(),
                what: what.clone(),
            }
            .into());
        }
        let mut granted = Vec::new();
        for (job, _, what) in &asks {
            ctx.emit(EventKind::PrivilegeGranted {
                job: job.name.clone(),
                what: what.clone(),
            });
            granted.push(format!("job `{}` gets {what}", job.name));
        }
        // No engine: say so before a run is recorded that could never start.
        docker::connect()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let missing: Vec<Problem> = jobs
            .iter()
            .filter(|j| j.image.is_none() && j.scan.is_empty() && j.build.is_none() && j.push.is_none())
            .map(|j| {
                Problem::at(j.pos, j.base.chars().count(), format!("job `{}` has no image", j.name))
                    .hint("set `image:` on the job or at the top of the pipeline, or run with `--backend local`")
            })
            .collect();
        if missing.is_empty() {
            Ok(granted)
        } else {
            Err(EngineError::Plan {
                file: file.to_path_buf(),
                problems: missing,
            })
        }
    }

    /// Expands the passed variables into the `env` of the jobs of `plan` and resolves the
    /// secrets they name (running the pipeline's commands for those the caller did not give),
    /// before anything is recorded: an undefined `${NAME}` or a secret without a value stops
    /// the request here, naming it.
    pub(super) async fn prepare_env(
        &self,
        ctx: &Context,
        file: &Path,
        pipeline: &Pipeline,
        plan: &mut Plan,
    ) -> Result<Secrets, EngineError> {
        let problems = |problems| EngineError::Plan {
            file: file.to_path_buf(),
            problems,
        };
        crate::vars::apply(&mut plan.jobs, &self.vars).map_err(problems)?;
        let secrets =
            crate::secret::resolve(&plan.jobs, &pipeline.secrets, &self.supply, &ctx.project)
                .await
                .map_err(problems)?;
        // From here on nothing pipe says or keeps, nor what its caller says, shows a value.
        ctx.masks.add(secrets.values());
        Ok(secrets)
    }

    /// Before this process takes run `id` over: stops the jobs of the run that pipe processes
    /// which died while working on it left running (a `kill -9` of `pipe release` leaves its
    /// job running), so that at most one release of a run is ever alive. Looks on the local
    /// backend, and on Docker where the run's jobs ran last or are about to run. Refuses when
    /// they cannot be stopped.
    pub(super) async fn stop_orphans(
        &self,
        ctx: &Context,
        store: &mut dyn Store,
        id: RunId,
    ) -> Result<(), EngineError> {
        let key = project_key(&ctx.project);
        let run = id.to_string();
        let cannot = |e: String| Refusal::Orphans { run: id, why: e };
        let mut stopped =
            crate::backend::local::stop_orphans(&key, &run).map_err(|e| cannot(e.to_string()))?;
        let recorded = recorded_backend(&RunDir::at(&ctx.project, id));
        if self.kind() == BackendKind::Docker || recorded == Some(BackendKind::Docker) {
            // No engine answers: no container of the run is running there.
            if let Ok(docker) = docker::connect().await {
                stopped += DockerBackend::new(docker, self.pull, GRACE)
                    .stop_orphans(&key, &run)
                    .await
                    .map_err(|e| cannot(e.to_string()))?;
            }
        }
        if stopped > 0 {
            store.audit(
                id,
                &ctx.actor,
                "stopped leftovers",
                &format!("stopped {stopped} job(s) left running by a pipe process that is gone"),
            )?;
        }
        Ok(())
    }

    /// Runs a plan in a run's directory, recording to the logs and the store and passing every
    /// event on to the request's sink; `cancel` stops it.
    pub(super) async fn execute(
        &self,
        ctx: &Context,
        cancel: &Cancel,
        work: Work<'_>,
    ) -> Result<RunResult, EngineError> {
        let Work {
            plan,
            run,
            phase,
            git,
            source,
            pipeline_file,
            secrets,
            reuse,
            held,
            epoch,
        } = work;
        let project = &ctx.project;
        let kind = self.kind();
        private::write(&run.root.join(BACKEND_FILE), kind.as_str())
            .map_err(Internal::io("record where the jobs run"))?;
        let jobs: Arc<dyn Backend> = match kind {
            BackendKind::Docker => {
                let docker = docker::connect()
                    .await
                    .map_err(|e| EngineError::Unavailable(e.to_string()))?;
                Arc::new(
                    DockerBackend::new(docker, self.pull, GRACE)
                        .with_overlay(self.overlay)
                        .in_project(project_key(project)),
                )
            }
            BackendKind::Local => Arc::new(
                LocalBackend::new(GRACE, project_key(project), self.cgroups)
                    .with_host_env(crate::backend::local::host_env(&self.supply.caller)),
            ),
        };
        // Scan jobs run in-process whatever the backend.
        let backend: Arc<dyn Backend> = Arc::new(ScanRouter::new(Arc::new(InProcess), jobs));
        let id: RunId = run.id;
        let log_files: HashMap<String, PathBuf> = plan
            .jobs
            .iter()
            .zip(&plan.slugs)
            .map(|(j, slug)| (j.name.clone(), run.log(slug)))
            .collect();
        let sink = StoreSink {
            store: super::record::open_store(ctx)?,
            run: id,
            phase,
            jobs: plan
                .jobs
                .iter()
                .zip(&plan.slugs)
                .map(|(j, slug)| {
                    let log = run
                        .log(slug)
                        .strip_prefix(project)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| run.log(slug));
                    (
                        j.name.clone(),
                        (
                            j.stage.clone(),
                            log.display().to_string(),
                            j.artifacts.iter().map(ToString::to_string).collect(),
                        ),
                    )
                })
                .collect(),
            held,
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let masks = ctx.masks.current();
        let backlog = Arc::<Backlog>::default();
        let recorder = report::record(
            log_files,
            sink,
            ctx.events.clone().map(|to| (to, self.screen.clone())),
            events_rx,
            masks.clone(),
            backlog.clone(),
        );
        let (interrupt_tx, interrupt_rx) = mpsc::unbounded_channel();
        let forwarder = tokio::spawn(forward_cancel(cancel.clone(), ctx.clone(), interrupt_tx));
        let opts = RunOptions {
            run: run.clone(),
            concurrency: self.concurrency.unwrap_or_else(default_concurrency),
            fail_fast: self.fail_fast,
            // Passed variables first: pipe's built-ins are not the caller's to change.
            env: self
                .vars
                .iter()
                .cloned()
                .chain(builtin_env(run, git))
                .collect(),
            secrets: secrets.clone(),
            source: source.to_path_buf(),
            changed_files: run.changed_files().is_file().then(|| run.changed_files()),
            pipeline_file: PathBuf::from(pipeline_file),
            masks,
            cache: super::caches(ctx, self.cache_dir.as_ref(), self.cache_size),
            reuse: reuse.map(|files| {
                let reuse = crate::reuse::Reuse::new(project, run.clone(), files);
                Arc::new(reuse.shared(super::publish::shared_outputs(ctx)))
            }),
            backlog,
        };
        let result = scheduler::run(plan, backend, opts, events_tx, interrupt_rx).await;
        forwarder.abort();
        let _ = workspace::remove(&run.root.join("jobs"));
        let unrecorded = recorder.await.unwrap_or_else(|e| Some(e.to_string()));
        let mut result = result.map_err(|e| match e {
            BackendError::Unavailable(m) => EngineError::Unavailable(m),
            BackendError::Job(m) | BackendError::Internal(m) => Internal::Backend(m).into(),
        })?;
        let unpublished = match super::publish::shared_outputs(ctx) {
            Some(to) => (super::publish::publish(&to, plan, run, epoch).await)
                .err()
                .map(|e| format!("cannot publish the run's logs and artifacts: {e}")),
            None => None,
        };
        // A run that could not be recorded whole (a log on a full disk) failed on pipe's side.
        if let (None, Some(why)) = (&result.pipe_failure, unrecorded.or(unpublished)) {
            result.pipe_failure = Some(why);
            if result.status == RunStatus::Passed {
                result.status = RunStatus::Failed;
            }
        }
        Ok(result)
    }
}

/// What a phase runs: a plan, in a run's directory, for the run's commit.
pub(super) struct Work<'a> {
    pub plan: &'a Plan,
    pub run: &'a RunDir,
    pub phase: store::Phase,
    pub git: &'a crate::git::Facts,
    /// The files every job's workspace starts from: the run's snapshot or a kept checkout.
    pub source: &'a Path,
    /// The pipeline file as named when the run started: scan jobs audit it whatever its name.
    pub pipeline_file: &'a str,
    /// The secrets the plan's jobs name, resolved ([`ExecOptions::prepare_env`]).
    pub secrets: &'a Secrets,
    /// The files the jobs see, hashed, for reusing jobs of earlier runs; `None`: every job runs.
    pub reuse: Option<crate::reuse::Manifest>,
    /// Where finished jobs' records go instead of the store (a claimed job's, recorded once its
    /// claim is known to hold); `None`: into the store as they finish.
    pub held: Option<report::HeldRecords>,
    /// The claim of the fleet's queue the plan runs under, which names its outputs in the
    /// object store; [`store::UNCLAIMED`] for a run not given to the fleet.
    pub epoch: i64,
}

/// The environment every job gets before its own. Values from git (a branch named
/// `$(touch x)`, a commit message) are data in the environment, never part of a script.
fn builtin_env(run: &RunDir, git: &crate::git::Facts) -> Vec<(String, String)> {
    let mut env = vec![
        ("CI".to_string(), "true".to_string()),
        ("PIPE_RUN_ID".to_string(), run.id.to_string()),
    ];
    let mut set = |name: &str, value: Option<&String>| {
        env.extend(value.map(|v| (name.to_string(), v.clone())));
    };
    set("PIPE_COMMIT", git.commit.as_ref());
    set("PIPE_SHORT_COMMIT", git.short_commit.as_ref());
    set("PIPE_BRANCH", git.branch.as_ref());
    set("PIPE_TAG", git.tags.first());
    set("PIPE_COMMIT_MESSAGE", git.message.as_ref());
    // The tag itself when the commit has one, else as `git describe --tags` says.
    let version = git.tags.first().or(git.version.as_ref());
    set("PIPE_VERSION", version);
    // The same path on both backends: a Docker job gets the file mounted read-only there.
    if run.changed_files().is_file() {
        let path = run.changed_files().display().to_string();
        set("PIPE_CHANGED_FILES", Some(&path));
    }
    env
}

/// Passes each cancellation request on to the scheduler, which escalates, and tells the sink.
/// Requests made before the run started count: they stop it before any job.
async fn forward_cancel(
    cancel: Cancel,
    ctx: Context,
    tx: mpsc::UnboundedSender<scheduler::Interrupt>,
) {
    let mut asked = cancel.subscribe();
    let mut passed = 0;
    loop {
        let kinds: Vec<_> = asked.borrow_and_update()[passed..].to_vec();
        for kind in kinds {
            if tx.send(kind).is_err() {
                return;
            }
            ctx.emit(EventKind::Stopping {
                kill: passed > 0,
                reason: match kind {
                    scheduler::Interrupt::Interrupt => "interrupt",
                    scheduler::Interrupt::Terminate => "terminate",
                }
                .into(),
            });
            passed += 1;
        }
        if asked.changed().await.is_err() {
            return;
        }
    }
}

/// What jobs ask for that the Docker backend refuses unless allowed, each with where it is
/// written.
/// Services are containers: the local backend refuses a job with some before anything runs.
fn services_on_host(file: &Path, jobs: &[Job]) -> Result<Vec<String>, EngineError> {
    match jobs.iter().find_map(|j| Some((j, j.services.first()?.pos))) {
        Some((job, pos)) => Err(Refusal::ServicesOnHost {
            file: file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            job: job.name.clone(),
        }
        .into()),
        None => Ok(Vec::new()),
    }
}

pub fn privileges_asked<'a>(jobs: impl Iterator<Item = &'a Job>) -> Vec<(&'a Job, Pos, String)> {
    let mut asks = Vec::new();
    for job in jobs {
        if let (true, Some(pos)) = (job.privileged, job.spans.privileged) {
            asks.push((job, pos, "`privileged: true`".to_string()));
        }
        for v in &job.volumes {
            let what = if v.host.ends_with("docker.sock") {
                "the Docker socket"
            } else {
                "the host path"
            };
            asks.push((job, v.pos, format!("{what} `{}` as a volume", v.host)));
        }
    }
    asks
}

/// Whether the later phases of a run (its release) run on Docker, as recorded when it ran.
pub(super) fn runs_on_docker(run: &RunDir) -> bool {
    recorded_backend(run).is_none_or(|kind| kind == BackendKind::Docker)
}

/// Where run `run`'s jobs ran last.
fn recorded_backend(run: &RunDir) -> Option<BackendKind> {
    std::fs::read_to_string(run.root.join(BACKEND_FILE))
        .ok()
        .and_then(|name| BackendKind::parse(&name))
}

/// What a running job is assumed to hold in memory, to size the default concurrency by.
const JOB_MEMORY: u64 = 256 << 20;

/// Jobs that sleep or wait on the network cost no CPU, and CPU-bound jobs share the cores
/// whatever the limit (queueing them only idles a core between two of them), so what limits
/// how many run at once is memory: one `JOB_MEMORY` per job of what is available, never fewer
/// than the 4 per CPU of old nor more than 16 per CPU (4 per CPU queued 4 of 12 sleeping jobs
/// on 2 cores: 1.29x the docker CLI).
fn default_concurrency() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let by_memory = available_memory().map_or(usize::MAX, |bytes| (bytes / JOB_MEMORY) as usize);
    by_memory.clamp(4 * cpus, 16 * cpus)
}

/// The memory the kernel says is available for new work, in bytes (Linux only).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
