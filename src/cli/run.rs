//! `pipe run`: load, plan, record the run, snapshot the tree, run the jobs before the release
//! gate and report. The execution part is shared with `pipe release` and `pipe retry`.

use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::pull::PullArg;
use super::{color_on, exit, gate, list, load_plan, print, CliError, Internal, Output};
use crate::backend::docker::{self, DockerBackend};
use crate::backend::inprocess::InProcess;
use crate::backend::local::LocalBackend;
use crate::backend::route::ScanRouter;
use crate::backend::{Backend, BackendError};
use crate::event::RunStatus;
use crate::owner::project_key;
use crate::pipeline::{Job, Pos, Problem};
use crate::plan::{Phase, Plan, Selection};
use crate::report::{self, Mode, StoreSink};
use crate::run::{self as scheduler, Interrupt, RunOptions, RunResult};
use crate::store::{self, NewRun, RunId, RunState, SqliteStore, Store};
use crate::workspace::{self, private, RunDir};

/// How long a job has to exit after SIGTERM (first Ctrl-C, `--fail-fast`) before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// Run only this job and what it needs (repeatable; a matrix job's name runs all its variants)
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    #[command(flatten)]
    exec: ExecArgs,
    /// Show the jobs that would run, and run nothing
    #[arg(long)]
    dry_run: bool,
    /// Go through the release gate in this invocation when it asks for no approval and every
    /// other condition holds
    #[arg(long)]
    release: bool,
}

/// How jobs are run: shared by `run`, `release` and `retry`.
#[derive(clap::Args, Clone)]
pub struct ExecArgs {
    /// At most N jobs at once [default: 4 × CPUs]
    #[arg(long = "jobs", short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Where jobs run [default: docker; for release and retry, where the run ran]
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// When to pull images
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullArg,
    /// At the first failure, cancel running jobs and skip the rest
    #[arg(long)]
    fail_fast: bool,
    /// Stream every line of every job's output
    #[arg(short, long)]
    verbose: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,
    /// Let jobs run privileged and mount host paths (including the Docker socket)
    #[arg(long)]
    allow_privileged: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Docker,
    Local,
}

/// The file in a run's directory that says where its jobs ran.
const BACKEND_FILE: &str = "backend";

pub fn run(args: Args) -> Result<u8, CliError> {
    let (file, pipeline, plan) = load_plan(
        args.file.as_deref(),
        Selection {
            phase: Phase::Main,
            only: &args.jobs,
            done: &[],
        },
    )?;
    if args.dry_run {
        print(&list::render(&plan, args.exec.output))?;
        return Ok(exit::OK);
    }
    args.exec.check_jobs(&file, &plan.jobs)?;
    let project = project_dir()?;
    let git = crate::git::facts(&project);
    let mut store = open_store(&project)?;
    // The gated jobs are recorded too, as pending, unless the run was narrowed to some jobs.
    let gated: Vec<&crate::pipeline::Job> = if args.jobs.is_empty() {
        pipeline.jobs.iter().filter(|j| j.gated).collect()
    } else {
        Vec::new()
    };
    let jobs = recorded_jobs(plan.jobs.iter().chain(gated.iter().copied()));
    let text = std::fs::read(&file).map_err(Internal::io(format!("read {}", file.display())))?;
    let new = NewRun {
        pipeline_name: pipeline.name.clone(),
        pipeline_file: file.display().to_string(),
        pipeline_sha256: format!("{:x}", Sha256::digest(&text)),
        commit: git.commit.clone(),
        branch: git.branch.clone(),
        tags: git.tags.clone(),
        changed_paths: git.changed_paths,
        trigger: "run".into(),
        actor: actor(),
    };
    let id = store.create_run(&new, &jobs).map_err(store_error)?;
    let run = new_run_dir(&project, id, &text, |run| snapshot(&project, run))
        .map_err(|e| fail_run(&mut store, id, e))?;

    let env = builtin_env(&run, &git);
    let result = runtime()
        .and_then(|rt| {
            rt.block_on(args.exec.execute(
                &project,
                &plan,
                &run,
                store::Phase::Main,
                env.clone(),
                &new.pipeline_file,
            ))
        })
        .map_err(|e| fail_run(&mut store, id, e))?;
    let state = finish_main(&mut store, id, &result, !gated.is_empty())?;
    prune_snapshots(&project, &mut store)?;
    pipe_failed(id, &result)?;
    if state == RunState::AwaitingRelease && args.release {
        return gate::release_now(&project, &mut store, id, &args.exec, false, true);
    }
    announce(&mut store, id, state, args.exec.output)?;
    Ok(exit_code(&result))
}

