//! The scheduler. One loop owns the run's state: a job starts as soon as its own needs are done
//! (never stage by stage), up to the concurrency limit, most-waited-on work first. It applies
//! timeouts, retries and fail-fast, stops jobs when asked (gracefully, then by force), and
//! reports everything as [`Event`]s. It never prints and never picks exit codes.

use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backend::{Backend, BackendError, Backlog, JobShape, JobSpec, LogSink, RunShape, Stop};
use crate::event::{Event, EventKind, JobStatus, PlannedJob, RunStatus};
use crate::plan::Plan;
use crate::reuse::{self, Reuse};
use crate::workspace::RunDir;

mod ahead;
mod group;
mod reports;

pub struct RunOptions {
    pub run: RunDir,
    /// At most this many jobs run at once.
    pub concurrency: usize,
    /// Cancel running jobs and skip the rest at the first failure.
    pub fail_fast: bool,
    /// Environment every job gets before its own (run id, commit, …).
    pub env: Vec<(String, String)>,
    /// The run's secrets: each job gets only those it names.
    pub secrets: crate::secret::Secrets,
    /// The bottom layer of every job's workspace: the run's snapshot or a kept checkout.
    pub source: PathBuf,
    /// The list of the files the run changes, mounted read-only where it is into containers.
    pub changed_files: Option<PathBuf>,
    /// The pipeline file as named when the run started: scan jobs audit it whatever its name.
    pub pipeline_file: PathBuf,
    /// The secret values every job's output is masked of.
    pub masks: Arc<crate::mask::Patterns>,
    /// Where jobs' caches live; `None`: `cache:` is not acted on (said in the job's log).
    pub cache: Option<crate::cache::Caches>,
    /// Reuse jobs that passed in earlier runs with the same key; `None`: every job runs.
    pub reuse: Option<Arc<Reuse>>,
    /// The output lines not yet recorded, which jobs' output waits on when there are too many.
    pub backlog: Arc<Backlog>,
}

/// What the user asked for while the run was going: each request escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    Interrupt,
    Terminate,
}

#[derive(Debug, Clone)]
pub struct JobResult {
    pub status: JobStatus,
    pub exit_code: Option<i64>,
    pub attempts: u32,
    pub duration: Duration,
    pub message: Option<String>,
    pub findings: Option<crate::scan::Counts>,
    /// pipe itself failed at this job (see `BackendError::Internal`), saying how.
    pub pipe_failure: Option<String>,
    /// The backend went away under this job (see `BackendError::Unavailable`), saying how.
    pub backend_lost: Option<String>,
    /// The job did not run: it passed in this earlier run with the same inputs.
    pub reused: Option<crate::store::RunId>,
}

#[derive(Debug)]
pub struct RunResult {
    pub status: RunStatus,
    /// The first interrupt received, if the run was interrupted.
    pub interrupted_by: Option<Interrupt>,
    /// The first failure of pipe itself (not of a job): the run was stopped, and failed.
    pub pipe_failure: Option<String>,
    /// The backend went away during the run (the Docker engine stopped answering): the run was
    /// stopped, interrupted by its environment.
    pub backend_lost: Option<String>,
    /// Per job (plan order): what came of it, or why it was skipped.
    pub jobs: Vec<Result<JobResult, String>>,
}

/// Why an attempt has no result of the job's own.
enum Abort {
    /// pipe itself failed.
    Pipe(String),
    /// The backend went away.
    Backend(String),
}

/// Why a job did not run, told to its dependents.
enum State {
    Pending,
    Running,
    Done(JobResult),
    Skipped(String),
}

