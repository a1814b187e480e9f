//! What happened, when: all that leaves the scheduler, and what the engine says around a run
//! (grants, stopping, the gate's next step). Everything a user sees (progress lines, plain
//! logs, JSON lines, log files, the agent's pages) consumes these.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::RunId;

/// Bumped when a field changes meaning or disappears; new fields do not bump it. The same
/// number versions every `--output json` of the run store (`pipe runs`, `pipe show`, `pipe
/// list`), which share the event stream's names: `run_id` (a number), `job`, `duration_s`.
/// Their JSON Schemas are docs/schemas/*.v{SCHEMA_VERSION}.json.
/// 2: `run_id` a number (was a string), a planned job's `job` (was `name`).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: u32,
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    pub fn now(kind: EventKind) -> Self {
        Event {
            schema: SCHEMA_VERSION,
            time: Utc::now(),
            kind,
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        run_id: RunId,
        pipeline: String,
        jobs: Vec<PlannedJob>,
    },
    JobStarted {
        job: String,
        attempt: u32,
    },
    /// Before its `job_started`: the job waits for its `concurrency:` group, which a job of
    /// another run holds; `reason` says which.
    JobWaiting {
        job: String,
        group: String,
        reason: String,
    },
    JobOutput {
        job: String,
        stream: Stream,
        line: String,
    },
    /// An attempt failed and another follows.
    JobRetrying {
        job: String,
        attempt: u32,
        reason: String,
    },
    JobFinished {
        job: String,
        status: JobStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
        #[serde(serialize_with = "seconds", rename = "duration_s")]
        duration: Duration,
        attempts: u32,
        /// A failure that does not fail the run (`allow_failure`).
        allowed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// A scan job's findings per severity.
        #[serde(skip_serializing_if = "Option::is_none")]
        findings: Option<crate::scan::Counts>,
        /// The job did not run: it passed in this earlier run with the same inputs, whose
        /// artifacts and log it took (`reused (run N)`).
        #[serde(skip_serializing_if = "Option::is_none")]
        reused_from: Option<RunId>,
    },
    /// A `build_image` job built an image (before its `job_finished`).
    ImageBuilt {
        job: String,
        image: crate::image::BuiltImage,
    },
    /// A `push` job pushed the image a `build_image` job built, by its id, as these tags.
    ImagePushed {
        job: String,
        image: crate::image::BuiltImage,
    },
    /// What a Docker job changed outside `/workspace` and `/tmp` (before its `job_finished`;
    /// none when it changed nothing there).
    JobDrift {
        job: String,
        drift: crate::drift::Drift,
    },
    JobSkipped {
        job: String,
        reason: String,
    },
    /// Right after `run_started`: a job that `only:` left out of the run (or that needs one
    /// that was), which is not part of the run and does not count for its result.
    JobLeftOut {
        job: String,
        stage: String,
        reason: String,
    },
    RunFinished {
        status: RunStatus,
        #[serde(serialize_with = "seconds", rename = "duration_s")]
        duration: Duration,
    },
    /// After `run_finished`: everything before the gate passed and the run stops there; `next`
    /// says what the gate waits for and what to type.
    AwaitingRelease {
        run_id: RunId,
        next: String,
    },
    /// A step of a progressive release: its jobs passed and it waits out its bake time
    /// (`baking`), its verification (`verified`, `verify_failed`), or it is done (`passed`);
    /// also during a rollback (`rolling_back`, `rolled_back`). `message` says it in a sentence.
    ReleaseStep {
        run_id: RunId,
        /// 1-based.
        step: u32,
        percent: u32,
        status: String,
        message: String,
    },
    /// Before a run: a job gets what pipe refuses unless allowed (`--allow-privileged`); also
    /// in the run's audit trail.
    PrivilegeGranted {
        job: String,
        /// `` `privileged: true` ``, `` the Docker socket `/var/run/docker.sock` as a volume ``, …
        what: String,
    },
    /// The run was asked to stop (`reason`: `interrupt` or `terminate`): the first time its
    /// jobs are stopped gracefully, after that (`kill`) killed.
    Stopping {
        kill: bool,
        reason: String,
    },
    /// `pipe run --watch`: the session waits for a change (after each run, or after a run that
    /// could not start); changes made from here on are not missed.
    Watching {},
    /// `pipe run --watch`: these files (relative to the project, sorted) changed, and a new run
    /// starts on them; its `run_started` follows.
    FilesChanged {
        paths: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedJob {
    #[serde(rename = "job")]
    pub name: String,
    pub stage: String,
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Passed,
    Failed,
    TimedOut,
    Cancelled,
    /// The backend could not run the job at all (image missing, engine error).
    Errored,
}

impl JobStatus {
    /// As people read it; the store's word (`timed_out`) with spaces, see [`crate::style`].
    pub fn label(self) -> &'static str {
        match self {
            JobStatus::Passed => "passed",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Errored => "errored",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    Failed,
    Interrupted,
}
