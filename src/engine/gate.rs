//! The release gate's decision: may a run's release jobs run now, and if not, what is unmet.
//! A pure function of the run's record, its release jobs' gates and the time the engine is given.

use chrono::{DateTime, Utc};

use crate::pipeline::gate::Gate;
use crate::scan::Counts;
use crate::store::{Approval, JobRecord, Phase, RunRecord};

/// Which condition does not hold, most fundamental first: what no approval can fix comes
/// before what one can, and a freeze window only matters once everything else holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// A job before the gate did not pass.
    JobsBefore,
    /// The run's branch or tags are not among those a release job's gate allows.
    Ref,
    /// A release job's gate names refs, and the run carries uncommitted changes.
    Committed,
    /// The run's scans found more than a release job's gate allows.
    Findings,
    Approvals,
    Freeze,
    /// A release job's error budget is spent or cannot be read (judged after all the others,
    /// when the release is asked for: see [`super::signals`]).
    ErrorBudget,
}

/// A condition of the gate that does not hold: which, whose (the release job whose gate asks
/// for it; `None` for the whole run) and why, as one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub condition: Condition,
    pub job: Option<String>,
    pub why: String,
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.job {
            Some(job) => write!(f, "release job `{job}`: {}", self.why),
            None => f.write_str(&self.why),
        }
    }
}

/// The approvals a release needs: it runs every release job, so the most any of them asks for.
pub fn approvals_needed(gates: &[(&str, Gate)]) -> u32 {
    gates.iter().map(|(_, g)| g.approvals).max().unwrap_or(0)
}

