//! The gate between deploying and releasing: approving a run, releasing it when every release
//! job's gate holds, and saying what the gate waits for.

use chrono::{DateTime, Utc};

use super::exec::Work;
use super::exec::{privileges_asked, runs_on_docker};
use super::gate;
use super::load::stored_pipeline;
use super::record::{audit_grants, finish, recorded, recorded_facts};
use super::release_setup::{release_setup, Setup};
use super::signals;
use super::steps;
use super::{Cancel, Context, EngineError, ExecOptions, Internal, Outcome, Refusal};
use crate::event::EventKind;
use crate::pipeline::gate::Gate;
use crate::pipeline::Pipeline;
use crate::store::{self, JobRecord, RunId, RunRecord, RunState, Store};
use crate::workspace::RunDir;

pub struct ReleaseRequest {
    pub ctx: Context,
    /// The run: its number, or `last`.
    pub run: String,
    /// Release a run that was released before (recorded in the audit trail); a progressive
    /// release that is complete or was rolled back starts over from step 1.
    pub again: bool,
    pub exec: ExecOptions,
    pub cancel: Cancel,
}

/// What an approval came to.
#[derive(Debug)]
pub struct Approved {
    pub run: RunId,
    /// False when this approver had approved before (names differing only in case are one).
    pub new: bool,
    pub count: usize,
    pub needed: u32,
    /// What the gate waits for now and what to type next.
    pub next: String,
}

/// Approves run `run`'s release as `ctx.actor`.
pub fn approve(ctx: &Context, run: &str, comment: Option<&str>) -> Result<Approved, EngineError> {
    let mut store = recorded(ctx, run)?;
    let id = store.resolve(run)?;
    let record = store.run(id)?;
    let by = ctx.actor.trim();
    if by.is_empty() {
        return Err(EngineError::Invalid(
            "an approval needs the approver's name: `--by NAME`".into(),
        ));
    }
    refuse_unless_releasable(&mut *store, &record, false, by, "approve refused")?;
    super::adopt::directory(ctx, id, &record, &store.jobs(id)?)?;
    let pipeline = stored_pipeline(&RunDir::at(&ctx.project, id), &record)?;
    let jobs = store.jobs(id)?;
    super::author::refuse_own_approval(&mut *store, &pipeline, &jobs, id, by)?;
    let new = store.approve(id, by, comment, ctx.clock.now())?;
    let taken = store.steps(id)?;
    let next = steps::next(id, pipeline.steps(), &taken).unwrap_or(None);
    let gates = steps::with_step_gate(run_gates(&pipeline, &store.jobs(id)?), &pipeline, next);
    let needed = gate::approvals_needed(&gates);
    let count = store.approvals(id)?.len();
    Ok(Approved {
        run: id,
        new,
        count,
        needed,
        next: next_step(ctx, &mut *store, id)?,
    })
}

/// Runs the release jobs of a run if its gate holds.
pub async fn release(req: ReleaseRequest) -> Result<Outcome, EngineError> {
    let mut store = recorded(&req.ctx, &req.run)?;
    let id = store.resolve(&req.run)?;
    let released = release_run(
        &req.ctx,
        &req.cancel,
        &mut *store,
        id,
        &req.exec,
        req.again,
        false,
    )
    .await?;
    Ok(released.expect("only an automatic release stays at the gate"))
}

