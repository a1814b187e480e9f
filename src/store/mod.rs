//! Recorded runs: each run and its jobs, approvals, and an append-only audit trail. Behind the
//! small [`Store`] interface: the embedded SQLite store lives in `.pipe/pipe.db` of the project;
//! a team's agents and laptops share a PostgreSQL one.

#[cfg(test)]
mod contract;
mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Where the embedded store lives in a project, as messages name it.
pub const DB_PATH: &str = ".pipe/pipe.db";

/// The database's own error, whichever database holds the store: only the store's
/// implementation knows its type.
pub type DbError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the run store {DB_PATH} failed: {0}")]
    Db(DbError),
    /// The store could not be opened or set up: not a database, a disk that is full, …
    #[error("cannot open the run store {DB_PATH}: {0}")]
    Open(DbError),
    #[error("cannot open the run store {DB_PATH}: {0}")]
    Io(#[from] std::io::Error),
    /// The shared store (by its URL without the password) failed or cannot be reached.
    #[error("the run store at {0} failed: {1}")]
    Shared(String, DbError),
    #[error("cannot read the run directories in .pipe/runs: {0}")]
    RunDirs(std::io::Error),
    #[error("no run {0}")]
    NoSuchRun(String),
    /// Another pipe process changed the run between reading it and taking it over.
    #[error("run {id} is {} now: another pipe process took it over first", .now.as_str().replace('_', " "))]
    TakenOver { id: RunId, now: RunState },
}

pub type RunId = i64;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Passed,
    Failed,
    /// Stopped by a signal, or its pipe process died (`kill -9`, a crash, a reboot).
    Interrupted,
    /// Everything before the gate passed; the release jobs wait for `pipe release`.
    AwaitingRelease,
    Releasing,
    Released,
    ReleaseFailed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Passed => "passed",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::AwaitingRelease => "awaiting_release",
            RunState::Releasing => "releasing",
            RunState::Released => "released",
            RunState::ReleaseFailed => "release_failed",
        }
    }

    pub fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "passed" => RunState::Passed,
            "failed" => RunState::Failed,
            "awaiting_release" => RunState::AwaitingRelease,
            "releasing" => RunState::Releasing,
            "released" => RunState::Released,
            "release_failed" => RunState::ReleaseFailed,
            _ => RunState::Interrupted,
        }
    }

    /// A process is (or was) working on the run.
    pub fn is_active(self) -> bool {
        matches!(self, RunState::Running | RunState::Releasing)
    }
}

/// What is known when a run starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub pipeline_name: String,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub tags: Vec<String>,
    /// Uncommitted changes the run's snapshot carries: the paths that differ from `commit`
    /// (`None`: no commit to compare with, or git could not tell).
    pub changed_paths: Option<u32>,
    /// `run`, `hook`, `retry of 3`, …
    pub trigger: String,
    pub actor: String,
}

/// Serialized as `pipe runs --output json` and `pipe show` print it: named as in the event
/// stream (`run_id`, `job`, `duration_s`).
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    #[serde(rename = "run_id")]
    pub id: RunId,
    pub pipeline_name: String,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub tags: Vec<String>,
    /// As in [`NewRun`]; also `None` for runs recorded before pipe counted them.
    pub changed_paths: Option<u32>,
    pub trigger: String,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Environments that a passed job of the run deployed to.
    pub environments: Vec<String>,
    pub releases: u32,
}

impl RunRecord {
    /// The run's snapshot is not known to be its commit's content: it carries uncommitted
    /// changes, or nobody counted them.
    pub fn maybe_dirty(&self) -> bool {
        self.changed_paths != Some(0)
    }
}

/// Which part of a run a job belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Main,
    Release,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    #[serde(rename = "job")]
    pub name: String,
    pub stage: String,
    pub phase: Phase,
    pub environment: Option<String>,
    /// `pending`, `waiting` (for its `concurrency:` group; the note says for whom), `running`, `passed`, `failed`, `timed_out`, `cancelled`, `errored`,
    /// `skipped`, `allowed_failure`, `left_out` (by `only:`), or when its process died `interrupted` (it was running)
    /// or `not_started`.
    pub status: String,
    pub attempts: u32,
    pub exit_code: Option<i64>,
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration_ms: Option<u64>,
    pub note: Option<String>,
    pub log: String,
    pub artifacts: Vec<String>,
    /// A scan job's findings per severity, for gates that look at them.
    pub findings: Option<crate::scan::Counts>,
    /// The image a `build_image` job built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::image::BuiltImage>,
    /// What a Docker job changed outside its workspace, when it changed anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::Drift>,
    /// The claim of a fleet's queue whose log and artifacts (in the object store) are the
    /// run's: the one whose finish the queue accepted; [`UNCLAIMED`] for a job not run from
    /// the queue.
    #[serde(skip_serializing_if = "unclaimed")]
    pub epoch: i64,
}

