//! A run's life as a library: start, release, retry, approve, list and show, follow a log,
//! clean up. Every state change of a run happens here. Whoever calls (the CLI, a git hook, the
//! agent) passes in everything the engine needs — the project, who acts, the clock, a
//! cancellation handle, where events go — so several runs of different projects can go on at
//! once in one process. The engine never reads argv, the cwd or the environment, never prints
//! and never exits.

mod adopt;
mod artifacts;
mod author;
mod caches;
mod claimed;
mod error;
mod exec;
mod findings;
mod follow;
pub mod gate;
mod load;
mod outputs;
mod project;
mod publish;
mod record;
mod release;
mod release_setup;
mod resume;
mod retry;
mod rollback;
mod runs;
mod signals;
mod source;
mod start;
mod steps;
mod watching;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub use crate::backend::docker::Pull;
use crate::event::{Event, EventKind};
pub use crate::run::Interrupt;

pub use artifacts::{artifacts, copy_artifacts, Artifact};
pub use caches::caches;
pub use claimed::{
    fetch_commit, finish_run as finish_fleet_run, record_claimed, run_claimed, ClaimRequest,
    Claimed,
};
pub use error::{EngineError, Internal, Refusal};
pub use exec::{privileges_asked, BackendKind, ExecOptions};
pub use findings::{finding_tools, run_sarif};
pub use follow::{job_needs, log_since, LogPiece};
pub use load::load_plan;
pub use outputs::{copy_shared_artifacts, shared_artifacts, shared_job_log};
pub use project::{find_project, Project};
pub use record::KEPT_SNAPSHOTS;
pub use release::{approve, next_step, release, Approved, ReleaseRequest};
pub use resume::{held_jobs, resume, Resumed};
pub use retry::{retry, RetryRequest};
pub use rollback::rollback;
pub use runs::{
    clean, empty_checkouts, job_log, list_runs, service_logs, show, Cleaned, LogChunk, Shown,
};
pub use source::Source;
pub use start::{start, StartRequest};
pub use steps::{release_steps, StepView};
pub use watching::watch;

/// Who acts, when, where, and who hears about it: what every request carries.
#[derive(Clone)]
pub struct Context {
    /// The project's directory: its pipeline file, snapshots and `.pipe` store are there.
    pub project: PathBuf,
    /// Who is acting, for approvals and the audit trail.
    pub actor: String,
    pub clock: Clock,
    /// Where the request's events go, in order (see [`crate::event`]); `None` for nowhere.
    pub events: Option<EventSink>,
    /// The secret values to hide in all that is said and kept; the engine adds a run's as it
    /// resolves them, so the caller's handle hides them too (in errors, in tracing).
    pub masks: crate::mask::Masks,
    /// Where the project's runs are recorded.
    pub store: StoreAt,
    /// Where runs recorded in a shared store keep their logs and artifacts, and reused jobs
    /// are found, for every agent; `None`: on this machine only.
    pub objects: Option<crate::objects::Objects>,
}

/// Where a project's runs are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreAt {
    /// The embedded store, `.pipe/pipe.db` in the project.
    #[default]
    Project,
    /// A PostgreSQL database a team shares (`postgres://…`), where the project's runs are those
    /// of its folder's name (an agent's clone is named as its repository).
    Shared(String),
}

impl Context {
    fn emit(&self, kind: EventKind) {
        if let Some(events) = &self.events {
            let mut event = Event::now(kind);
            self.masks.current().event(&mut event);
            let _ = events.send(event);
        }
    }
}

/// Where events are sent. Unbounded: the scheduler never waits on a slow reader.
pub type EventSink = tokio::sync::mpsc::UnboundedSender<Event>;

/// The time the gate is judged at.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    /// A fixed time, for tests and rehearsals inside or outside a freeze window.
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => at,
        }
    }
}

/// Asks a request's jobs to stop: the first request stops them gracefully, the next kills.
/// Cloned handles are one handle; each request gets its own.
#[derive(Clone)]
pub struct Cancel(Arc<watch::Sender<Vec<Interrupt>>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(watch::channel(Vec::new()).0))
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn request(&self, kind: Interrupt) {
        self.0.send_modify(|asked| asked.push(kind));
    }

    pub fn requested(&self) -> bool {
        !self.0.borrow().is_empty()
    }

    fn subscribe(&self) -> watch::Receiver<Vec<Interrupt>> {
        self.0.subscribe()
    }
}

/// How a run (or its release, or retry) ended, once recorded.
#[derive(Debug)]
pub struct Outcome {
    pub run: crate::store::RunId,
    pub state: crate::store::RunState,
    pub result: crate::run::RunResult,
}
