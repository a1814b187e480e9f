//! A run through a fleet's queue: its jobs expanded into the queue's rows when it starts, then
//! each job run by whichever agent claimed it — on the run's commit, with the jobs it needs
//! counted as done and their artifacts laid from the object store, in a scratch folder of its
//! own (`.pipe/claims/RUN-JOB-EPOCH`). The job's log and artifacts are published to the object
//! store before its claim is finished, so that the jobs below find them, under the claim's epoch:
//! an agent whose claim was taken over (fenced) never replaces what the agent that took it over
//! published, and the jobs below read the epochs whose passes the queue accepted. The job's
//! record in the run store, which names that epoch, waits until the queue has taken the finish,
//! so that a fenced agent records nothing; it removes what it published. The queue's client is
//! blocking: it is used off the async workers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::exec::Work;
use super::load::load_plan_as;
use super::publish::{refs, shared_outputs};
use super::record::{open_store, shared_name};
use super::source::{self, Source};
use super::{Cancel, Context, EngineError, ExecOptions, Internal, Outcome};
use crate::event::RunStatus;
use crate::fleet::{self, Fleet, JobSpec};
use crate::plan::{Phase, Plan, Selection};
use crate::reuse::SharedOutputs;
use crate::run::RunResult;
use crate::store::{self, JobRecord, RunId, RunState, Store};
use crate::workspace::{self, RunDir};

/// Puts the jobs of new run `id` (its plan before the gate) into the fleet's queue, as
/// `member`, instead of running them here; the run stays running until its last job is over.
pub(super) async fn enqueue(
    ctx: &Context,
    store: &mut dyn Store,
    id: RunId,
    plan: &Plan,
    member: &fleet::Agent,
    gated: bool,
) -> Result<Outcome, EngineError> {
    let url = shared_url(ctx)?;
    let jobs: Vec<JobSpec> = plan
        .jobs
        .iter()
        .zip(&plan.deps)
        .map(|(job, deps)| JobSpec {
            name: job.name.clone(),
            needs: deps
                .iter()
                .map(|(d, _)| plan.jobs[*d].name.clone())
                .collect(),
            deploys: job.deploys(),
            labels: job.labels.clone(),
        })
        .collect();
    let (project, member, count) = (shared_name(&ctx.project), member.clone(), jobs.len());
    let queued = tokio::task::spawn_blocking(move || {
        Fleet::connect(&url, member)?.enqueue(&project, id, &jobs)
    })
    .await
    .map_err(|e| Internal::Backend(format!("queueing the jobs stopped: {e}")))?;
    queued.map_err(|e| super::record::fail_run(ctx, store, id, Internal::Fleet(e).into()))?;
    store.audit(
        id,
        &ctx.actor,
        "queued",
        &format!("{count} job(s) queued for the fleet's agents"),
    )?;
    let state = match count {
        // Nothing to claim: the run is over as it starts.
        0 => finish_run(ctx, id, true, gated)?,
        _ => RunState::Running,
    };
    Ok(Outcome {
        run: id,
        state,
        result: RunResult {
            status: RunStatus::Passed,
            interrupted_by: None,
            pipe_failure: None,
            backend_lost: None,
            jobs: Vec::new(),
        },
    })
}

/// The shared store's URL, which a run through the fleet needs (and its object store).
fn shared_url(ctx: &Context) -> Result<String, EngineError> {
    match (&ctx.store, &ctx.objects) {
        (super::StoreAt::Shared(url), Some(_)) => Ok(url.clone()),
        _ => Err(Internal::Backend(
            "a run through a fleet's queue needs a shared store and an object store".into(),
        )
        .into()),
    }
}

/// One job a fleet's agent claimed: which, at which claim, and how it runs.
pub struct ClaimRequest {
    /// The project (the agent's clone of the repository), its shared store and object store.
    pub ctx: Context,
    pub run: RunId,
    pub job: String,
    pub epoch: i64,
    pub exec: ExecOptions,
    pub cancel: Cancel,
    /// The job's needs that passed, each with the epoch of the claim whose pass the queue
    /// accepted: the one whose artifacts are laid ([`crate::fleet::Fleet::passed_needs`]).
    pub needs: HashMap<String, i64>,
    /// Where the project's commits come from (a URL and its branches), for a clone that lacks
    /// the run's commit (an agent that did not start the run, or has not polled yet).
    pub remote: Option<(String, Vec<String>)>,
}