/// The epoch of a job not run from a fleet's queue (a plain `pipe run`, a release): claims
/// count from 1, so no claim's outputs are named so.
pub const UNCLAIMED: i64 = 0;

fn unclaimed(epoch: &i64) -> bool {
    *epoch == UNCLAIMED
}

/// Milliseconds as seconds, as the events give durations.
fn seconds<S: serde::Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_f64(*ms as f64 / 1000.0),
        None => s.serialize_none(),
    }
}

impl JobRecord {
    /// Counts as done for what comes after it.
    pub fn succeeded(&self) -> bool {
        // A job `only:` left out is not part of the run: nothing to rerun, nothing that holds
        // the gate.
        matches!(
            self.status.as_str(),
            "passed" | "allowed_failure" | "left_out"
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub by: String,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// Where a step of a progressive release stands once it was taken (see docs/releases.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Its jobs passed, and its verification too if it has one.
    Passed,
    /// Its jobs failed, or it was stopped before its verification: `pipe release` runs it again.
    Failed,
    /// Its jobs passed and its verification did not: the release stops here.
    VerifyFailed,
    /// `pipe release RUN --rollback` undid it.
    RolledBack,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::VerifyFailed => "verify_failed",
            StepStatus::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        [
            StepStatus::Passed,
            StepStatus::Failed,
            StepStatus::VerifyFailed,
            StepStatus::RolledBack,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// A step of a run's progressive release that was taken, as last recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// 1-based, in the order of `steps:`.
    pub step: u32,
    pub name: Option<String>,
    pub percent: u32,
    pub status: StepStatus,
    /// What its verification measured, or why it failed.
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// The recorded runs of one project.
pub trait Store: Send {
    /// Records a new run owned by this process and returns its id (1, 2, 3, … per project),
    /// never one that a run directory of the project has already.
    fn create_run(
        &mut self,
        run: &NewRun,
        jobs: &[(String, String, Phase, Option<String>)],
    ) -> Result<RunId, StoreError>;
    /// Takes a run over for a later phase (release, retry) by this process, moving it from
    /// `from` (the state the caller judged) to `to` in one step, so that of two processes
    /// releasing the same run only one does.
    fn claim_run(&mut self, id: RunId, from: RunState, to: RunState) -> Result<(), StoreError>;
    fn set_state(&mut self, id: RunId, state: RunState, ended: bool) -> Result<(), StoreError>;
    fn job_started(
        &mut self,
        id: RunId,
        job: &str,
        attempt: u32,
        log: &str,
    ) -> Result<(), StoreError>;
    fn job_finished(&mut self, id: RunId, job: &JobRecord) -> Result<(), StoreError>;
    /// The image a `build_image` job built.
    fn job_built(
        &mut self,
        id: RunId,
        job: &str,
        image: &crate::image::BuiltImage,
    ) -> Result<(), StoreError>;
    /// What a job changed outside its workspace.
    fn job_drift(
        &mut self,
        id: RunId,
        job: &str,
        drift: &crate::drift::Drift,
    ) -> Result<(), StoreError>;
    /// Resets jobs to pending for a rerun.
    fn reset_jobs(&mut self, id: RunId, jobs: &[String]) -> Result<(), StoreError>;
    /// `1`, `12` or `last`.
    fn resolve(&mut self, run: &str) -> Result<RunId, StoreError>;
    fn run(&mut self, id: RunId) -> Result<RunRecord, StoreError>;
    /// Newest first; only runs that deployed to `environment` when given.
    fn runs(
        &mut self,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;
    fn jobs(&mut self, id: RunId) -> Result<Vec<JobRecord>, StoreError>;
    /// Records an approval; false when this approver had already approved.
    fn approve(
        &mut self,
        id: RunId,
        by: &str,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    fn approvals(&mut self, id: RunId) -> Result<Vec<Approval>, StoreError>;
    fn audit(
        &mut self,
        id: RunId,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), StoreError>;
    fn audit_trail(&mut self, id: RunId) -> Result<Vec<AuditEntry>, StoreError>;
    /// Records where a step of the run's progressive release stands, replacing what was
    /// recorded for that step before.
    fn record_step(&mut self, id: RunId, step: &StepRecord) -> Result<(), StoreError>;
    /// The steps taken, in order of `step`.
    fn steps(&mut self, id: RunId) -> Result<Vec<StepRecord>, StoreError>;
    /// Forgets the steps taken, for a progressive release that starts over (`pipe release RUN
    /// --again`); the audit trail keeps what they were.
    fn clear_steps(&mut self, id: RunId) -> Result<(), StoreError>;
}
