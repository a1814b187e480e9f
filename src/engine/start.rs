//! Starting a run: load and plan the project's pipeline (as it is in what runs), record the
//! run, snapshot the tree (or check out the commit's), run the jobs before the release gate,
//! and (when asked and the gate allows) go on to the release.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::exec::Work;
use super::load::load_plan_as;
use super::record::{
    audit_grants, fail_run, finish, new_run_dir, open_store, prune_snapshots, recorded_jobs,
    same_snapshot, Snapshot,
};
use super::release::{announce, release_run};
use super::source::{self, Source};
use super::{Cancel, Context, EngineError, ExecOptions, Internal, Outcome, Refusal};
use crate::pipeline::{Job, Pipeline};
use crate::plan::{self, Phase, Plan, Refs, Selection, Stages};
use crate::reuse::{self, Manifest};
use crate::store::{self, NewRun, RunId, RunState, Store};
use crate::workspace::shared;

pub struct StartRequest {
    pub ctx: Context,
    /// The pipeline file, relative to the project; `None`: the first of the default names.
    pub file: Option<PathBuf>,
    /// Only these jobs and what they need; empty: all of them.
    pub jobs: Vec<String>,
    /// Only jobs of these stages and what they need; empty: every stage.
    pub stages: Vec<String>,
    /// Only jobs of this stage and the stages before it.
    pub until: Option<String>,
    /// Never run a deploy or release job (of the `deploy` stage, the release stage, or with an
    /// `environment`), whatever else the request asks; `release` is refused. A git hook sets it.
    pub no_deploy: bool,
    pub exec: ExecOptions,
    /// Go through the release gate in this request when it asks for no approval and every
    /// other condition holds.
    pub release: bool,
    /// `run`, `hook`, …: what the run is recorded as started by.
    pub trigger: String,
    /// What runs: the working tree, the index or a commit.
    pub source: Source,
    /// Count the changed files against this commit (a hook passes the remote's old commit);
    /// `None`: against the merge base with the default branch, or the commit's parent.
    pub changes_since: Option<String>,
    /// Skip a job that passed in an earlier run with the same key, taking its artifacts and
    /// log (see [`crate::reuse`]); off, every job runs.
    pub reuse: bool,
    pub cancel: Cancel,
    /// Put the jobs into the fleet's queue of the shared store, as this agent, for the fleet's
    /// agents to claim, instead of running them here (needs a shared store, an object store
    /// and a commit); `None`: run them here.
    pub fleet: Option<crate::fleet::Agent>,
}