pub async fn run(
    plan: &Plan,
    backend: Arc<dyn Backend>,
    opts: RunOptions,
    events: mpsc::UnboundedSender<Event>,
    mut interrupts: mpsc::UnboundedReceiver<Interrupt>,
) -> Result<RunResult, BackendError> {
    let started = Instant::now();
    let emit = |kind| {
        let _ = events.send(Event::now(kind));
    };
    emit(EventKind::RunStarted {
        run_id: opts.run.id,
        pipeline: plan.name.clone(),
        jobs: plan
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| PlannedJob {
                name: j.name.clone(),
                stage: j.stage.clone(),
                needs: plan.deps[i]
                    .iter()
                    .map(|(d, _)| plan.jobs[*d].name.clone())
                    .collect(),
            })
            .collect(),
    });
    for left in &plan.left_out {
        emit(EventKind::JobLeftOut {
            job: left.name.clone(),
            stage: left.stage.clone(),
            reason: left.reason.clone(),
        });
    }
    let shape = RunShape {
        run_id: opts.run.id.to_string(),
        jobs: plan
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| JobShape {
                image: j.image.clone(),
                scan: !j.scan.is_empty(),
                builds: match j.build {
                    Some(_) => job_spec(plan, i, &opts, false)
                        .build
                        .and_then(Result::ok)
                        .map(|b| b.tags)
                        .unwrap_or_default(),
                    None => Vec::new(),
                },
            })
            .collect(),
        concurrency: opts.concurrency.max(1),
        widest_later_level: widest_later_level(plan),
    };
    // Pulling images can take minutes: an interrupt meanwhile stops the run before any job.
    let mut interrupted_by = None;
    tokio::select! {
        prepared = backend.prepare(&shape) => prepared?,
        Some(kind) = interrupts.recv() => interrupted_by = Some(kind),
    }

    let n = plan.jobs.len();
    let mut state: Vec<State> = (0..n).map(|_| State::Pending).collect();
    let mut waiting: Vec<usize> = plan.deps.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = (0..n)
        .filter(|&i| waiting[i] == 0)
        .map(|i| (plan.tail[i], std::cmp::Reverse(i)))
        .collect();
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    let mut running: JoinSet<JobResult> = JoinSet::new();
    // Which job each task runs, to tell whose task panicked.
    let mut tasks: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut failed = false;
    let mut pipe_failure: Option<String> = None;
    let mut backend_lost: Option<String> = None;
    let mut interrupts_open = true;
    let mut ahead = ahead::Ahead::new(n);
    let mut all_started = false;
    // Each job's task says here when its first attempt begins.
    let (live_tx, mut live_rx) = mpsc::unbounded_channel::<usize>();
    if interrupted_by.is_some() {
        let _ = stop_tx.send(Stop::Graceful);
    }

    loop {
        while *stop_tx.borrow() == Stop::No && running.len() < opts.concurrency.max(1) {
            let Some((_, std::cmp::Reverse(i))) = ready.pop() else {
                break;
            };
            state[i] = State::Running;
            let spec = job_spec(plan, i, &opts, false);
            let task = JobTask {
                backend: backend.clone(),
                log: LogSink::new(spec.job.clone(), events.clone())
                    .masking(opts.masks.clone())
                    .with_backlog(opts.backlog.clone()),
                events: events.clone(),
                timeout: plan.jobs[i].timeout,
                retry: plan.jobs[i].retry,
                stop: stop_rx.clone(),
                cache: job_cache(plan, i, &opts, &spec),
                reuse: opts
                    .reuse
                    .clone()
                    .filter(|_| reuse::eligible(&plan.jobs[i]))
                    .map(|r| (r, plan.jobs[i].clone())),
                live: (live_tx.clone(), i),
                prepared: ahead.of(i),
                reports: reports::Reports::of(&plan.jobs[i], &opts.run, &plan.slugs[i]),
                group: plan.jobs[i]
                    .concurrency
                    .clone()
                    .map(|g| (opts.run.locks(), g)),
            };
            let handle = running.spawn(task.run(spec));
            tasks.insert(handle.id(), i);
        }
        if running.is_empty() {
            break;
        }
        if *stop_tx.borrow() == Stop::No {
            ahead.prepare(plan, &state, &opts, &backend);
        }
        // Once the last jobs reached the backend: a job on its way may still want what the
        // backend would let go then (a free network sandbox).
        if !all_started
            && !state.iter().any(|s| matches!(s, State::Pending))
            && ahead.all_live(&state)
        {
            all_started = true;
            backend.all_started();
        }
        tokio::select! {
            joined = running.join_next_with_id() => {
                let (i, result) = match joined.expect("not empty") {
                    Ok((id, result)) => (tasks.remove(&id).expect("a job's task"), result),
                    // A bug in pipe (a backend that panicked): the job errors and, as for any
                    // failure of pipe itself, the run stops and is torn down.
                    Err(e) => (tasks.remove(&e.id()).expect("a job's task"), panicked(e)),
                };
                let job = &plan.jobs[i];
                // pipe cannot go on (a full disk): stop the other jobs as `--fail-fast` would.
                if let (Some(why), None) = (&result.pipe_failure, &pipe_failure) {
                    pipe_failure = Some(format!("job `{}`: {why}", job.name));
                    if *stop_tx.borrow() == Stop::No {
                        let _ = stop_tx.send(Stop::Graceful);
                    }
                }
                // Nothing more can run where the jobs run.
                if let (Some(why), None) = (&result.backend_lost, &backend_lost) {
                    backend_lost = Some(why.clone());
                    if *stop_tx.borrow() == Stop::No {
                        let _ = stop_tx.send(Stop::Graceful);
                    }
                }
                let ok = result.status == JobStatus::Passed;
                let allowed = !ok && job.allow_failure && result.status != JobStatus::Cancelled;
                emit(EventKind::JobFinished {
                    job: job.name.clone(),
                    status: result.status,
                    exit_code: result.exit_code,
                    duration: result.duration,
                    attempts: result.attempts,
                    allowed,
                    message: result.message.clone(),
                    findings: result.findings,
                    reused_from: result.reused,
                });
                state[i] = State::Done(result);
                if ok || allowed {
                    for &d in &plan.dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 && matches!(state[d], State::Pending) {
                            ready.push((plan.tail[d], std::cmp::Reverse(d)));
                        }
                    }
                } else {
                    let how = match &state[i] {
                        State::Done(r) if r.status == JobStatus::Cancelled => "was cancelled",
                        State::Done(r) if r.status == JobStatus::TimedOut => "timed out",
                        State::Done(r) if r.status == JobStatus::Errored => "could not run",
                        _ => "failed",
                    };
                    failed = true;
                    skip_dependents(plan, i, how, &mut state, &emit);
                    if opts.fail_fast && *stop_tx.borrow() == Stop::No {
                        let _ = stop_tx.send(Stop::Graceful);
                    }
                }
            }
            Some(i) = live_rx.recv() => ahead.started(i),
            request = interrupts.recv(), if interrupts_open => match request {
                Some(kind) => {
                    interrupted_by.get_or_insert(kind);
                    let level = if *stop_tx.borrow() == Stop::No { Stop::Graceful } else { Stop::Kill };
                    let _ = stop_tx.send(level);
                }
                None => interrupts_open = false,
            },
        }
    }

    ahead.finish().await;
    backend.shutdown().await;
    // Whatever never became ready was held back by a stop.
    let reason = if interrupted_by.is_some() {
        "the run was interrupted"
    } else if backend_lost.is_some() {
        "the run was interrupted: its jobs can no longer run"
    } else if pipe_failure.is_some() {
        "pipe stopped the run after failing itself"
    } else {
        "cancelled by --fail-fast after a failure"
    };
    for (i, s) in state.iter_mut().enumerate() {
        if matches!(s, State::Pending) {
            emit(EventKind::JobSkipped {
                job: plan.jobs[i].name.clone(),
                reason: reason.into(),
            });
            *s = State::Skipped(reason.into());
        }
    }
    let status = if interrupted_by.is_some() || backend_lost.is_some() {
        RunStatus::Interrupted
    } else if failed || pipe_failure.is_some() {
        RunStatus::Failed
    } else {
        RunStatus::Passed
    };
    emit(EventKind::RunFinished {
        status,
        duration: started.elapsed(),
    });
    let jobs = state
        .into_iter()
        .map(|s| match s {
            State::Done(r) => Ok(r),
            State::Skipped(why) => Err(why),
            State::Pending | State::Running => unreachable!("every job ended"),
        })
        .collect();
    Ok(RunResult {
        status,
        interrupted_by,
        pipe_failure,
        backend_lost,
        jobs,
    })
}