/// Runs the release jobs of run `id` if the gate holds. `automatic` (a run that goes on to its
/// release) goes through only when the gate asks for nothing more; otherwise the run stays at
/// the gate, says so, and there is no outcome.
pub(super) async fn release_run(
    ctx: &Context,
    cancel: &Cancel,
    store: &mut dyn Store,
    id: RunId,
    exec: &ExecOptions,
    again: bool,
    automatic: bool,
) -> Result<Option<Outcome>, EngineError> {
    let project = &ctx.project;
    let record = store.run(id)?;
    // A run of the fleet's queue may have been started by another machine.
    let (at, made, jobs) = (ctx.clone(), record.clone(), store.jobs(id)?);
    tokio::task::spawn_blocking(move || super::adopt::directory(&at, id, &made, &jobs))
        .await
        .map_err(|e| Internal::Backend(format!("making the run's directory stopped: {e}")))??;
    let run = RunDir::at(project, id);
    let pipeline = stored_pipeline(&run, &record)?;
    // A progressive release says first where it stands: done, or stopped by a verification.
    let taken = store.steps(id)?;
    let over = again && steps::starts_over(pipeline.steps(), &taken);
    let taken = if over { Vec::new() } else { taken };
    let next = match steps::next(id, pipeline.steps(), &taken) {
        Ok(next) => next,
        Err(refusal) => {
            store.audit(id, &ctx.actor, "release refused", &refusal.to_string())?;
            return Err(refusal.into());
        }
    };
    refuse_unless_releasable(store, &record, again, &ctx.actor, "release refused")?;
    let exec = &exec.following(&run);
    let jobs = store.jobs(id)?;
    let gates = steps::with_step_gate(run_gates(&pipeline, &jobs), &pipeline, next);
    let approvals = store.approvals(id)?;
    let unmet = gate::unmet(&gates, &record, &jobs, &approvals, ctx.clock.now());
    if !unmet.is_empty() {
        if automatic {
            announce(ctx, store, id)?;
            return Ok(None);
        }
        store.audit(id, &ctx.actor, "release refused", &unmet[0].to_string())?;
        return Err(Refusal::Gate { run: id, unmet }.into());
    }
    // Signals from outside are asked for only now, when nothing recorded stands in the way.
    let unmet = signals::error_budgets(ctx, store, id, &pipeline, &gates).await?;
    if !unmet.is_empty() {
        if automatic {
            let reasons: Vec<String> = unmet.iter().map(ToString::to_string).collect();
            let next = format!("release {id} waits at the gate: {}", reasons.join("; "));
            ctx.emit(EventKind::AwaitingRelease { run_id: id, next });
            return Ok(None);
        }
        store.audit(id, &ctx.actor, "release refused", &unmet[0].to_string())?;
        return Err(Refusal::Gate { run: id, unmet }.into());
    }
    // Release jobs `only:` left out when the run started stay out.
    let left_out: Vec<String> = jobs
        .iter()
        .filter(|j| j.phase == store::Phase::Release && j.status == "left_out")
        .map(|j| j.name.clone())
        .collect();
    let Setup {
        files,
        mut plan,
        granted,
        secrets,
    } = release_setup(ctx, exec, id, &run, &pipeline, &left_out).await?;
    if let Some(n) = next {
        let step = &n.steps[n.index];
        steps::export(&mut plan, &step.label(n.index), step.percent);
    }
    exec.stop_orphans(ctx, store, id).await?;
    store.claim_run(id, record.state, RunState::Releasing)?;
    // Only the process that took the run over owns its directory.
    let run = RunDir::open(project, id)
        .map_err(Internal::io(format!("open the directory of run {id}")))?;
    if let Err(e) = super::adopt::artifacts(ctx, &plan, &jobs, &run).await {
        // Nothing ran: the run is back where it was.
        store.claim_run(id, RunState::Releasing, record.state)?;
        return Err(e);
    }
    if over {
        store.clear_steps(id)?;
    }
    let how = match next {
        Some(n) if over => format!("started over (--again): {}", steps::started(n)),
        Some(n) => steps::started(n),
        None if record.state == RunState::Released => "released again (--again)".into(),
        None => "release started".into(),
    };
    store.audit(id, &ctx.actor, "release", &how)?;
    audit_grants(ctx, store, id, &granted)?;

    // The release runs for the run's own commit, on its own snapshot and artifacts.
    let git = recorded_facts(project, &record, &run);
    let result = exec
        .execute(
            ctx,
            cancel,
            Work {
                plan: &plan,
                run: &run,
                phase: store::Phase::Release,
                git: &git,
                source: &files.dir,
                pipeline_file: &record.pipeline_file,
                secrets: &secrets,
                reuse: None,
                held: None,
                epoch: crate::store::UNCLAIMED,
            },
        )
        .await?;
    match next {
        Some(n) => steps::settle(ctx, cancel, store, id, result, n)
            .await
            .map(Some),
        None => finish(ctx, store, id, result, true, true).map(Some),
    }
}

