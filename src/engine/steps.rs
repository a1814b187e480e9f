//! A progressive release (`steps:` on a release job): which step a run's release stands at,
//! the next step's own gate, each step's variables, the verification after a step (once its bake
//! time is over, which a cancel cuts short) and where each step ends up, in the store and the
//! audit trail. Undoing the steps taken is `rollback.rs`.

use std::time::Duration;

use super::record::finish;
use super::{Cancel, Context, EngineError, Outcome, Refusal};
use crate::event::{EventKind, RunStatus};
use crate::pipeline::gate::Gate;
use crate::pipeline::{Pipeline, Step, Verify};
use crate::plan::Plan;
use crate::run::{Interrupt, RunResult};
use crate::signal::prometheus;
use crate::store::{RunId, RunState, StepRecord, StepStatus, Store};

/// The step a release runs: `steps[index]` of the pipeline's steps.
#[derive(Clone, Copy)]
pub(super) struct Next<'a> {
    pub index: usize,
    pub steps: &'a [Step],
}

impl<'a> Next<'a> {
    fn step(&self) -> &'a Step {
        &self.steps[self.index]
    }

    fn describe(&self) -> String {
        self.step().describe(self.index)
    }

    fn record(&self, status: StepStatus, detail: String, ctx: &Context) -> StepRecord {
        StepRecord {
            step: self.index as u32 + 1,
            name: self.step().name.clone(),
            percent: self.step().percent,
            status,
            detail: Some(detail),
            at: ctx.clock.now(),
        }
    }
}

/// The step `pipe release` runs next (`None`: the pipeline has no steps and releases at once),
/// or why no step may run: a verification failed or the release was rolled back (both stop it
/// for good), or every step was taken. A step whose jobs failed runs again.
pub(super) fn next<'a>(
    id: RunId,
    steps: &'a [Step],
    taken: &[StepRecord],
) -> Result<Option<Next<'a>>, Refusal> {
    if steps.is_empty() {
        return Ok(None);
    }
    let refuse = |why: String| Refusal::Step { run: id, why };
    let rolled_back = |r: &StepRecord| r.status == StepStatus::RolledBack;
    if taken.iter().all(rolled_back) && !taken.is_empty() {
        return Err(refuse(format!(
            "its release was rolled back; pipe release {id} --again starts it over from step 1"
        )));
    }
    if taken.iter().any(rolled_back) {
        return Err(refuse(format!(
            "its release was rolled back in part; pipe release {id} --rollback rolls back the steps still standing"
        )));
    }
    if let Some(r) = taken.iter().find(|r| r.status == StepStatus::VerifyFailed) {
        return Err(refuse(format!(
            "{} failed its verification ({}), so the release stops there: pipe release {id} --rollback rolls it back",
            describe(r),
            r.detail.as_deref().unwrap_or("no figures")
        )));
    }
    let index = match taken.last() {
        None => 0,
        Some(r) if r.status == StepStatus::Failed => r.step as usize - 1,
        Some(r) => r.step as usize,
    };
    if index >= steps.len() {
        let last = &steps[steps.len() - 1];
        return Err(refuse(format!(
            "its progressive release is complete: all {} steps were taken, the last to {}%; pipe release {id} --again starts it over from step 1",
            steps.len(),
            last.percent
        )));
    }
    Ok(Some(Next { index, steps }))
}

/// Whether `pipe release --again` starts a progressive release over from step 1: once it is
/// complete (every step passed) or rolled back (every step taken undone), as a re-run of a
/// finished rollout does in Argo Rollouts. A release midway goes on with its next step instead.
pub(super) fn starts_over(steps: &[Step], taken: &[StepRecord]) -> bool {
    let complete =
        taken.len() == steps.len() && taken.iter().all(|r| r.status == StepStatus::Passed);
    let rolled_back = taken.iter().all(|r| r.status == StepStatus::RolledBack);
    !steps.is_empty() && !taken.is_empty() && (complete || rolled_back)
}

