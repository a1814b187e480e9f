//! The release gate's decision: may a run's release jobs run now, and if not, what is unmet.
//! Shared by `pipe release`, `pipe show` and (later) the agent.

use chrono::{DateTime, Utc};

use crate::pipeline::gate::Gate;
use crate::store::{Approval, JobRecord, Phase, RunRecord};

/// The time the gate is judged at. `PIPE_NOW` (RFC 3339) stands in for the clock, so tests and
/// rehearsals can stand inside or outside a freeze window.
/// A `PIPE_NOW` that cannot be read is an error, never the real clock: a typo in a rehearsal
/// must not release.
pub fn now() -> Result<DateTime<Utc>, String> {
    match std::env::var("PIPE_NOW") {
        Err(_) => Ok(Utc::now()),
        Ok(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                format!(
                    "PIPE_NOW `{text}` is not an RFC 3339 time ({e}), e.g. 2026-11-27T17:30:00Z"
                )
            }),
    }
}

/// A condition of the gate that does not hold, as one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet(pub String);

/// Every unmet condition for releasing `run` at `at`, most fundamental first.
pub fn unmet(
    gate: &Gate,
    run: &RunRecord,
    jobs: &[JobRecord],
    approvals: &[Approval],
    at: DateTime<Utc>,
) -> Vec<Unmet> {
    let mut out = Vec::new();
    let bad: Vec<String> = jobs
        .iter()
        .filter(|j| j.phase == Phase::Main && !j.succeeded())
        .map(|j| format!("`{}` {}", j.name, j.status.replace('_', " ")))
        .collect();
    if !bad.is_empty() {
        out.push(Unmet(format!(
            "not every job before the gate passed: {}",
            bad.join(", ")
        )));
    }
    if !gate.allows_ref(run.branch.as_deref(), &run.tags) {
        let on = match (&run.branch, run.tags.is_empty()) {
            (Some(b), true) => format!("branch `{b}`"),
            (Some(b), false) => format!("branch `{b}` (tags {})", run.tags.join(", ")),
            (None, false) => format!("tags {}", run.tags.join(", ")),
            (None, true) => "no branch or tag".to_string(),
        };
        let mut allowed = Vec::new();
        if !gate.branches.is_empty() {
            allowed.push(format!("branches {}", gate.branches.join(", ")));
        }
        if !gate.tags.is_empty() {
            allowed.push(format!("tags {}", gate.tags.join(", ")));
        }
        out.push(Unmet(format!(
            "the run was built from {on}, and the gate allows only {}",
            allowed.join(" or ")
        )));
    }
    if (approvals.len() as u32) < gate.approvals {
        let by = if approvals.is_empty() {
            String::from("none yet")
        } else {
            approvals
                .iter()
                .map(|a| a.by.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(Unmet(format!(
            "it needs {} approval{} and has {} ({by}): pipe approve {}",
            gate.approvals,
            if gate.approvals == 1 { "" } else { "s" },
            approvals.len(),
            run.id
        )));
    }
    if let Some(window) = gate.frozen_at(at) {
        out.push(Unmet(format!(
            "releases are frozen now ({}; it is {} UTC)",
            window.text,
            at.format("%a %Y-%m-%d %H:%M")
        )));
    }
    out
}