/// Refuses, in one sentence and in the audit trail, a run that is not waiting at its gate.
fn refuse_unless_releasable(
    store: &mut dyn Store,
    record: &RunRecord,
    again: bool,
    actor: &str,
    action: &str,
) -> Result<(), EngineError> {
    match record.state {
        RunState::AwaitingRelease | RunState::ReleaseFailed => Ok(()),
        RunState::Released if again => Ok(()),
        state => {
            let refusal = Refusal::NotReleasable {
                run: record.id,
                state,
            };
            store.audit(record.id, actor, action, &refusal.to_string())?;
            Err(refusal.into())
        }
    }
}

/// Tells the request's sink that run `id` stops at its gate, and what the gate waits for.
pub(super) fn announce(ctx: &Context, store: &mut dyn Store, id: RunId) -> Result<(), EngineError> {
    let next = next_step(ctx, store, id)?;
    ctx.emit(EventKind::AwaitingRelease { run_id: id, next });
    Ok(())
}

/// The gates of the release jobs the run's release runs: a release job `only:` left out when
/// the run started has no say.
fn run_gates<'a>(pipeline: &'a Pipeline, jobs: &[JobRecord]) -> Vec<(&'a str, Gate)> {
    let left_out = |name: &str| {
        jobs.iter()
            .any(|j| j.name == name && j.status == "left_out")
    };
    pipeline
        .gates()
        .into_iter()
        .filter(|(name, _)| !left_out(name))
        .collect()
}

/// One line that says what run `id`'s gate waits for and what to type next.
pub fn next_step(ctx: &Context, store: &mut dyn Store, id: RunId) -> Result<String, EngineError> {
    let record = store.run(id)?;
    let run = RunDir::at(&ctx.project, id);
    let pipeline = stored_pipeline(&run, &record)?;
    let approvals = store.approvals(id)?;
    let jobs = store.jobs(id)?;
    let taken = store.steps(id)?;
    let next = match steps::next(id, pipeline.steps(), &taken) {
        Ok(next) => next,
        Err(refusal) => return Ok(refusal.to_string()),
    };
    let gates = steps::with_step_gate(run_gates(&pipeline, &jobs), &pipeline, next);
    let step = steps::for_step(next);
    let missing = (gate::approvals_needed(&gates) as usize).saturating_sub(approvals.len());
    let at: DateTime<Utc> = ctx.clock.now();
    let unmet = gate::unmet(&gates, &record, &jobs, &approvals, at);
    // A release job that Docker would refuse as privileged: the command to type says so.
    let asks = privileges_asked(pipeline.jobs.iter().filter(|j| j.gated));
    let (flag, why) = match asks.first().filter(|_| runs_on_docker(&run)) {
        Some((job, _, what)) => (
            " --allow-privileged",
            format!(
                " (release job `{}` asks for {what}, which pipe refuses without --allow-privileged)",
                job.name
            ),
        ),
        None => ("", String::new()),
    };
    Ok(if unmet.is_empty() {
        format!("release {id} is ready{step}: pipe release {id}{flag}{why}")
    } else if unmet
        .iter()
        .all(|u| u.condition == gate::Condition::Approvals)
    {
        format!(
            "release {id}{step} awaits {missing} approval{}: pipe approve {id}, then pipe release {id}{flag}{why}",
            if missing == 1 { "" } else { "s" }
        )
    } else {
        let reasons: Vec<String> = unmet.iter().map(ToString::to_string).collect();
        format!(
            "release {id} waits at the gate: {}{why}",
            reasons.join("; ")
        )
    })
}