/// How many jobs are likely to run at once after the first wave (the jobs that wait for
/// nothing): the most jobs at one later depth of the graph.
fn widest_later_level(plan: &Plan) -> usize {
    let mut depth = vec![0usize; plan.jobs.len()];
    let mut count = vec![0usize; plan.jobs.len() + 1];
    for &j in &plan.order {
        depth[j] = plan.deps[j]
            .iter()
            .map(|(d, _)| depth[*d] + 1)
            .max()
            .unwrap_or(0);
        count[depth[j]] += 1;
    }
    count.into_iter().skip(1).max().unwrap_or(0)
}

/// Marks everything downstream of `failed_job` as skipped, each naming the job it needed.
fn skip_dependents(
    plan: &Plan,
    failed_job: usize,
    how: &str,
    state: &mut [State],
    emit: &impl Fn(EventKind),
) {
    let mut stack: Vec<(usize, usize, &str)> = plan.dependents[failed_job]
        .iter()
        .map(|&d| (d, failed_job, how))
        .collect();
    while let Some((j, because, how)) = stack.pop() {
        if !matches!(state[j], State::Pending) {
            continue;
        }
        let reason = format!("needs `{}`, which {how}", plan.jobs[because].name);
        emit(EventKind::JobSkipped {
            job: plan.jobs[j].name.clone(),
            reason: reason.clone(),
        });
        state[j] = State::Skipped(reason);
        stack.extend(plan.dependents[j].iter().map(|&d| (d, j, "was skipped")));
    }
}