/// `step 1 (canary, 10%)`, from what was recorded.
pub(super) fn describe(r: &StepRecord) -> String {
    match &r.name {
        Some(name) => format!("step {} ({name}, {}%)", r.step, r.percent),
        None => format!("step {} ({}%)", r.step, r.percent),
    }
}

/// The gates a release is judged by: the release jobs' own, and beside them the next step's,
/// named after the release job that declares the steps.
pub(super) fn with_step_gate<'a>(
    mut gates: Vec<(&'a str, Gate)>,
    pipeline: &'a Pipeline,
    next: Option<Next<'_>>,
) -> Vec<(&'a str, Gate)> {
    let stepped = pipeline
        .jobs
        .iter()
        .find(|j| j.gated && !j.steps.is_empty());
    if let (Some(gate), Some(job)) = (next.and_then(|n| n.step().gate.clone()), stepped) {
        gates.push((job.name.as_str(), gate));
    }
    gates
}

/// What the next step adds to the gate's line: `release 3 is ready for step 2 (50%): …`.
pub(super) fn for_step(next: Option<Next<'_>>) -> String {
    next.map(|n| format!(" for {} of {}", n.describe(), n.steps.len()))
        .unwrap_or_default()
}

/// Every job of the plan learns which step it runs: PIPE_RELEASE_STEP (the step's name, else
/// its 1-based number) and PIPE_RELEASE_PERCENT.
pub(super) fn export(plan: &mut Plan, label: &str, percent: u32) {
    for job in &mut plan.jobs {
        job.env
            .push(("PIPE_RELEASE_STEP".to_string(), label.to_string()));
        job.env
            .push(("PIPE_RELEASE_PERCENT".to_string(), percent.to_string()));
    }
}

pub(super) fn started(next: Next<'_>) -> String {
    format!("{} of {} started", next.describe(), next.steps.len())
}

/// Records how step `next` went once its jobs ran — verifying it first, after its bake time,
/// when they passed — and the run's new state: back at the gate for the next step, released
/// after the last, release failed when its jobs or its verification failed.
pub(super) async fn settle(
    ctx: &Context,
    cancel: &Cancel,
    store: &mut dyn Store,
    id: RunId,
    mut result: RunResult,
    next: Next<'_>,
) -> Result<Outcome, EngineError> {
    let what = next.describe();
    let ended = result.status != RunStatus::Passed
        || result.pipe_failure.is_some()
        || result.backend_lost.is_some();
    if ended {
        let why = match result.status {
            RunStatus::Interrupted => "stopped before its jobs finished",
            _ => "its release jobs failed",
        };
        store.record_step(id, &next.record(StepStatus::Failed, why.into(), ctx))?;
        store.audit(
            id,
            &ctx.actor,
            "step",
            &format!("{what} failed: {why}; pipe release {id} runs it again"),
        )?;
        return finish(ctx, store, id, result, true, true);
    }
    let mut figures = String::from("its jobs passed");
    if let Some(verify) = &next.step().verify {
        say(ctx, id, next, "baking", format!(
            "{what} passed its jobs; verifying it after {} (Ctrl-C stops the release here, unverified)",
            verify.after_text
        ));
        if let Some(kind) = bake(cancel, verify.after).await {
            let why = "stopped during its bake time, before its verification";
            store.record_step(id, &next.record(StepStatus::Failed, why.into(), ctx))?;
            store.audit(
                id,
                &ctx.actor,
                "step",
                &format!("{what} {why}; pipe release {id} runs it again"),
            )?;
            result.status = RunStatus::Interrupted;
            result.interrupted_by = Some(kind);
            return finish(ctx, store, id, result, true, true);
        }
        let (passed, measured) = check(verify).await;
        let verdict = if passed {
            "verified"
        } else {
            "failed its verification"
        };
        store.audit(
            id,
            &ctx.actor,
            "verify",
            &format!("{what} {verdict}: {measured}"),
        )?;
        say(
            ctx,
            id,
            next,
            if passed { "verified" } else { "verify_failed" },
            format!("{what} {verdict}: {measured}"),
        );
        if !passed {
            store.record_step(id, &next.record(StepStatus::VerifyFailed, measured, ctx))?;
            result.status = RunStatus::Failed;
            return finish(ctx, store, id, result, true, true);
        }
        figures = measured;
    }
    store.record_step(id, &next.record(StepStatus::Passed, figures, ctx))?;
    if next.index + 1 == next.steps.len() {
        store.audit(
            id,
            &ctx.actor,
            "step",
            &format!("{what} passed: the last step"),
        )?;
        return finish(ctx, store, id, result, true, true);
    }
    let then = Next {
        index: next.index + 1,
        steps: next.steps,
    };
    let line = format!(
        "{what} passed; next: {}: pipe release {id}",
        then.describe()
    );
    store.set_state(id, RunState::AwaitingRelease, false)?;
    store.audit(id, &ctx.actor, "step", &line)?;
    say(ctx, id, next, "passed", line);
    Ok(Outcome {
        run: id,
        state: RunState::AwaitingRelease,
        result,
    })
}

