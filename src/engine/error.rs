//! What the engine answers instead of an outcome, by whose fault: the user's input, the
//! environment (no backend), the gate or the run's state (a refusal), or pipe itself.
//! Frontends map the kinds to their own terms (exit codes, HTTP statuses) in one place.

use std::path::PathBuf;

use super::gate::Unmet;
use crate::pipeline::{LoadError, Problem};
use crate::store::{RunId, RunState, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Problems found after loading, e.g. by the planner or the backend's checks.
    #[error("invalid pipeline")]
    Plan {
        file: PathBuf,
        problems: Vec<Problem>,
    },
    /// A request that names something that is not there (an unknown run or job, say).
    #[error("{0}")]
    Invalid(String),
    /// No backend answers where the jobs would run.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Internal(#[from] Internal),
}

/// Why the engine will not do what was asked: the gate's conditions do not hold, or the run is
/// in no state for it. Each says so in one sentence.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{}", not_releasable(*.run, *.state))]
    NotReleasable { run: RunId, state: RunState },
    /// The first of the gate's unmet conditions names the refusal; all are kept.
    #[error("run {run} cannot be released: {}", .unmet[0])]
    Gate { run: RunId, unmet: Vec<Unmet> },
    #[error("the source snapshot of run {0} is gone, so it cannot be released")]
    ReleaseSnapshotGone(RunId),
    #[error("the source snapshot of run {run} is gone: pipe keeps those of the {kept} newest runs and of runs that reached the release gate; start a new run with `pipe run`")]
    RetrySnapshotGone { run: RunId, kept: usize },
    #[error("run {0} is still running")]
    StillRunning(RunId),
    #[error("run {run} has no failed jobs to retry (it is {})", .state.as_str().replace('_', " "))]
    NothingFailed { run: RunId, state: RunState },
    #[error("{}:{}:{}: job `{job}` asks for {what}, which pipe refuses unless you pass --allow-privileged", .file.display(), .line, .col)]
    Privileged {
        file: PathBuf,
        line: u32,
        col: u32,
        job: String,
        what: String,
    },
    #[error("{}:{}:{}: job `{job}` asks for `network: false`, which the local backend cannot give (its jobs are host processes on the host's network): run it with --backend docker", .file.display(), .line, .col)]
    NetworkOnHost {
        file: PathBuf,
        line: u32,
        col: u32,
        job: String,
    },
    #[error("{}:{}:{}: job `{job}` has `services`, which the local backend cannot run (they are containers on a network private to the job): run it with --backend docker", .file.display(), .line, .col)]
    ServicesOnHost {
        file: PathBuf,
        line: u32,
        col: u32,
        job: String,
    },
    /// Another pipe process changed the run between reading it and taking it over.
    #[error("run {run} is {} now: another pipe process took it over first", .now.as_str().replace('_', " "))]
    TakenOver { run: RunId, now: RunState },
    /// A request that may never deploy (a git hook's) asked to go on to the release.
    #[error("this run never deploys or releases, so it cannot go on to the release")]
    NeverReleases,
    #[error("run {run} still has jobs left running by a pipe process that is gone, and they cannot be stopped: {why}")]
    Orphans { run: RunId, why: String },
    /// The run's author approved, and a gate wants approvers other than the author.
    #[error("an approval of run {run} by its author ({author}) does not count: release job `{job}`'s gate wants approvers other than the author (`not_author`)")]
    OwnApproval {
        run: RunId,
        author: String,
        job: String,
    },
    /// Where the run's progressive release stands allows no next step.
    #[error("run {run} cannot be released: {why}")]
    Step { run: RunId, why: String },
    #[error("run {run} cannot be rolled back: {why}")]
    Rollback { run: RunId, why: String },
    /// Only a job held for a person is resumed.
    #[error("job `{job}` of run {run} is {state}, not held: only a deploy or release job held after its agent's claim ended is resumed")]
    NotHeld {
        run: RunId,
        job: String,
        state: String,
    },
}

fn not_releasable(id: RunId, state: RunState) -> String {
    match state {
        RunState::Released => format!("run {id} is already released; `pipe release {id} --again` releases it once more"),
        RunState::Running => format!("run {id} is still running"),
        RunState::Releasing => format!("run {id} is being released by another pipe process"),
        RunState::Failed => format!("run {id} failed, and only a run whose jobs before the gate all passed can be released"),
        RunState::Interrupted => format!("run {id} was interrupted before its jobs finished; `pipe retry {id} --failed` finishes it"),
        RunState::Passed => format!("run {id} has no release stage: there is nothing to release"),
        RunState::AwaitingRelease | RunState::ReleaseFailed => format!("run {id} is waiting at its gate"),
    }
}

/// pipe's own failures, each saying what pipe was doing: never a job's result.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    /// The run store (its messages name `.pipe/pipe.db`).
    #[error(transparent)]
    Store(StoreError),
    /// An I/O error on pipe's own files or streams.
    #[error("cannot {doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
    /// A run that pipe had to stop (after recording it failed with the reason, if it could).
    #[error("run {run} failed because pipe could not go on: {why}")]
    Run { run: RunId, why: String },
    /// The backend failed in a way that is no job's fault.
    #[error("{0}")]
    Backend(String),
    /// A kept checkout of a commit's tree could not be written.
    #[error(transparent)]
    Checkout(crate::workspace::checkout::CheckoutError),
    /// The built-in scanners could not read what they scan.
    #[error("cannot scan: {0}")]
    Scan(#[from] crate::scan::ScanError),
    /// The jobs' cache folder could not be read or changed.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// A fleet's queue (a run's jobs in it, or a claim of one) failed.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// A watch session cannot watch the project's files.
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
}

impl Internal {
    /// `Internal::io("write the log")` as an error mapper.
    pub fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let doing = doing.into();
        move |source| EngineError::Internal(Internal::Io { doing, source })
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchRun(run) => {
                EngineError::Invalid(format!("no run {run}: `pipe runs` lists the recorded runs"))
            }
            StoreError::TakenOver { id, now } => Refusal::TakenOver { run: id, now }.into(),
            other => Internal::Store(other).into(),
        }
    }
}