/// The job's cache, if it has one and the run has somewhere to keep it.
fn job_cache(
    plan: &Plan,
    i: usize,
    opts: &RunOptions,
    spec: &JobSpec,
) -> Option<crate::cache::job::JobCache> {
    let job = &plan.jobs[i];
    let (cache, store) = (job.cache.as_ref()?, opts.cache.as_ref()?);
    let scratch = opts.run.scratch(&plan.slugs[i]);
    Some(crate::cache::job::JobCache {
        store: store.clone(),
        cache: cache.clone(),
        source: opts.source.clone(),
        env: spec.env.clone(),
        matrix: job.matrix.clone(),
        restore_into: scratch.join("cache-restore"),
        save_from: scratch.join("cache-save"),
        run: opts.run.id,
        job: job.name.clone(),
    })
}

/// The spec of job `i`. `ahead`: for preparing it while its needs run, with the artifact
/// folders of the needs in this run that declare artifacts, whether they exist yet or not.
fn job_spec(plan: &Plan, i: usize, opts: &RunOptions, ahead: bool) -> JobSpec {
    let job = &plan.jobs[i];
    let slugs = &plan.slugs;
    let mut layers = vec![opts.source.clone()];
    // Artifacts of what it needs from earlier invocations, then of the jobs it needs in this
    // one, in file order: a later job's file wins a conflict.
    let prior = plan.prior[i]
        .iter()
        .filter(|p| p.has_artifacts)
        .map(|p| (p.slug.as_str(), false));
    let mut deps: Vec<usize> = plan.deps[i]
        .iter()
        .filter(|(d, _)| !plan.jobs[*d].artifacts.is_empty())
        .map(|(d, _)| *d)
        .collect();
    deps.sort_unstable();
    for (slug, to_come) in prior.chain(deps.iter().map(|&d| (slugs[d].as_str(), ahead))) {
        let dir = opts.run.artifacts(slug);
        if to_come || dir.is_dir() {
            layers.push(dir);
        }
    }
    let mut env = opts.env.clone();
    env.extend([
        ("PIPE_JOB".to_string(), job.name.clone()),
        ("PIPE_STAGE".to_string(), job.stage.clone()),
    ]);
    env.extend(job.env.iter().cloned());
    let images = opts.run.root.join("images");
    let build = job.build.as_ref().map(|b| {
        crate::image::BuildSpec::expand(b, &env).map(|spec| crate::image::BuildSpec {
            record: Some(crate::image::record(&images, &job.base)),
            ..spec
        })
    });
    let secrets = opts.secrets.for_job(job);
    let push = job.push.as_ref().map(|p| {
        let record = crate::image::record(&images, &p.image);
        crate::image::PushSpec::expand(p, record, &env, &secrets)
    });
    JobSpec {
        build,
        push,
        drift: crate::backend::DriftSpec {
            fail: job.drift == crate::pipeline::DriftPolicy::Fail,
            record: Some(
                opts.run
                    .root
                    .join("drift")
                    .join(format!("{}.json", slugs[i])),
            ),
        },
        run_id: opts.run.id.to_string(),
        job: job.name.clone(),
        slug: slugs[i].clone(),
        image: job.image.clone(),
        script: job.script.clone(),
        env,
        secrets,
        layers,
        scratch: opts.run.scratch(&slugs[i]),
        // Reports are kept as artifacts are: taken from the workspace without following links,
        // restored when the job is reused.
        artifacts: job.artifacts.iter().chain(&job.reports).cloned().collect(),
        artifacts_dest: opts.run.artifacts(&slugs[i]),
        scan: (!job.scan.is_empty()).then(|| crate::backend::inprocess::ScanSpec {
            scanners: job.scan.clone(),
            fail_on: job.fail_on,
            sarif: opts.run.sarif(&slugs[i]),
            pipeline: (opts.run.pipeline_file(), opts.pipeline_file.clone()),
            drift: opts.run.root.join("drift"),
        }),
        privileged: job.privileged,
        cache: job.cache.as_ref().map(|c| crate::backend::CachePaths {
            paths: c.paths.clone(),
            dest: opts.run.scratch(&slugs[i]).join("cache-save"),
        }),
        network: job.network,
        services: crate::backend::services::Services {
            list: job.services.clone(),
            logs: opts.run.service_logs(&slugs[i]),
        },
        binds: job
            .volumes
            .iter()
            .map(|v| crate::backend::Bind {
                host: v.host.clone(),
                container: v.container.clone(),
                read_only: v.read_only,
            })
            .chain(opts.changed_files.iter().map(|p| crate::backend::Bind {
                host: p.display().to_string(),
                container: p.display().to_string(),
                read_only: true,
            }))
            .collect(),
    }
}