/// How a claimed job went. Its record is held until [`record_claimed`], once the queue took the
/// finish.
pub struct Claimed {
    pub passed: bool,
    /// Why the job did not come to an end of its own — pipe failed, the engine went away, the
    /// agent is stopping —: the claim is given back rather than finished.
    pub unfinished: Option<String>,
    /// The run has jobs behind the release gate: it waits there once all before it passed.
    pub gated: bool,
    records: Vec<JobRecord>,
    /// Where this claim's outputs are in the object store, under its epoch.
    published: Option<(SharedOutputs, [String; 5])>,
}

impl Claimed {
    /// A job pipe could not run, on any agent that tried: failed, saying why, so that the run
    /// ends rather than hand it round for ever.
    pub fn pipe_failed(job: &str, why: &str) -> Claimed {
        Claimed {
            passed: false,
            unfinished: None,
            gated: false,
            records: vec![JobRecord {
                name: job.to_string(),
                stage: String::new(),
                phase: store::Phase::Main,
                environment: None,
                status: "errored".into(),
                attempts: 0,
                exit_code: None,
                duration_ms: None,
                note: Some(format!("pipe failed: {why}")),
                log: String::new(),
                artifacts: Vec::new(),
                findings: None,
                image: None,
                drift: None,
                epoch: store::UNCLAIMED,
            }],
            published: None,
        }
    }

    /// Removes what this claim published to the object store, for a claim that did not hold
    /// (taken over, or given back): nothing reads its epoch. Best effort: a failure is logged,
    /// and what is left is never read.
    pub async fn withdraw(&self) {
        let Some((shared, name)) = &self.published else {
            return;
        };
        match shared.objects.remove_under(&refs(name)).await {
            Ok(n) => tracing::info!(
                "removed the {n} object(s) this claim published under {}",
                name.join("/")
            ),
            Err(e) => tracing::warn!(
                "cannot remove what this claim published under {}: {e}",
                name.join("/")
            ),
        }
    }
}

/// Runs claimed job `req.job` of run `req.run`, alone, on the run's commit.
pub async fn run_claimed(req: ClaimRequest) -> Result<Claimed, EngineError> {
    let ctx = &req.ctx;
    let shared = shared_outputs(ctx).ok_or_else(|| {
        Internal::Backend("a claimed job needs a shared store and an object store".into())
    })?;
    let mut store = open_store(ctx)?;
    let record = store.run(req.run)?;
    let commit = record
        .commit
        .clone()
        .ok_or_else(|| Internal::Backend(format!("run {} of the fleet has no commit", req.run)))?;
    if let Some((url, branches)) = req.remote.clone() {
        fetch(ctx.project.clone(), url, branches, commit.clone()).await?;
    }
    let resolved = source::resolve(&ctx.project, &Source::Commit(commit.clone()), None)
        .await?
        .ok_or_else(|| Internal::Backend(format!("commit {commit} has no tree")))?;
    let root = resolved.files.dir.clone();
    let file = PathBuf::from(&record.pipeline_file);
    let text = std::fs::read(root.join(&file))
        .map_err(Internal::io(format!("read {}", file.display())))?;
    if format!("{:x}", Sha256::digest(&text)) != record.pipeline_sha256 {
        return Err(Internal::Backend(format!(
            "{} at commit {commit} is not the pipeline run {} started with",
            file.display(),
            req.run
        ))
        .into());
    }
    let all = load_plan_as(&root, Some(file.as_path()), Selection::of(Phase::All), None)?.1;
    let others: Vec<String> = (all.jobs.iter())
        .filter(|j| j.name != req.job)
        .map(|j| j.name.clone())
        .collect();
    let selection = Selection {
        jobs: std::slice::from_ref(&req.job),
        done: &others,
        ..Selection::of(Phase::Main)
    };
    let name = source::pipeline_name(&ctx.project, Some(&file));
    let (file, pipeline, mut plan) =
        load_plan_as(&root, Some(file.as_path()), selection, Some(&name))?;
    req.exec.check_jobs(ctx, &file, &plan.jobs).await?;
    let secrets = req
        .exec
        .prepare_env(ctx, &file, &pipeline, &mut plan)
        .await?;
    let slug = plan.slugs[0].clone();
    let run = RunDir::claim(&ctx.project, req.run, &slug, req.epoch)
        .map_err(Internal::io("make the claimed job's folder"))?;
    let _scratch = Scratch(run.root.clone());
    // As the run's start lists them: the commit against its parent (or its merge base).
    if let Some(files) = resolved.facts.changed_files.as_deref() {
        super::record::write_changed_files(&run, files)?;
    }
    for need in plan.prior[0].iter().filter(|p| p.has_artifacts) {
        let epoch = *req.needs.get(&need.name).ok_or_else(|| {
            Internal::Backend(format!(
                "the queue has no pass of `{}`, which `{}` needs",
                need.name, req.job
            ))
        })?;
        super::adopt::lay(&shared, &run, &need.name, &need.slug, epoch).await?;
    }
    let held = Arc::new(Mutex::new(Vec::new()));
    let work = Work {
        plan: &plan,
        run: &run,
        phase: store::Phase::Main,
        git: &resolved.facts,
        source: &root,
        pipeline_file: &record.pipeline_file,
        secrets: &secrets,
        reuse: None,
        held: Some(held.clone()),
        epoch: req.epoch,
    };
    let result = req.exec.execute(ctx, &req.cancel, work).await?;
    let unfinished = match (&result.pipe_failure, &result.backend_lost, result.status) {
        (Some(why), _, _) => Some(format!("pipe failed: {why}")),
        (None, Some(why), _) => Some(format!("the engine went away: {why}")),
        (None, None, RunStatus::Interrupted) => Some("interrupted".into()),
        _ => None,
    };
    let mut records = std::mem::take(&mut *held.lock().unwrap_or_else(|p| p.into_inner()));
    for record in &mut records {
        record.epoch = req.epoch;
    }
    Ok(Claimed {
        passed: result.status == RunStatus::Passed,
        unfinished,
        gated: pipeline.jobs.iter().any(|j| j.gated),
        records,
        published: Some((
            shared.clone(),
            shared.outputs_name(req.run, &slug, req.epoch),
        )),
    })
}

