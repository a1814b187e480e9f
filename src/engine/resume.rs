//! A person's word on a fleet's job that is held: a deploy or release job whose agent's claim
//! ended (its lease ran out, or the agent gave it back) while it may have deployed is never run
//! again by itself; a person who checked resumes it, and the run's audit trail says who.

use super::record::{recorded, shared_name};
use super::{Context, EngineError, Internal, Refusal, StoreAt};
use crate::fleet::{Fleet, FleetError, Held};
use crate::store::RunId;

/// A held job, queued again.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resumed {
    pub run: RunId,
    pub job: String,
}

/// Resumes held job `job` of run `run` (a number or `last`) as the context's actor: it is
/// queued for the fleet's agents.
pub fn resume(ctx: &Context, run: &str, job: &str) -> Result<Resumed, EngineError> {
    let StoreAt::Shared(url) = &ctx.store else {
        return Err(EngineError::Invalid(
            "only a run of a fleet's shared store has held jobs: give its store with --store URL (or PIPE_STORE)".into(),
        ));
    };
    let by = ctx.actor.trim();
    if by.is_empty() {
        return Err(EngineError::Invalid(
            "resuming a job needs the name of who decides: `--by NAME`".into(),
        ));
    }
    let mut store = recorded(ctx, run)?;
    let id = store.resolve(run)?;
    let mut fleet = Fleet::connect_person(url, by).map_err(Internal::Fleet)?;
    let found = (fleet.job_named(&shared_name(&ctx.project), id, job)).map_err(Internal::Fleet)?;
    let queued = found.ok_or_else(|| {
        EngineError::Invalid(format!(
            "run {id} has no job `{job}` in the fleet's queue (`pipe show {id}` lists its jobs)"
        ))
    })?;
    match fleet.resume(queued, by) {
        Ok(()) => {}
        Err(FleetError::NotHeld { state, .. }) => {
            return Err(Refusal::NotHeld {
                run: id,
                job: job.to_string(),
                state,
            }
            .into())
        }
        Err(e) => return Err(Internal::Fleet(e).into()),
    }
    store.audit(
        id,
        by,
        "resumed",
        &format!("job `{job}` resumed: queued for the fleet's agents"),
    )?;
    Ok(Resumed {
        run: id,
        job: job.to_string(),
    })
}

/// The jobs of run `run` held for a person; none unless the context's store is a fleet's.
pub fn held_jobs(ctx: &Context, run: RunId) -> Result<Vec<Held>, EngineError> {
    let StoreAt::Shared(url) = &ctx.store else {
        return Ok(Vec::new());
    };
    let mut fleet = Fleet::connect_person(url, &ctx.actor).map_err(Internal::Fleet)?;
    Ok((fleet.held(&shared_name(&ctx.project), run)).map_err(Internal::Fleet)?)
}