impl ExecArgs {
    fn backend(&self) -> BackendKind {
        self.backend.unwrap_or(BackendKind::Docker)
    }

    /// These settings for a later phase of `run` (release, retry): without `--backend`, its jobs
    /// run where the run's jobs ran, so a run made with `--backend local` releases locally too.
    pub fn following(&self, run: &RunDir) -> ExecArgs {
        ExecArgs {
            backend: self.backend.or(recorded_backend(run)),
            ..self.clone()
        }
    }

    /// Before this process takes run `id` over: stops the jobs of the run that pipe processes
    /// which died while working on it left running (a `kill -9` of `pipe release` leaves its
    /// job running), so that at most one release of a run is ever alive. Looks on the local
    /// backend, and on Docker where the run's jobs ran last or are about to run. Refuses when
    /// they cannot be stopped.
    pub fn stop_orphans(
        &self,
        project: &Path,
        store: &mut dyn Store,
        id: RunId,
    ) -> Result<(), CliError> {
        let key = project_key(project);
        let run = id.to_string();
        let cannot = |e: String| {
            CliError::Refused(format!("run {id} still has jobs left running by a pipe process that is gone, and they cannot be stopped: {e}"))
        };
        let mut stopped =
            crate::backend::local::stop_orphans(&key, &run).map_err(|e| cannot(e.to_string()))?;
        let recorded = recorded_backend(&RunDir::at(project, id));
        if self.backend() == BackendKind::Docker || recorded == Some(BackendKind::Docker) {
            stopped += runtime()?.block_on(async {
                match docker::connect().await {
                    Ok(docker) => {
                        let backend = DockerBackend::new(docker, self.pull.into(), GRACE);
                        backend
                            .stop_orphans(&key, &run)
                            .await
                            .map_err(|e| cannot(e.to_string()))
                    }
                    // No engine answers: no container of the run is running there.
                    Err(_) => Ok(0),
                }
            })?;
        }
        if stopped > 0 {
            store
                .audit(
                    id,
                    &actor(),
                    "stopped leftovers",
                    &format!(
                        "stopped {stopped} job(s) left running by a pipe process that is gone"
                    ),
                )
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// Docker jobs need an answering engine and an image, and may not be privileged or mount
    /// host paths unless the user allows it: refuse before anything runs or is recorded.
    /// Checks the jobs about to run (not the whole pipeline: a job left out by `--job`, or a
    /// release job while the run stops at the gate, is checked when it runs).
    pub fn check_jobs(&self, file: &Path, jobs: &[Job]) -> Result<(), CliError> {
        if self.backend() != BackendKind::Docker {
            return Ok(());
        }
        self.check_privileges(file, jobs)?;
        // No engine: say so before a run is recorded that could never start.
        runtime()?
            .block_on(docker::connect())
            .map_err(|e| CliError::Unavailable(e.to_string()))?;
        let missing: Vec<Problem> = jobs
            .iter()
            .filter(|j| j.image.is_none() && j.scan.is_empty())
            .map(|j| {
                Problem::at(j.pos, j.base.chars().count(), format!("job `{}` has no image", j.name))
                    .hint("set `image:` on the job or at the top of the pipeline, or run with `--backend local`")
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CliError::Plan {
                file: file.to_path_buf(),
                problems: missing,
            })
        }
    }

    fn check_privileges(&self, file: &Path, jobs: &[Job]) -> Result<(), CliError> {
        let asks = privileges_asked(jobs.iter());
        if let Some((job, pos, what)) = asks.first().filter(|_| !self.allow_privileged) {
            return Err(CliError::Refused(format!(
                "{}:{}:{}: job `{}` asks for {what}, which pipe refuses unless you pass --allow-privileged",
                file.display(),
                pos.line,
                pos.col,
                job.name
            )));
        }
        for (job, _, what) in &asks {
            eprintln!("pipe: --allow-privileged: job `{}` gets {what}", job.name);
        }
        Ok(())
    }

    /// Runs a plan in a run's directory, reporting to the terminal, the logs and the store.
    pub async fn execute(
        &self,
        project: &Path,
        plan: &Plan,
        run: &RunDir,
        phase: store::Phase,
        env: Vec<(String, String)>,
        pipeline_file: &str,
    ) -> Result<RunResult, CliError> {
        let kind = self.backend();
        if let Some(name) = kind.to_possible_value() {
            private::write(&run.root.join(BACKEND_FILE), name.get_name())
                .map_err(Internal::io("record where the jobs run"))?;
        }
        let jobs: Arc<dyn Backend> = match kind {
            BackendKind::Docker => {
                let docker = docker::connect()
                    .await
                    .map_err(|e| CliError::Unavailable(e.to_string()))?;
                Arc::new(
                    DockerBackend::new(docker, self.pull.into(), GRACE)
                        .in_project(project_key(project)),
                )
            }
            // PIPE_NO_CGROUP=1 finds local jobs' processes by their environment marker, as
            // where no cgroup can be had.
            BackendKind::Local => Arc::new(LocalBackend::new(
                GRACE,
                project_key(project),
                std::env::var_os("PIPE_NO_CGROUP").is_none_or(|v| v.is_empty() || v == "0"),
            )),
        };
        let backend: Arc<dyn Backend> = Arc::new(ScanRouter::new(Arc::new(InProcess), jobs));
        let id: RunId = run.id.parse().expect("run ids are numbers");
        let log_files: HashMap<String, PathBuf> = plan
            .jobs
            .iter()
            .zip(&plan.slugs)
            .map(|(j, slug)| (j.name.clone(), run.log(slug)))
            .collect();
        let sink = StoreSink {
            store: Box::new(open_store(project)?),
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
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mode = Mode::choose(
            self.output == Output::Json,
            io::stdout().is_terminal(),
            // `CI=false` or an empty CI is a developer saying "not CI".
            std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "False")),
        );
        let reporter = report::spawn(
            report::Options {
                mode,
                verbose: self.verbose,
                color: color_on(&io::stdout()),
                log_files,
                store: Some(sink),
            },
            events_rx,
        );
        let (interrupt_tx, interrupt_rx) = mpsc::unbounded_channel();
        let signals = tokio::spawn(forward_signals(interrupt_tx));
        let concurrency = self
            .concurrency
            .map(|n| n as usize)
            .unwrap_or_else(default_concurrency);
        let opts = RunOptions {
            run: run.clone(),
            concurrency,
            fail_fast: self.fail_fast,
            env,
            pipeline_file: PathBuf::from(pipeline_file),
        };
        let result = scheduler::run(plan, backend, opts, events_tx, interrupt_rx).await;
        signals.abort();
        let _ = workspace::remove(&run.root.join("jobs"));
        let unrecorded = reporter.await.unwrap_or_else(|e| Some(e.to_string()));
        let mut result = result.map_err(|e| match e {
            BackendError::Unavailable(m) => CliError::Unavailable(m),
            BackendError::Job(m) | BackendError::Internal(m) => Internal::Backend(m).into(),
        })?;
        // A run that could not be recorded whole (a log on a full disk) failed on pipe's side.
        if let (None, Some(why)) = (&result.pipe_failure, unrecorded) {
            result.pipe_failure = Some(why);
            if result.status == RunStatus::Passed {
                result.status = RunStatus::Failed;
            }
        }
        Ok(result)
    }
}

/// What jobs ask for that the Docker backend refuses without `--allow-privileged`, each with
/// where it is written.
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
pub fn runs_on_docker(run: &RunDir) -> bool {
    recorded_backend(run).is_none_or(|kind| kind == BackendKind::Docker)
}

/// Where run `run`'s jobs ran last.
fn recorded_backend(run: &RunDir) -> Option<BackendKind> {
    std::fs::read_to_string(run.root.join(BACKEND_FILE))
        .ok()
        .and_then(|name| BackendKind::from_str(name.trim(), true).ok())
}

/// Records how the jobs before the gate went; returns the run's new state.
pub fn finish_main(
    store: &mut dyn Store,
    id: RunId,
    result: &RunResult,
    gated: bool,
) -> Result<RunState, CliError> {
    let state = match result.status {
        _ if result.pipe_failure.is_some() => RunState::Failed,
        _ if result.backend_lost.is_some() => RunState::Interrupted,
        RunStatus::Passed if gated => RunState::AwaitingRelease,
        RunStatus::Passed => RunState::Passed,
        RunStatus::Failed => RunState::Failed,
        RunStatus::Interrupted => RunState::Interrupted,
    };
    store
        .set_state(id, state, state != RunState::AwaitingRelease)
        .map_err(store_error)?;
    let detail = match (&result.pipe_failure, &result.backend_lost) {
        (Some(why), _) => format!("pipe failed: {why}"),
        (None, Some(why)) => format!("interrupted by its environment: {why}"),
        (None, None) => "jobs before the gate finished".into(),
    };
    store
        .audit(id, &actor(), state.as_str(), &detail)
        .map_err(store_error)?;
    Ok(state)
}

/// After the run is recorded: a run that pipe itself had to stop ends pipe with exit code 5,
/// one whose backend went away with the no-engine code.
pub fn pipe_failed(id: RunId, result: &RunResult) -> Result<(), CliError> {
    match (&result.pipe_failure, &result.backend_lost) {
        (Some(why), _) => Err(Internal::Run {
            run: id,
            why: why.clone(),
        }
        .into()),
        (None, Some(why)) => Err(CliError::Unavailable(format!(
            "{why}: run {id} is recorded as interrupted; what its jobs left on the engine is \
             removed by the next run of this project or by `pipe clean`"
        ))),
        (None, None) => Ok(()),
    }
}

/// Records a run that pipe could not carry on with as failed, with the reason, where the store
/// still takes writes (if it does not, the run shows as interrupted once its process is gone).
/// Returns the error to report.
pub fn fail_run(store: &mut dyn Store, id: RunId, err: CliError) -> CliError {
    if let CliError::Internal(why) = &err {
        let _ = store.set_state(id, RunState::Failed, true);
        let _ = store.audit(id, &actor(), "failed", &format!("pipe failed: {why}"));
    }
    err
}

/// The directory of new run `id`, with the pipeline file it runs and its source, as `fill` lays
/// it (a snapshot of the tree, or the snapshot of the run retried).
pub fn new_run_dir(
    project: &Path,
    id: RunId,
    pipeline: &[u8],
    fill: impl FnOnce(&RunDir) -> Result<(), CliError>,
) -> Result<RunDir, CliError> {
    let run = RunDir::create(project, id)
        .map_err(Internal::io(format!("create the directory of run {id}")))?;
    private::write(&run.pipeline_file(), pipeline)
        .map_err(Internal::io("keep the pipeline file"))?;
    fill(&run)?;
    Ok(run)
}

/// How many of the newest runs keep their snapshot for `pipe retry`, whatever their state.
pub const KEPT_SNAPSHOTS: usize = 10;

/// Drops the snapshots nothing can use any more, so `.pipe` does not grow by a copy of the tree
/// per run. A run that reached the gate keeps its own: its release, or a release `--again` to
/// roll back, runs on it. Any other run keeps it while it is one of the `KEPT_SNAPSHOTS` newest.
pub fn prune_snapshots(project: &Path, store: &mut dyn Store) -> Result<(), CliError> {
    let runs = store.runs(None, usize::MAX).map_err(store_error)?;
    for record in runs.iter().skip(KEPT_SNAPSHOTS) {
        if matches!(
            record.state,
            RunState::Passed | RunState::Failed | RunState::Interrupted
        ) {
            let _ = workspace::remove(&RunDir::at(project, record.id).source());
        }
    }
    Ok(())
}

/// Says what happens next.
/// With `--output json` the line is one more event on stdout, for automation to read.
pub fn announce(
    store: &mut dyn Store,
    id: RunId,
    state: RunState,
    output: Output,
) -> Result<(), CliError> {
    if state == RunState::AwaitingRelease {
        let next = gate::next_step(store, id)?;
        if output == Output::Json {
            let event = crate::event::Event::now(crate::event::EventKind::AwaitingRelease {
                run_id: id.to_string(),
                next,
            });
            print(&format!(
                "{}\n",
                serde_json::to_string(&event).unwrap_or_default()
            ))?;
        } else {
            eprintln!("{next}");
        }
    }
    Ok(())
}

pub fn exit_code(result: &RunResult) -> u8 {
    match (result.status, result.interrupted_by) {
        (RunStatus::Passed, _) => exit::OK,
        (RunStatus::Failed, _) => exit::JOB_FAILED,
        (RunStatus::Interrupted, Some(Interrupt::Terminate)) => exit::SIGTERM,
        (RunStatus::Interrupted, _) => exit::SIGINT,
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Internal::io("start the runtime"))
}

pub fn project_dir() -> Result<PathBuf, CliError> {
    std::env::current_dir().map_err(Internal::io("read the current directory"))
}

pub fn open_store(project: &Path) -> Result<SqliteStore, CliError> {
    SqliteStore::open(project).map_err(store_error)
}

/// The store, for a command about the recorded run `run`: where nothing was ever recorded there
/// is no such run, and no `.pipe` is created for saying so.
pub fn recorded_store(project: &Path, run: &str) -> Result<SqliteStore, CliError> {
    if !SqliteStore::exists(project) {
        return Err(store_error(store::StoreError::NoSuchRun(run.to_string())));
    }
    open_store(project)
}

pub fn store_error(e: store::StoreError) -> CliError {
    match e {
        store::StoreError::NoSuchRun(run) => {
            CliError::Usage(format!("no run {run}: `pipe runs` lists the recorded runs"))
        }
        taken @ store::StoreError::TakenOver { .. } => CliError::Refused(taken.to_string()),
        other => Internal::Store(other).into(),
    }
}

/// The store's rows for these jobs: name, stage, phase (gated jobs belong to the release) and
/// environment.
pub fn recorded_jobs<'a>(
    jobs: impl Iterator<Item = &'a crate::pipeline::Job>,
) -> Vec<(String, String, store::Phase, Option<String>)> {
    jobs.map(|j| {
        let phase = if j.gated {
            store::Phase::Release
        } else {
            store::Phase::Main
        };
        (
            j.name.clone(),
            j.stage.clone(),
            phase,
            j.environment.clone(),
        )
    })
    .collect()
}