pub(super) fn say(ctx: &Context, id: RunId, next: Next<'_>, status: &str, message: String) {
    ctx.emit(EventKind::ReleaseStep {
        run_id: id,
        step: next.index as u32 + 1,
        percent: next.step().percent,
        status: status.into(),
        message,
    });
}

/// Waits out a bake time; a cancel ends it early and is returned.
async fn bake(cancel: &Cancel, time: Duration) -> Option<Interrupt> {
    let mut asked = cancel.subscribe();
    let sleep = tokio::time::sleep(time);
    tokio::pin!(sleep);
    loop {
        if let Some(kind) = asked.borrow_and_update().first().copied() {
            return Some(kind);
        }
        tokio::select! {
            () = &mut sleep => return None,
            // The handle lives as long as the request: a closed one cancels nothing more.
            changed = asked.changed() => if changed.is_err() {
                (&mut sleep).await;
                return None;
            },
        }
    }
}

/// Asks Prometheus; passes when the value is below the threshold. A server that cannot be
/// asked, or gives no single number, fails the verification: an unverified step is not a good
/// one.
async fn check(verify: &Verify) -> (bool, String) {
    let asked = format!(
        "`{}` at {} after {}",
        verify.query, verify.prometheus, verify.after_text
    );
    match prometheus::query(&verify.prometheus, &verify.query).await {
        Ok(value) if value < verify.below => {
            (true, format!("{asked} was {value}, below {}", verify.below))
        }
        Ok(value) => (
            false,
            format!("{asked} was {value}, not below {}", verify.below),
        ),
        Err(e) => (false, format!("{asked} could not be read: {e}")),
    }
}

/// Where one step of a run's progressive release stands, for `pipe show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepView {
    /// 1-based.
    pub step: u32,
    pub name: Option<String>,
    pub percent: u32,
    /// `passed`, `failed`, `verify_failed`, `rolled_back` as recorded; for a step not taken,
    /// `next` (what `pipe release` runs next) or `pending`.
    pub status: String,
    /// What its verification measured, or why it failed.
    pub detail: Option<String>,
}

