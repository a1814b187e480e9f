//! Retrying a run: a new run of the same snapshot and pipeline, or (`failed`) a rerun in the
//! same run of only the jobs that did not pass, keeping the others' results and artifacts.

use super::exec::Work;
use super::load::stored_pipeline;
use super::record::{
    audit_grants, fail_run, new_run_dir, recorded_changed_files, recorded_facts, recorded_jobs,
    recorded_store, Snapshot, KEPT_SNAPSHOTS,
};
use super::release::announce;
use super::source;
use super::start::{release_jobs, run_before_gate};
use super::{Cancel, Context, EngineError, ExecOptions, Internal, Outcome, Refusal};
use crate::plan::{self, Phase, Refs, Selection};
use crate::store::{self, NewRun, RunState, Store};
use crate::workspace::RunDir;

pub struct RetryRequest {
    pub ctx: Context,
    /// The run: its number, or `last`.
    pub run: String,
    /// Rerun only the jobs that failed (and those skipped because of them), in the same run.
    pub failed: bool,
    pub exec: ExecOptions,
    pub cancel: Cancel,
}

pub async fn retry(req: RetryRequest) -> Result<Outcome, EngineError> {
    let ctx = &req.ctx;
    let project = &ctx.project;
    let mut store = recorded_store(project, &req.run)?;
    let id = store.resolve(&req.run)?;
    let record = store.run(id)?;
    if record.state.is_active() {
        return Err(Refusal::StillRunning(id).into());
    }
    let old = RunDir::at(project, id);
    let exec = req.exec.following(&old);
    // Held until the retry runs: a run started meanwhile (while secrets are resolved) does not
    // prune it. A run of git content is checked out again.
    let held = source::snapshot(project, &old).await?;
    if held.is_none() && source::recorded_tree(&old).is_none() {
        return Err(Refusal::RetrySnapshotGone {
            run: id,
            kept: KEPT_SNAPSHOTS,
        }
        .into());
    }
    let pipeline = stored_pipeline(&old, &record)?;
    let git = recorded_facts(project, &record, &old);
    let done: Vec<String> = if req.failed {
        if !matches!(record.state, RunState::Failed | RunState::Interrupted) {
            return Err(Refusal::NothingFailed {
                run: id,
                state: record.state,
            }
            .into());
        }
        store
            .jobs(id)?
            .iter()
            .filter(|j| j.phase == store::Phase::Main && j.succeeded())
            .map(|j| j.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    // A new run judges `only:` again on the run's branch and changed files; a rerun of failed
    // jobs keeps what was left out.
    let refs = (!req.failed).then_some(Refs {
        branch: git.branch.as_deref(),
        changed_files: git.changed_files.as_deref(),
    });
    let mut plan = plan::build(
        &pipeline,
        Selection {
            refs,
            done: &done,
            ..Selection::of(Phase::Main)
        },
    )
    .map_err(|problems| EngineError::Plan {
        file: old.pipeline_file(),
        problems,
    })?;
    // A rerun keeps the run's release jobs; a new run records those `only:` keeps.
    let gated = match refs {
        Some(refs) => !release_jobs(&pipeline, &old.pipeline_file(), refs, &mut plan)?.is_empty(),
        None => {
            let recorded = store.jobs(id)?;
            let left_out = |name: &str| {
                recorded
                    .iter()
                    .any(|r| r.name == name && r.status == "left_out")
            };
            pipeline.jobs.iter().any(|j| j.gated && !left_out(&j.name))
        }
    };
    let granted = exec
        .check_jobs(ctx, &old.pipeline_file(), &plan.jobs)
        .await?;
    let secrets = exec
        .prepare_env(ctx, &old.pipeline_file(), &pipeline, &mut plan)
        .await?;

    let (run, new_id) = if req.failed {
        let again: Vec<String> = plan.jobs.iter().map(|j| j.name.clone()).collect();
        exec.stop_orphans(ctx, &mut store, id).await?;
        store.claim_run(id, record.state, RunState::Running)?;
        // Only the process that took the run over owns its directory and resets its jobs.
        let old = RunDir::open(project, id)
            .map_err(Internal::io(format!("open the directory of run {id}")))?;
        store.reset_jobs(id, &again)?;
        store.audit(
            id,
            &ctx.actor,
            "retry",
            &format!("rerunning {}", again.join(", ")),
        )?;
        (old, id)
    } else {
        let new = NewRun {
            pipeline_name: record.pipeline_name.clone(),
            pipeline_file: record.pipeline_file.clone(),
            pipeline_sha256: record.pipeline_sha256.clone(),
            commit: record.commit.clone(),
            branch: record.branch.clone(),
            tags: record.tags.clone(),
            // The same snapshot, so the same uncommitted changes.
            changed_paths: record.changed_paths,
            trigger: format!("retry of run {id}"),
            actor: ctx.actor.clone(),
        };
        let jobs = recorded_jobs(pipeline.jobs.iter());
        let text = std::fs::read(old.pipeline_file())
            .map_err(Internal::io(format!("read the pipeline file of run {id}")))?;
        let new_id = store.create_run(&new, &jobs)?;
        if let Some(author) = super::author::of_run(&mut store, id)? {
            super::author::record(&mut store, new_id, &author)?;
        }
        // A run of git content is rerun on the same tree, checked out again.
        let snapshot = match source::recorded_tree(&old) {
            Some(tree) => Snapshot::Git(tree),
            None => Snapshot::Run(id),
        };
        let changed = recorded_changed_files(&old);
        let run = new_run_dir(project, new_id, &text, snapshot, changed.as_deref())
            .await
            .map_err(|e| fail_run(ctx, &mut store, new_id, e))?;
        (run, new_id)
    };
    audit_grants(ctx, &mut store, new_id, &granted)?;
    let files = source::recorded(project, &run)
        .await
        .map_err(|e| fail_run(ctx, &mut store, new_id, e))?
        .ok_or(Refusal::RetrySnapshotGone {
            run: id,
            kept: KEPT_SNAPSHOTS,
        })?;
    let work = Work {
        plan: &plan,
        run: &run,
        phase: store::Phase::Main,
        git: &git,
        source: &files.dir,
        pipeline_file: &record.pipeline_file,
        secrets: &secrets,
        // A retry runs again what failed: a job passed earlier with the same key must not
        // stand in for it.
        reuse: None,
        held: None,
        epoch: crate::store::UNCLAIMED,
    };
    let outcome = run_before_gate(ctx, &exec, &req.cancel, &mut store, new_id, work, gated).await?;
    if outcome.state == RunState::AwaitingRelease {
        announce(ctx, &mut store, new_id)?;
    }
    Ok(outcome)
}