/// The spec of a job's attempt: a scratch folder of its own. The Docker backend finds a job
/// prepared ahead by its first attempt's folder, so both sides make it here.
pub(super) fn attempt_spec(spec: &JobSpec, attempt: u32) -> JobSpec {
    JobSpec {
        scratch: spec.scratch.join(attempt.to_string()),
        ..spec.clone()
    }
}

/// One job, through its attempts.
struct JobTask {
    backend: Arc<dyn Backend>,
    log: LogSink,
    events: mpsc::UnboundedSender<Event>,
    timeout: Option<Duration>,
    retry: u32,
    stop: watch::Receiver<Stop>,
    cache: Option<crate::cache::job::JobCache>,
    /// Set for a job that may be reused: the run's reuse and the job, for its key.
    reuse: Option<(Arc<Reuse>, crate::pipeline::Job)>,
    /// Told the job's index when its first attempt begins: its dependents may be prepared.
    live: (mpsc::UnboundedSender<usize>, usize),
    /// The backend's preparation of the first attempt, if one was begun.
    prepared: Option<ahead::Preparing>,
    /// Set for a job with `reports:`, read when it passes.
    reports: Option<reports::Reports>,
    /// `concurrency:`: the project's lock folder and the job's group, held while it runs.
    group: Option<(PathBuf, String)>,
}

impl JobTask {
    async fn run(mut self, mut spec: JobSpec) -> JobResult {
        let started = Instant::now();
        // A reused job neither restores nor saves a cache: it does not run.
        let key = self.key(&spec).await;
        if let (Some((reuse, _)), Some(key)) = (&self.reuse, &key) {
            match reuse.restore(key.clone(), &spec).await {
                Ok(Some(hit)) => {
                    return JobResult {
                        status: JobStatus::Passed,
                        exit_code: Some(0),
                        attempts: 0,
                        duration: started.elapsed(),
                        message: None,
                        findings: hit.findings,
                        pipe_failure: None,
                        backend_lost: None,
                        reused: Some(hit.origin),
                    }
                }
                Ok(None) => {}
                // The job runs: reuse only ever saves work.
                Err(e) => tracing::warn!("job `{}`: cannot reuse an earlier run: {e}", spec.job),
            }
        }
        let _held = match self.group.take() {
            Some((dir, group)) => match self.hold(&dir, &group, &spec).await {
                Ok(Some(held)) => Some(held),
                Ok(None) => return not_run(JobStatus::Cancelled, started, None),
                Err(e) => {
                    let why = format!("pipe failed: cannot take concurrency group `{group}`: {e}");
                    return not_run(JobStatus::Errored, started, Some(why));
                }
            },
            None => None,
        };
        // Said in the job's log once it has started.
        let mut notes = Vec::new();
        let restored = match &self.cache {
            Some(cache) => Some(cache.restore(|line| notes.push(line)).await),
            None if spec.cache.is_some() => {
                notes.push("pipe: the cache is not used: no cache folder was given".into());
                None
            }
            None => None,
        };
        // The restored cache lies on top of the source and the needed artifacts.
        spec.layers
            .extend(restored.as_ref().and_then(|r| r.layer.clone()));
        // Copying the paths out of a job whose cache will not be saved is wasted work (on
        // Docker, 1.5 s for 50 MB here).
        if !restored.as_ref().is_some_and(|r| r.saves()) {
            spec.cache = None;
        }
        let result = self.attempts(&spec, started, &mut notes).await;
        if let (Some(cache), Some(restored), JobStatus::Passed) =
            (&self.cache, &restored, result.status)
        {
            let log = self.log.clone();
            cache
                .save(restored, |line| {
                    log.line(crate::event::Stream::Stderr, line)
                })
                .await;
        }
        if let (Some((reuse, _)), Some(key), JobStatus::Passed) = (&self.reuse, key, result.status)
        {
            if let Err(e) = reuse.record(key, &spec, result.findings).await {
                tracing::warn!("job `{}`: cannot remember it for reuse: {e}", spec.job);
            }
        }
        result
    }

