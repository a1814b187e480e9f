use super::JobId;
use crate::pg::{self, PgError};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Connect(#[from] PgError),
    #[error("the fleet's queue failed: {0}")]
    Db(#[from] pg::Error),
    /// A write about a job with an epoch that is no longer the job's: the lease ran out and the
    /// job moved on without this agent.
    #[error("job {job} (`{name}`) was claimed again since this agent's claim {epoch}: it is {state} at claim {now}; this agent's write is refused")]
    Fenced {
        job: JobId,
        name: String,
        epoch: i64,
        now: i64,
        state: String,
    },
    #[error("no job {0} in the fleet's queue")]
    NoSuchJob(JobId),
    /// Only a held job is resumed by a person.
    #[error("job {job} is {state}, not held: there is nothing to resume")]
    NotHeld { job: JobId, state: String },
}