/// Every unmet condition for releasing `run` at `at`, most fundamental first. `gates` are the
/// release jobs' own gates: a release runs all of them, so each one's conditions must hold.
pub fn unmet(
    gates: &[(&str, Gate)],
    run: &RunRecord,
    jobs: &[JobRecord],
    approvals: &[Approval],
    at: DateTime<Utc>,
) -> Vec<Unmet> {
    let mut out = Vec::new();
    let bad: Vec<String> = jobs
        .iter()
        .filter(|j| j.phase == Phase::Main && !j.succeeded())
        .map(|j| format!("`{}` {}", j.name, crate::style::status_word(&j.status)))
        .collect();
    if !bad.is_empty() {
        out.push(Unmet {
            condition: Condition::JobsBefore,
            job: None,
            why: format!("not every job before the gate passed: {}", bad.join(", ")),
        });
    }
    for (job, gate) in gates {
        let of_job = |condition, why| Unmet {
            condition,
            job: Some(job.to_string()),
            why,
        };
        if !gate.allows_ref(run.branch.as_deref(), &run.tags) {
            out.push(of_job(Condition::Ref, wrong_ref(gate, run)));
        }
        if let Some(window) = gate.frozen_at(at) {
            out.push(of_job(
                Condition::Freeze,
                format!(
                    "releases are frozen now ({}; it is {} UTC)",
                    window.text,
                    at.format("%a %Y-%m-%d %H:%M")
                ),
            ));
        }
    }
    if let Some(over) = too_many_findings(gates, run, jobs) {
        out.push(over);
    }
    // Whether the snapshot is the commit's is the run's: one condition, named after the first
    // job whose gate names refs. A run without a commit is refused for its ref already.
    let vouching = gates.iter().find(|(_, g)| g.limits_refs());
    if let (Some((job, _)), true) = (vouching, run.commit.is_some() && run.maybe_dirty()) {
        out.push(Unmet {
            condition: Condition::Committed,
            job: Some(job.to_string()),
            why: uncommitted(run),
        });
    }
    // Approvals are the run's too: the one condition is named after the job that asks the most.
    let needed = approvals_needed(gates);
    if (approvals.len() as u32) < needed {
        let job = gates.iter().find(|(_, g)| g.approvals == needed);
        let by = if approvals.is_empty() {
            String::from("none yet")
        } else {
            approvals
                .iter()
                .map(|a| a.by.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(Unmet {
            condition: Condition::Approvals,
            job: job.map(|(name, _)| name.to_string()),
            why: format!(
                "it needs {needed} approval{} and has {} ({by}): pipe approve {}",
                if needed == 1 { "" } else { "s" },
                approvals.len(),
                run.id
            ),
        });
    }
    out.sort_by_key(|u| u.condition);
    out
}

/// The run's findings are its scan jobs' together; one condition, named after the first release
/// job whose limits they exceed, with every count over its limit and where to read them.
fn too_many_findings(gates: &[(&str, Gate)], run: &RunRecord, jobs: &[JobRecord]) -> Option<Unmet> {
    let scans: Vec<(&str, Counts)> = jobs
        .iter()
        .filter_map(|j| j.findings.map(|c| (j.name.as_str(), c)))
        .collect();
    let found = |severity| -> usize { scans.iter().map(|(_, c)| c.get(severity)).sum() };
    gates.iter().find_map(|(job, gate)| {
        let over: Vec<String> = gate
            .findings
            .iter()
            .filter(|(severity, most)| found(*severity) > *most)
            .map(|(severity, most)| {
                format!(
                    "{} {} (at most {most})",
                    found(*severity),
                    severity.as_str()
                )
            })
            .collect();
        if over.is_empty() {
            return None;
        }
        let logs: Vec<String> = scans
            .iter()
            .filter(|(_, c)| c.total() > 0)
            .map(|(name, _)| format!("pipe logs {} {name}", run.id))
            .collect();
        Some(Unmet {
            condition: Condition::Findings,
            job: Some(job.to_string()),
            why: format!(
                "the run's scans found {}: see pipe show {}{}",
                over.join(", "),
                run.id,
                if logs.is_empty() {
                    String::new()
                } else {
                    format!(" and {}", logs.join(", "))
                }
            ),
        })
    })
}

fn wrong_ref(gate: &Gate, run: &RunRecord) -> String {
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
    format!(
        "the run was built from {on}, and its gate allows only {}",
        allowed.join(" or ")
    )
}

/// A gate that names refs vouches for what those refs hold: a snapshot with changes on top of
/// the commit is not that.
fn uncommitted(run: &RunRecord) -> String {
    let id = run.id;
    let commit = run.commit.as_deref().unwrap_or_default();
    let on = match (&run.branch, run.tags.first()) {
        (Some(b), _) => b.clone(),
        (None, Some(t)) => format!("tag {t}"),
        (None, None) => format!("commit {}", &commit[..commit.len().min(8)]),
    };
    match run.changed_paths {
        Some(_) => format!(
            "run {id} was built from uncommitted changes on {on}; commit them and run again"
        ),
        None => format!(
            "run {id} was recorded without a count of its uncommitted changes on {on} (before pipe counted them, or git could not tell), so it may carry some; run again to release"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::gate::Freeze;
    use crate::store::RunState;

    fn run_on(branch: &str, changed_paths: Option<u32>) -> RunRecord {
        RunRecord {
            id: 7,
            pipeline_name: "p".into(),
            pipeline_file: "pipe.yml".into(),
            pipeline_sha256: "00".into(),
            commit: Some("0123456789abcdef".into()),
            branch: Some(branch.into()),
            tags: vec![],
            changed_paths,
            trigger: "run".into(),
            state: RunState::AwaitingRelease,
            started_at: Utc::now(),
            ended_at: None,
            environments: vec![],
            releases: 0,
        }
    }

    fn on(branches: &[&str]) -> Gate {
        Gate {
            branches: branches.iter().map(|b| b.to_string()).collect(),
            ..Default::default()
        }
    }

    fn approval(by: &str) -> Approval {
        Approval {
            by: by.into(),
            comment: None,
            at: Utc::now(),
        }
    }

    fn judge(gates: &[(&str, Gate)], run: &RunRecord, approvals: &[Approval]) -> Vec<String> {
        let wednesday = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        unmet(gates, run, &[], approvals, wednesday)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_release_job_s_refs_must_allow_the_run() {
        let gates = [("to-prod", on(&["main"])), ("to-rc", on(&["release/*"]))];
        assert_eq!(
            judge(&gates, &run_on("release/1.0", Some(0)), &[]),
            ["release job `to-prod`: the run was built from branch `release/1.0`, and its gate allows only branches main"]
        );
        assert_eq!(
            judge(&gates, &run_on("main", Some(0)), &[]),
            ["release job `to-rc`: the run was built from branch `main`, and its gate allows only branches release/*"]
        );
        assert!(judge(&gates[1..], &run_on("release/1.0", Some(0)), &[]).is_empty());
        // A release job without refs of its own does not widen another's.
        let open = [("to-prod", on(&["main"])), ("docs", Gate::default())];
        assert_eq!(judge(&open, &run_on("feature", Some(0)), &[]).len(), 1);
    }

    #[test]
    fn approvals_needed_are_the_most_any_release_job_asks_for() {
        let gates = [
            (
                "a",
                Gate {
                    approvals: 1,
                    ..Default::default()
                },
            ),
            (
                "b",
                Gate {
                    approvals: 2,
                    ..Default::default()
                },
            ),
        ];
        assert_eq!(approvals_needed(&gates), 2);
        let run = run_on("main", Some(0));
        assert_eq!(
            judge(&gates, &run, &[approval("ann")]),
            ["release job `b`: it needs 2 approvals and has 1 (ann): pipe approve 7"]
        );
        assert!(judge(&gates, &run, &[approval("ann"), approval("bob")]).is_empty());
    }

    #[test]
    fn a_freeze_window_holds_back_only_with_the_job_that_has_it() {
        let frozen = Gate {
            freeze: vec![Freeze::parse("Wed 00:00 - Thu 00:00 UTC").unwrap()],
            ..Default::default()
        };
        let gates = [("a", Gate::default()), ("b", frozen)];
        assert_eq!(
            judge(&gates, &run_on("main", Some(0)), &[]),
            ["release job `b`: releases are frozen now (Wed 00:00 - Thu 00:00 UTC; it is Wed 2026-11-25 12:00 UTC)"]
        );
    }

    #[test]
    fn a_gate_with_refs_releases_only_committed_content() {
        let gates = [("docs", Gate::default()), ("to-prod", on(&["main"]))];
        assert_eq!(
            judge(&gates, &run_on("main", Some(3)), &[]),
            ["release job `to-prod`: run 7 was built from uncommitted changes on main; commit them and run again"]
        );
        assert!(judge(&gates, &run_on("main", Some(0)), &[]).is_empty());
        // Not counted (a store from before pipe counted) is not clean.
        let uncounted = judge(&gates, &run_on("main", None), &[]);
        assert!(
            uncounted[0].contains("without a count of its uncommitted changes on main"),
            "{uncounted:?}"
        );
        // A gate without refs vouches for no commit: uncommitted content may pass it.
        assert!(judge(&gates[..1], &run_on("main", Some(3)), &[]).is_empty());
    }

    #[test]
    fn what_no_approval_can_fix_comes_first() {
        let gates = [(
            "to-prod",
            Gate {
                approvals: 1,
                branches: vec!["main".into()],
                ..Default::default()
            },
        )];
        let all = judge(&gates, &run_on("feature", Some(1)), &[]);
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all[0].contains("built from branch `feature`"), "{all:?}");
        assert!(all[1].contains("uncommitted changes on feature"), "{all:?}");
        assert!(all[2].contains("needs 1 approval"), "{all:?}");
    }

    #[test]
    fn findings_over_a_limit_are_named_with_where_to_read_them() {
        use crate::severity::Severity;
        let gates = [(
            "to-prod",
            Gate {
                findings: vec![(Severity::Critical, 0), (Severity::High, 1)],
                ..Default::default()
            },
        )];
        let run = run_on("main", Some(0));
        let scan = |name: &str, critical, high| JobRecord {
            findings: Some(Counts {
                critical,
                high,
                ..Default::default()
            }),
            name: name.into(),
            stage: "test".into(),
            phase: crate::store::Phase::Main,
            environment: None,
            status: "passed".into(),
            attempts: 1,
            exit_code: Some(0),
            duration_ms: None,
            note: None,
            log: String::new(),
            artifacts: vec![],
            image: None,
            drift: None,
            epoch: crate::store::UNCLAIMED,
        };
        let over = too_many_findings(&gates, &run, &[scan("trivy", 1, 1), scan("secrets", 0, 1)]);
        assert_eq!(
            over.map(|u| u.to_string()).as_deref(),
            Some("release job `to-prod`: the run's scans found 1 critical (at most 0), 2 high (at most 1): see pipe show 7 and pipe logs 7 trivy, pipe logs 7 secrets")
        );
        assert!(too_many_findings(&gates, &run, &[scan("trivy", 0, 1)]).is_none());
    }
}