/// Every step of run `run`'s progressive release and where it stands; empty when its pipeline
/// has no steps.
pub fn release_steps(ctx: &Context, run: &str) -> Result<Vec<StepView>, EngineError> {
    let mut store = super::record::recorded_store(&ctx.project, run)?;
    let id = store.resolve(run)?;
    let record = store.run(id)?;
    let pipeline =
        super::load::stored_pipeline(&crate::workspace::RunDir::at(&ctx.project, id), &record)?;
    let taken = store.steps(id)?;
    // A run that never reached its gate has no next step.
    let releasable = matches!(
        record.state,
        RunState::AwaitingRelease | RunState::ReleaseFailed
    );
    let next = next(id, pipeline.steps(), &taken)
        .ok()
        .flatten()
        .filter(|_| releasable)
        .map(|n| n.index);
    Ok(pipeline
        .steps()
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let recorded = taken.iter().find(|r| r.step as usize == index + 1);
            let status = match (recorded, next == Some(index)) {
                (Some(r), false) => r.status.as_str().to_string(),
                (_, true) => "next".to_string(),
                (None, false) => "pending".to_string(),
            };
            StepView {
                step: index as u32 + 1,
                name: step.name.clone(),
                percent: step.percent,
                status,
                detail: recorded.and_then(|r| r.detail.clone()),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps() -> Vec<Step> {
        [10, 50, 100]
            .into_iter()
            .map(|percent| Step {
                name: (percent == 10).then(|| "canary".to_string()),
                percent,
                gate: None,
                verify: None,
            })
            .collect()
    }

    fn taken(step: u32, status: StepStatus) -> StepRecord {
        StepRecord {
            step,
            name: None,
            percent: 10,
            status,
            detail: Some("`q` was 0.5, not below 0.01".into()),
            at: chrono::Utc::now(),
        }
    }

    fn index(taken: &[StepRecord]) -> Result<usize, String> {
        let steps = steps();
        next(7, &steps, taken)
            .map(|n| n.unwrap().index)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_release_takes_the_next_step_and_a_failed_one_again() {
        assert_eq!(index(&[]), Ok(0));
        assert_eq!(index(&[taken(1, StepStatus::Passed)]), Ok(1));
        assert_eq!(
            index(&[taken(1, StepStatus::Passed), taken(2, StepStatus::Failed)]),
            Ok(1)
        );
        let all: Vec<_> = (1..=3).map(|s| taken(s, StepStatus::Passed)).collect();
        assert_eq!(
            index(&all),
            Err("run 7 cannot be released: its progressive release is complete: all 3 steps were taken, the last to 100%; pipe release 7 --again starts it over from step 1".into())
        );
        assert!(next(7, &[], &[]).unwrap().is_none());
    }

    #[test]
    fn a_failed_verification_stops_the_release_until_it_is_rolled_back() {
        assert_eq!(
            index(&[taken(1, StepStatus::VerifyFailed)]),
            Err("run 7 cannot be released: step 1 (10%) failed its verification (`q` was 0.5, not below 0.01), so the release stops there: pipe release 7 --rollback rolls it back".into())
        );
        assert!(index(&[taken(1, StepStatus::RolledBack)])
            .unwrap_err()
            .contains("rolled back; pipe release 7 --again"));
        assert!(index(&[
            taken(1, StepStatus::Passed),
            taken(2, StepStatus::RolledBack)
        ])
        .unwrap_err()
        .contains("rolled back in part; pipe release 7 --rollback"));
    }

    #[test]
    fn again_starts_over_a_complete_or_rolled_back_release_only() {
        let steps = steps();
        let of = |statuses: &[StepStatus]| -> Vec<StepRecord> {
            (1..).zip(statuses).map(|(s, st)| taken(s, *st)).collect()
        };
        use StepStatus::*;
        assert!(starts_over(&steps, &of(&[Passed, Passed, Passed])));
        assert!(starts_over(&steps, &of(&[RolledBack, RolledBack])));
        assert!(!starts_over(&steps, &of(&[])), "not started");
        assert!(!starts_over(&steps, &of(&[Passed, Passed])), "midway");
        assert!(!starts_over(&steps, &of(&[Passed, RolledBack])), "in part");
        assert!(
            !starts_over(&steps, &of(&[VerifyFailed])),
            "not rolled back"
        );
        assert!(!starts_over(&[], &[]), "no steps");
    }
}