    /// Waits until the job's concurrency group is free and takes it; says the job waits, and
    /// for whom, when it must. `None`: the run was stopped meanwhile.
    async fn hold(
        &mut self,
        dir: &std::path::Path,
        group: &str,
        spec: &JobSpec,
    ) -> std::io::Result<Option<group::Held>> {
        let holder = format!("run {} (job `{}`)", spec.run_id, spec.job);
        let events = self.events.clone();
        group::take(dir, group, &holder, &mut self.stop, |who| {
            let by = if who.is_empty() {
                "another run".into()
            } else {
                who
            };
            let _ = events.send(Event::now(EventKind::JobWaiting {
                job: spec.job.clone(),
                group: group.to_string(),
                reason: format!("waits for concurrency group `{group}`, held by {by}"),
            }));
        })
        .await
    }

    /// The job's reuse key, if it may be reused and its key can be had.
    async fn key(&self, spec: &JobSpec) -> Option<String> {
        let (reuse, job) = self.reuse.as_ref()?;
        let identity = match self.backend.identity(spec).await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!("job `{}`: no reuse key: {e}", spec.job);
                return None;
            }
        };
        match reuse.key(job.clone(), spec, identity).await {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!("job `{}`: no reuse key: {e}", spec.job);
                None
            }
        }
    }

    /// Runs the job through its attempts.
    async fn attempts(
        &mut self,
        spec: &JobSpec,
        started: Instant,
        notes: &mut Vec<String>,
    ) -> JobResult {
        let mut attempt = 0;
        let (mut pipe_failure, mut backend_lost) = (None, None);
        let result = loop {
            attempt += 1;
            let _ = self.events.send(Event::now(EventKind::JobStarted {
                job: spec.job.clone(),
                attempt,
            }));
            for note in notes.drain(..) {
                self.log.line(crate::event::Stream::Stderr, note);
            }
            if attempt == 1 {
                let _ = self.live.0.send(self.live.1);
                // What was prepared is found only once it is made.
                if let Some(prepared) = self.prepared.take() {
                    prepared.await;
                }
            }
            let spec = attempt_spec(spec, attempt);
            let (status, exit_code, message, findings) = match self.attempt(&spec).await {
                Err(Abort::Pipe(why)) => {
                    pipe_failure = Some(why.clone());
                    (JobStatus::Errored, None, Some(why), None)
                }
                Err(Abort::Backend(why)) => {
                    backend_lost = Some(why.clone());
                    (JobStatus::Errored, None, Some(why), None)
                }
                Ok(attempted) => attempted,
            };
            // Another attempt would fail on pipe's side again (and a full disk stays full), or
            // find no backend either.
            let retryable = !matches!(status, JobStatus::Passed | JobStatus::Cancelled)
                && pipe_failure.is_none()
                && backend_lost.is_none();
            if retryable && attempt <= self.retry && *self.stop.borrow() == Stop::No {
                let reason = message
                    .clone()
                    .unwrap_or_else(|| describe(status, exit_code));
                let _ = self.events.send(Event::now(EventKind::JobRetrying {
                    job: spec.job.clone(),
                    attempt,
                    reason,
                }));
                continue;
            }
            break JobResult {
                status,
                exit_code,
                attempts: attempt,
                duration: started.elapsed(),
                message,
                findings,
                pipe_failure,
                backend_lost,
                reused: None,
            };
        };
        result
    }

    /// How the attempt went, or `Err` with why it could not be a job's result.
    async fn attempt(
        &mut self,
        spec: &JobSpec,
    ) -> Result<
        (
            JobStatus,
            Option<i64>,
            Option<String>,
            Option<crate::scan::Counts>,
        ),
        Abort,
    > {
        if *self.stop.borrow() != Stop::No {
            return Ok((JobStatus::Cancelled, None, None, None));
        }
        let (tx, rx) = watch::channel(Stop::No);
        let mut job = self.backend.run(spec, &self.log, rx);
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut timed_out = false;
        let outcome = loop {
            let timer = async {
                match deadline {
                    Some(at) if !timed_out => tokio::time::sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                outcome = &mut job => break outcome,
                _ = timer => {
                    timed_out = true;
                    let _ = tx.send(Stop::Kill);
                }
                changed = self.stop.changed() => {
                    let level = if changed.is_err() { Stop::Kill } else { *self.stop.borrow_and_update() };
                    // Read before sending: a borrow held across `send` deadlocks the channel.
                    let current = *tx.borrow();
                    let _ = tx.send(level.max(current));
                }
            }
        };
        let stopped = *self.stop.borrow() != Stop::No;
        let mut findings = outcome.as_ref().ok().and_then(|o| o.findings);
        let (status, code, message) = match outcome {
            Ok(_) if timed_out => {
                let t = self.timeout.expect("timed out, so it has a timeout");
                (
                    JobStatus::TimedOut,
                    None,
                    Some(format!("timed out after {}", humantime::format_duration(t))),
                )
            }
            Ok(o) if stopped && o.exit_code != 0 => (JobStatus::Cancelled, Some(o.exit_code), None),
            Ok(o) if o.exit_code == 0 => {
                let reported = |p: &String| self.reports.as_ref().is_some_and(|r| r.declares(p));
                for path in o.missing_artifacts.iter().filter(|p| !reported(p)) {
                    self.log.line(
                        crate::event::Stream::Stderr,
                        format!("pipe: artifact `{path}` was not produced"),
                    );
                }
                (JobStatus::Passed, Some(0), None)
            }
            Ok(o) => (JobStatus::Failed, Some(o.exit_code), None),
            Err(BackendError::Internal(why)) => return Err(Abort::Pipe(why)),
            Err(BackendError::Unavailable(why)) => return Err(Abort::Backend(why)),
            Err(e) => (JobStatus::Errored, None, Some(e.to_string())),
        };
        if let (Some(reports), JobStatus::Passed) = (&self.reports, status) {
            match reports.judge(&self.log).await.map_err(Abort::Pipe)? {
                reports::Judged::Counted(counts) => findings = Some(counts),
                reports::Judged::Refused(why) => {
                    return Ok((JobStatus::Failed, code, Some(why), findings))
                }
            }
        }
        Ok((status, code, message, findings))
    }
}

/// What came of a job that never ran: stopped while it waited for its group, or `pipe_failure`.
fn not_run(status: JobStatus, started: Instant, pipe_failure: Option<String>) -> JobResult {
    JobResult {
        status,
        exit_code: None,
        attempts: 0,
        duration: started.elapsed(),
        message: pipe_failure.clone(),
        findings: None,
        pipe_failure,
        backend_lost: None,
        reused: None,
    }
}

/// What came of a job whose task panicked.
fn panicked(e: tokio::task::JoinError) -> JobResult {
    let why = match e.try_into_panic() {
        Ok(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("pipe failed: a bug in pipe stopped the job (it panicked: {text})")
        }
        Err(e) => format!("pipe failed: the job's task ended without a result ({e})"),
    };
    JobResult {
        status: JobStatus::Errored,
        exit_code: None,
        attempts: 1,
        duration: Duration::ZERO,
        message: Some(why.clone()),
        findings: None,
        pipe_failure: Some(why),
        backend_lost: None,
        reused: None,
    }
}

fn describe(status: JobStatus, exit_code: Option<i64>) -> String {
    match exit_code {
        Some(code) => format!("{} with exit code {code}", status.label()),
        None => status.label().to_string(),
    }
}

#[cfg(test)]
mod tests;