/// Fetches `url`'s `branches` into the clone at `project` unless it has `commit` already, off
/// the async workers.
async fn fetch(
    project: PathBuf,
    url: String,
    branches: Vec<String>,
    commit: String,
) -> Result<(), EngineError> {
    tokio::task::spawn_blocking(move || fetch_commit(&project, &url, &branches, &commit))
        .await
        .map_err(|e| Internal::Backend(format!("the fetch stopped: {e}")))?
}

/// Fetches `url`'s `branches` into the clone at `project` (made if there is none) unless it has
/// `commit` already. The look and the fetch are one step, so that claims of the same commit
/// fetch it once (`git::fetch` itself lets one fetch run at a time). Blocking.
pub fn fetch_commit(
    project: &Path,
    url: &str,
    branches: &[String],
    commit: &str,
) -> Result<(), EngineError> {
    static FETCHING: Mutex<()> = Mutex::new(());
    let _one = FETCHING.lock().unwrap_or_else(|p| p.into_inner());
    if crate::git::has_commit(project, commit) {
        return Ok(());
    }
    crate::git::fetch(project, url, branches).map_err(|e| Internal::Backend(e.to_string()))?;
    match crate::git::has_commit(project, commit) {
        true => Ok(()),
        false => Err(Internal::Backend(format!("no branch of {url} has commit {commit}")).into()),
    }
}

/// Records a claimed job in the run store, once the queue took its finish, with the jobs its
/// failure skipped.
pub fn record_claimed(
    ctx: &Context,
    run: RunId,
    claimed: &Claimed,
    skipped: &[String],
) -> Result<(), EngineError> {
    let mut store = open_store(ctx)?;
    for record in &claimed.records {
        store.job_finished(run, record)?;
    }
    let failed = claimed.records.first().map(|r| r.name.as_str());
    for name in skipped {
        let record = JobRecord {
            name: name.clone(),
            stage: String::new(),
            phase: store::Phase::Main,
            environment: None,
            status: "skipped".into(),
            attempts: 0,
            exit_code: None,
            duration_ms: None,
            note: failed.map(|f| format!("needs `{f}`, which failed")),
            log: String::new(),
            artifacts: Vec::new(),
            findings: None,
            image: None,
            drift: None,
            epoch: store::UNCLAIMED,
        };
        store.job_finished(run, &record)?;
    }
    Ok(())
}

/// Records the state of run `run` of the fleet, whose last job is over: passed (or waiting at
/// its gate), or failed.
pub fn finish_run(
    ctx: &Context,
    run: RunId,
    passed: bool,
    gated: bool,
) -> Result<RunState, EngineError> {
    let state = match (passed, gated) {
        (true, true) => RunState::AwaitingRelease,
        (true, false) => RunState::Passed,
        (false, _) => RunState::Failed,
    };
    let mut store = open_store(ctx)?;
    store.set_state(run, state, state != RunState::AwaitingRelease)?;
    store.audit(
        run,
        &ctx.actor,
        state.as_str(),
        "jobs before the gate finished on the fleet's agents",
    )?;
    Ok(state)
}

/// A claimed job's folder, removed when the job is over however it ended.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = workspace::remove(&self.0) {
            tracing::warn!("cannot remove {}: {e}", self.0.display());
        }
    }
}