/// Runs the jobs before the gate; the outcome is the release's when it went on to one.
pub async fn start(req: StartRequest) -> Result<Outcome, EngineError> {
    let StartRequest { ctx, exec, .. } = &req;
    if req.no_deploy && req.release {
        return Err(Refusal::NeverReleases.into());
    }
    let project = &ctx.project;
    let git_source = source::resolve(project, &req.source, req.changes_since.as_deref()).await?;
    // The pipeline file as it is in what runs.
    let root = git_source
        .as_ref()
        .map_or(project.clone(), |g| g.files.dir.clone());
    // Named as a run of the working tree would be: for the file's folder in the project.
    let default_name = git_source
        .as_ref()
        .map(|_| source::pipeline_name(project, req.file.as_deref()));
    let (git, snapshot, files) = match git_source {
        Some(g) => (g.facts, Snapshot::Git(g.tree), Some(g.files)),
        None => (
            crate::git::facts(project, req.changes_since.as_deref()),
            Snapshot::Tree,
            None,
        ),
    };
    let refs = Refs {
        branch: git.branch.as_deref(),
        changed_files: git.changed_files.as_deref(),
    };
    let selection = Selection {
        phase: Phase::Main,
        jobs: &req.jobs,
        stages: Stages {
            only: &req.stages,
            until: req.until.as_deref(),
            no_deploy: req.no_deploy,
        },
        refs: Some(refs),
        done: &[],
    };
    let (file, pipeline, mut plan) = load_plan_as(
        &root,
        req.file.as_deref(),
        selection,
        default_name.as_deref(),
    )?;
    let granted = exec.check_jobs(ctx, &file, &plan.jobs).await?;
    let secrets = exec.prepare_env(ctx, &file, &pipeline, &mut plan).await?;
    let mut store = open_store(ctx)?;
    // The gated jobs are recorded too, as pending, unless the run was narrowed to some jobs or
    // stages; those `only:` leaves out are reported with the run's.
    let whole = req.jobs.is_empty() && req.stages.is_empty() && req.until.is_none();
    let gated = if whole && !req.no_deploy {
        release_jobs(&pipeline, &file, refs, &mut plan)?
    } else {
        Vec::new()
    };
    let left_out: Vec<&Job> = plan
        .left_out
        .iter()
        .filter_map(|l| pipeline.jobs.iter().find(|j| j.name == l.name))
        .collect();
    let jobs = recorded_jobs(plan.jobs.iter().chain(&gated).chain(left_out));
    let text = std::fs::read(root.join(&file))
        .map_err(Internal::io(format!("read {}", file.display())))?;
    let new = NewRun {
        pipeline_name: pipeline.name.clone(),
        pipeline_file: file.display().to_string(),
        pipeline_sha256: format!("{:x}", Sha256::digest(&text)),
        commit: git.commit.clone(),
        branch: git.branch.clone(),
        tags: git.tags.clone(),
        changed_paths: git.changed_paths,
        trigger: req.trigger.clone(),
        actor: ctx.actor.clone(),
    };
    let id = store.create_run(&new, &jobs)?;
    let author =
        super::author::of_new_run(project, &req.trigger, git.commit.as_deref(), &ctx.actor);
    super::author::record(&mut *store, id, &author)?;
    audit_grants(ctx, &mut *store, id, &granted)?;
    let tree = matches!(snapshot, Snapshot::Tree);
    // The working tree hashed before and after it is copied: if it changed meanwhile, the keys
    // would not say what the jobs see, and nothing is reused or remembered.
    let before = if req.reuse && tree {
        manifest(project, None).await
    } else {
        None
    };
    // A tree that hashes as an earlier run's snapshot runs on that snapshot: nothing is copied.
    let same = match &before {
        Some(before) => same_snapshot(project, &mut *store, id, before)
            .map_err(|e| fail_run(ctx, &mut *store, id, e))?,
        None => None,
    };
    let snapshot = same.map_or(snapshot, Snapshot::Run);
    let run = new_run_dir(project, id, &text, snapshot, git.changed_files.as_deref())
        .await
        .map_err(|e| fail_run(ctx, &mut *store, id, e))?;
    // The run's folder here keeps its pipeline file, for its release; the fleet runs its jobs.
    if let Some(member) = &req.fleet {
        return super::claimed::enqueue(ctx, &mut *store, id, &plan, member, !gated.is_empty())
            .await;
    }
    let checkout = files.as_ref().map(|f| f.dir.clone());
    let files = match files {
        Some(files) => files,
        None => source::snapshot(project, &run)
            .await
            .and_then(|held| {
                held.ok_or_else(|| {
                    let gone = std::io::Error::new(std::io::ErrorKind::NotFound, "it is gone");
                    Internal::io(format!("hold the snapshot of run {id}"))(gone)
                })
            })
            .map_err(|e| fail_run(ctx, &mut *store, id, e))?,
    };
    let reuse = match (req.reuse, before) {
        (false, _) => None,
        // The shared snapshot holds exactly the files hashed.
        (true, Some(before)) if same.is_some() => Some(before),
        (true, Some(before)) => {
            let after = manifest(project, None)
                .await
                .filter(|after| *after == before);
            // Only a copy known to hold the tree hashed may stand in for it later.
            if let Some(Err(e)) = after
                .as_ref()
                .map(|a| shared::record_digest(&run, &a.digest()))
            {
                tracing::warn!("run {id}'s snapshot will not be shared: {e}");
            }
            after
        }
        (true, None) if tree => None,
        (true, None) => manifest(project, checkout).await,
    };

    let work = Work {
        plan: &plan,
        run: &run,
        phase: store::Phase::Main,
        git: &git,
        source: &files.dir,
        pipeline_file: &new.pipeline_file,
        secrets: &secrets,
        reuse,
        held: None,
        epoch: crate::store::UNCLAIMED,
    };
    let outcome = run_before_gate(
        ctx,
        exec,
        &req.cancel,
        &mut *store,
        id,
        work,
        !gated.is_empty(),
    )
    .await?;
    if outcome.state == RunState::AwaitingRelease {
        if req.release && !req.cancel.requested() {
            let released =
                release_run(ctx, &req.cancel, &mut *store, id, exec, false, true).await?;
            return Ok(released.unwrap_or(outcome));
        }
        announce(ctx, &mut *store, id)?;
    }
    Ok(outcome)
}

/// The files of the working tree (or of the kept checkout at `dir`), hashed; `None` when they
/// cannot be read, and then every job runs.
async fn manifest(project: &Path, dir: Option<PathBuf>) -> Option<Manifest> {
    let project = project.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || match dir {
        Some(dir) => reuse::dir_manifest(&project, &dir),
        None => reuse::tree_manifest(&project),
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    hashed
        .inspect_err(|e| tracing::warn!("cannot hash the files jobs see, so no job is reused: {e}"))
        .ok()
}

/// The release jobs a new run records as pending; those `only:` leaves out on `refs` join the
/// left-out jobs of `plan`, to be reported and recorded with them.
pub(super) fn release_jobs(
    pipeline: &Pipeline,
    file: &Path,
    refs: Refs,
    plan: &mut Plan,
) -> Result<Vec<Job>, EngineError> {
    let release = plan::build(
        pipeline,
        Selection {
            refs: Some(refs),
            ..Selection::of(Phase::Release)
        },
    )
    .map_err(|problems| EngineError::Plan {
        file: file.to_path_buf(),
        problems,
    })?;
    plan.left_out.extend(release.left_out);
    Ok(release.jobs)
}

/// Runs a new run's jobs before the gate and records how they went (a failure of pipe itself
/// marks the run failed); then only the newest snapshots stay. `start` and `retry` share it.
pub(super) async fn run_before_gate(
    ctx: &Context,
    exec: &ExecOptions,
    cancel: &Cancel,
    store: &mut dyn Store,
    id: RunId,
    work: Work<'_>,
    gated: bool,
) -> Result<Outcome, EngineError> {
    let result = exec
        .execute(ctx, cancel, work)
        .await
        .map_err(|e| fail_run(ctx, store, id, e))?;
    let outcome = finish(ctx, store, id, result, false, gated);
    prune_snapshots(&ctx.project, store)?;
    outcome
}
