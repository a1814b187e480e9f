//! `pipe release RUN --rollback`: runs the release jobs' `rollback:` scripts once for each step
//! the run's progressive release took, newest first, on the run's own snapshot and artifacts,
//! each time with that step's PIPE_RELEASE_STEP and PIPE_RELEASE_PERCENT. Each step rolled back
//! is recorded at once, so a rollback that fails halfway says which steps still stand, and a
//! second `--rollback` goes on from there.

use super::exec::Work;
use super::load::stored_pipeline;
use super::record::{audit_grants, finish, recorded_facts, recorded_store};
use super::release_setup::{release_setup, Setup};
use super::steps::{describe, say, Next};
use super::{EngineError, Internal, Outcome, Refusal, ReleaseRequest};
use crate::event::RunStatus;
use crate::store::{self, RunState, StepStatus, Store};
use crate::workspace::RunDir;

/// Rolls back the steps run `req.run`'s release took (`req.again` does not apply).
pub async fn rollback(req: ReleaseRequest) -> Result<Outcome, EngineError> {
    let ctx = &req.ctx;
    let project = &ctx.project;
    let mut sqlite = recorded_store(project, &req.run)?;
    let store: &mut dyn Store = &mut sqlite;
    let id = store.resolve(&req.run)?;
    let record = store.run(id)?;
    let run = RunDir::at(project, id);
    let pipeline = stored_pipeline(&run, &record)?;
    // Newest first: what was rolled out last is undone first.
    let taken: Vec<_> = store
        .steps(id)?
        .into_iter()
        .filter(|s| s.status != StepStatus::RolledBack)
        .rev()
        .collect();
    let jobs = store.jobs(id)?;
    let left_out = |name: &str| {
        jobs.iter()
            .any(|j| j.name == name && j.status == "left_out")
    };
    let has_script = pipeline
        .jobs
        .iter()
        .any(|j| j.gated && !j.rollback.is_empty() && !left_out(&j.name));
    let why = if !matches!(
        record.state,
        RunState::AwaitingRelease | RunState::ReleaseFailed | RunState::Released
    ) {
        Some(format!(
            "it is {}, and only a run whose release took steps is rolled back",
            record.state.as_str().replace('_', " ")
        ))
    } else if pipeline.steps().is_empty() {
        Some("its release has no `steps:`; to go back to what an earlier run released, release that run again: pipe release RUN --again".into())
    } else if taken.is_empty() {
        Some("its release has taken no step that stands, so there is nothing to roll back".into())
    } else if !has_script {
        Some("no release job of it has a `rollback:` script".into())
    } else {
        None
    };
    if let Some(why) = why {
        store.audit(id, &ctx.actor, "rollback refused", &why)?;
        return Err(Refusal::Rollback { run: id, why }.into());
    }

    // The release jobs with a rollback script run it instead of their own; the others (and
    // those `only:` left out) count as done, handing on their artifacts.
    let mut undo = pipeline.clone();
    let mut done = Vec::new();
    for job in undo.jobs.iter_mut().filter(|j| j.gated) {
        if job.rollback.is_empty() || left_out(&job.name) {
            done.push(job.name.clone());
        } else {
            job.script = std::mem::take(&mut job.rollback);
        }
    }
    let exec = &req.exec.following(&run);
    let Setup {
        files,
        plan,
        granted,
        secrets,
    } = release_setup(ctx, exec, id, &run, &undo, &done).await?;
    exec.stop_orphans(ctx, store, id).await?;
    store.claim_run(id, record.state, RunState::Releasing)?;
    let run = RunDir::open(project, id)
        .map_err(Internal::io(format!("open the directory of run {id}")))?;
    let named: Vec<String> = taken.iter().map(describe).collect();
    store.audit(
        id,
        &ctx.actor,
        "rollback",
        &format!("rolling back {}, newest first", named.join(", ")),
    )?;
    audit_grants(ctx, store, id, &granted)?;

    let git = recorded_facts(project, &record, &run);
    let steps = pipeline.steps();
    let mut last = None;
    for step in &taken {
        let index = step.step as usize - 1;
        let at = Next { index, steps };
        let label = steps[index].label(index);
        let mut plan = plan.clone();
        super::steps::export(&mut plan, &label, step.percent);
        say(
            ctx,
            id,
            at,
            "rolling_back",
            format!("rolling back {}", describe(step)),
        );
        let result = exec
            .execute(
                ctx,
                &req.cancel,
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
        let failed = result.status != RunStatus::Passed
            || result.pipe_failure.is_some()
            || result.backend_lost.is_some();
        if failed {
            let stand: Vec<String> = taken
                .iter()
                .skip_while(|s| s.step != step.step)
                .map(describe)
                .collect();
            store.audit(
                id,
                &ctx.actor,
                "rollback failed",
                &format!(
                    "the rollback of {} did not pass; still standing: {}",
                    describe(step),
                    stand.join(", ")
                ),
            )?;
            return finish(ctx, store, id, result, true, true);
        }
        store.record_step(
            id,
            &store::StepRecord {
                status: StepStatus::RolledBack,
                detail: Some(format!("rolled back by {}", ctx.actor)),
                at: ctx.clock.now(),
                ..step.clone()
            },
        )?;
        store.audit(
            id,
            &ctx.actor,
            "rollback",
            &format!("{} rolled back", describe(step)),
        )?;
        say(
            ctx,
            id,
            at,
            "rolled_back",
            format!("{} rolled back", describe(step)),
        );
        last = Some(result);
    }
    // What was released is undone: the release did not stand.
    store.set_state(id, RunState::ReleaseFailed, true)?;
    store.audit(
        id,
        &ctx.actor,
        "rolled back",
        &format!("rolled back {}", named.join(", ")),
    )?;
    Ok(Outcome {
        run: id,
        state: RunState::ReleaseFailed,
        result: last.expect("at least one step was taken"),
    })
}