/// The git facts a run was recorded with: later phases run for the run's commit, not today's.
pub fn recorded_facts(record: &store::RunRecord) -> crate::git::Facts {
    crate::git::Facts {
        commit: record.commit.clone(),
        branch: record.branch.clone(),
        tags: record.tags.clone(),
        changed_paths: record.changed_paths,
    }
}

/// Who is acting, for approvals and the audit trail: PIPE_USER, else the login name, else
/// git's user.name.
pub fn actor() -> String {
    let named = |name: Option<String>| name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    ["PIPE_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| named(std::env::var(v).ok()))
        .or_else(|| {
            let user = nix::unistd::User::from_uid(nix::unistd::getuid());
            named(user.ok().flatten().map(|u| u.name))
        })
        .or_else(|| named(crate::git::user_name(&std::env::current_dir().ok()?)))
        .unwrap_or_else(|| "unknown".into())
}

/// Copies the working tree into the run's snapshot; a copy cut short (a full disk) is removed.
pub fn snapshot(project: &Path, run: &RunDir) -> Result<(), CliError> {
    workspace::snapshot(project, &run.source())
        .map(|_| ())
        .map_err(|e| {
            let _ = workspace::remove(&run.source());
            Internal::io("snapshot the working tree")(e)
        })
}

pub fn builtin_env(run: &RunDir, git: &crate::git::Facts) -> Vec<(String, String)> {
    let mut env = vec![
        ("CI".to_string(), "true".to_string()),
        ("PIPE_RUN_ID".to_string(), run.id.clone()),
    ];
    env.extend(git.commit.clone().map(|c| ("PIPE_COMMIT".to_string(), c)));
    env.extend(git.branch.clone().map(|b| ("PIPE_BRANCH".to_string(), b)));
    env
}

/// Container starts are bound by the engine's latency more than by CPU, so a few jobs per core
/// keep it busy; many more would only make every job slower.
fn default_concurrency() -> usize {
    4 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Ctrl-C and SIGTERM become requests to the scheduler: the first stops gracefully, the next kills.
/// SIGHUP (the terminal closed, an SSH session dropped) counts as SIGTERM: without it the run
/// would die on the spot and leave its containers running.
async fn forward_signals(tx: mpsc::UnboundedSender<Interrupt>) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    for count in 0.. {
        let kind = tokio::select! {
            _ = int.recv() => Interrupt::Interrupt,
            _ = term.recv() => Interrupt::Terminate,
            _ = hup.recv() => Interrupt::Terminate,
        };
        if tx.send(kind).is_err() {
            return;
        }
        if count == 0 {
            eprintln!("pipe: stopping jobs (press Ctrl-C again to kill them)");
        } else {
            eprintln!("pipe: killing jobs");
        }
    }
}
