//! A run's page: what it ran on, its DAG with each job's state, the jobs, a fleet's jobs held for
//! a person (with a resume button for a signed-in user), the release gate with who approved (and
//! the approve and release forms for a signed-in user), the scan findings and the audit trail.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::escape::{segment, text};
use super::layout::{ago, duration, page, short_commit, status};
use crate::severity::Severity;
use crate::store::{Approval, AuditEntry, JobRecord, Phase, RunRecord, RunState};

/// Everything the page shows of one run.
pub struct View<'a> {
    pub repo: &'a str,
    pub run: &'a RunRecord,
    pub jobs: &'a [JobRecord],
    /// `[from, to]`: `to` needs `from`.
    pub needs: &'a [(String, String)],
    pub approvals: &'a [Approval],
    pub audit: &'a [AuditEntry],
    /// What the gate waits for, as the engine words it, for a run waiting at it.
    pub gate: Option<&'a str>,
    /// A fleet's jobs of the run held for a person.
    pub held: &'a [crate::fleet::Held],
}

pub fn render(view: &View, viewer: Option<&str>, now: DateTime<Utc>) -> String {
    let run = view.run;
    let title = format!("{} run {}", view.repo, run.id);
    let mut body = format!(
        "<h1>{} · run #{}</h1><div class=\"facts\"><span><b>status</b><span id=\"run-state\">{}</span></span>\
         <span><b>branch</b><span class=\"branch\">{}</span></span><span><b>commit</b>{}</span>\
         <span><b>trigger</b>{}</span><span><b>started</b>{}</span>",
        text(view.repo),
        run.id,
        status(run.state.as_str()),
        text(run.branch.as_deref().unwrap_or("")),
        short_commit(run.commit.as_deref()),
        text(&run.trigger),
        ago(now, run.started_at),
    );
    if let Some(ended) = run.ended_at {
        let ms = (ended - run.started_at).num_milliseconds().max(0) as u64;
        let _ = write!(body, "<span><b>took</b>{}</span>", duration(ms));
    }
    body.push_str("</div><h2>Jobs</h2>");
    body.push_str(&super::dag::render(
        view.repo, run.id, view.jobs, view.needs,
    ));
    jobs(&mut body, view);
    held(&mut body, view, viewer);
    gate(&mut body, view, viewer);
    findings(&mut body, view.jobs);
    audit(&mut body, view.audit);
    page(&title, viewer, &body)
}

fn jobs(body: &mut String, view: &View) {
    body.push_str(
        "<table id=\"jobs\"><thead><tr><th>Job</th><th>Stage</th><th>Status</th><th>Took</th>\
         <th>Attempts</th></tr></thead><tbody>",
    );
    for job in view.jobs {
        let _ = write!(
            body,
            "<tr><td><a href=\"/repos/{}/runs/{}/jobs/{}\">{}</a>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            segment(view.repo),
            view.run.id,
            segment(&job.name),
            text(&job.name),
            if job.phase == Phase::Release { " <span class=\"quiet\">(release)</span>" } else { "" },
            text(&job.stage),
            status(&job.status),
            // Why it waits (its `concurrency:` group's holder), failed or was skipped.
            job.note
                .as_deref()
                .map(|n| format!(" <span class=\"note\">{}</span>", text(n)))
                .unwrap_or_default(),
            job.duration_ms.map(duration).unwrap_or_default(),
            job.attempts,
        );
    }
    body.push_str("</tbody></table>");
}

/// Each held job, why it is held, and for a signed-in user a button that resumes it.
fn held(body: &mut String, view: &View, viewer: Option<&str>) {
    if view.held.is_empty() {
        return;
    }
    body.push_str("<h2>Held for a person</h2><div class=\"box\" id=\"held\"><ul>");
    for job in view.held {
        let _ = write!(
            body,
            "<li><b>{}</b> <span class=\"note\">{}</span>",
            text(&job.name),
            text(job.note.as_deref().unwrap_or("")),
        );
        if viewer.is_some() {
            let _ = write!(
                body,
                " <form method=\"post\" action=\"/repos/{}/runs/{}/jobs/{}/resume\"><button class=\"resume\">Resume</button></form>",
                segment(view.repo),
                view.run.id,
                segment(&job.name),
            );
        }
        body.push_str("</li>");
    }
    body.push_str("</ul>");
    if viewer.is_none() {
        body.push_str("<p><a href=\"/login\">Sign in</a> to resume a held job.</p>");
    }
    body.push_str("</div>");
}

fn gate(body: &mut String, view: &View, viewer: Option<&str>) {
    if !view.jobs.iter().any(|j| j.phase == Phase::Release) {
        return;
    }
    body.push_str("<h2>Release gate</h2><div class=\"box\" id=\"gate\">");
    if view.approvals.is_empty() {
        body.push_str("<p>No approvals yet.</p>");
    }
    if !view.approvals.is_empty() {
        body.push_str("<ul id=\"approvals\">");
        for a in view.approvals {
            let _ = write!(
                body,
                "<li><b class=\"approver\">{}</b> {}{}</li>",
                text(&a.by),
                a.at.format("%Y-%m-%d %H:%M UTC"),
                a.comment
                    .as_deref()
                    .map(|c| format!(": “{}”", text(c)))
                    .unwrap_or_default()
            );
        }
        body.push_str("</ul>");
    }
    // As the engine judges it: a failed release may be released again.
    let waiting = matches!(
        view.run.state,
        RunState::AwaitingRelease | RunState::ReleaseFailed
    );
    if let Some(why) = view.gate.filter(|_| waiting) {
        let _ = write!(body, "<p id=\"unmet\" class=\"unmet\">{}</p>", text(why));
    }
    match viewer {
        _ if !waiting => {}
        None => body.push_str("<p><a href=\"/login\">Sign in</a> to approve or release.</p>"),
        Some(name) => {
            let base = format!("/repos/{}/runs/{}", segment(view.repo), view.run.id);
            if !view.approvals.iter().any(|a| a.by == name) {
                let _ = write!(
                    body,
                    "<form method=\"post\" action=\"{base}/approve\"><input type=\"text\" name=\"comment\" \
                     placeholder=\"comment (optional)\"> <button id=\"approve\">Approve</button></form>"
                );
            }
            // Offered even while the gate waits: the agent judges again and says why not.
            let _ = write!(
                body,
                "<form method=\"post\" action=\"{base}/release\"><button id=\"release\">Release</button></form>"
            );
        }
    }
    body.push_str("</div>");
}

fn findings(body: &mut String, jobs: &[JobRecord]) {
    let scanned: Vec<_> = jobs.iter().filter_map(|j| Some((j, j.findings?))).collect();
    if scanned.is_empty() {
        return;
    }
    body.push_str("<h2>Scan findings</h2><table id=\"findings\"><thead><tr><th>Job</th>");
    for sev in Severity::ALL.iter().rev() {
        let _ = write!(body, "<th>{}</th>", sev.as_str());
    }
    body.push_str("</tr></thead><tbody>");
    for (job, counts) in scanned {
        let _ = write!(body, "<tr><td>{}</td>", text(&job.name));
        for sev in Severity::ALL.iter().rev() {
            let n = counts.get(*sev);
            let class = match (n, sev) {
                (0, _) => "quiet",
                (_, Severity::Critical | Severity::High) => "bad",
                _ => "warn",
            };
            let _ = write!(body, "<td class=\"{class}\">{n}</td>");
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
}

fn audit(body: &mut String, audit: &[AuditEntry]) {
    if audit.is_empty() {
        return;
    }
    body.push_str("<h2>Audit trail</h2><table id=\"audit\"><tbody>");
    for e in audit {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
            text(&e.actor),
            text(&e.action),
            text(&e.detail)
        );
    }
    body.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::web::dag::tests::job;
    use crate::agent::web::runs::tests::run;

    fn approval(by: &str, comment: &str) -> Approval {
        Approval {
            by: by.into(),
            comment: Some(comment.into()),
            at: Utc::now(),
        }
    }

    fn render_with(
        state: RunState,
        approvals: &[Approval],
        gate: Option<&str>,
        viewer: Option<&str>,
    ) -> String {
        let run = run(5, "main", state);
        let jobs = [
            job("test", "passed", Phase::Main),
            job("deploy", "pending", Phase::Release),
        ];
        let needs = [("test".to_string(), "deploy".to_string())];
        let view = View {
            repo: "api",
            run: &run,
            jobs: &jobs,
            needs: &needs,
            approvals,
            audit: &[],
            gate,
            held: &[],
        };
        render(&view, viewer, Utc::now())
    }

    #[test]
    fn a_signed_in_user_gets_approve_and_release_forms() {
        let html = render_with(RunState::AwaitingRelease, &[], None, Some("ann"));
        assert!(
            html.contains("action=\"/repos/api/runs/5/approve\""),
            "{html}"
        );
        assert!(html.contains("<button id=\"release\">"), "{html}");
        let anonymous = render_with(RunState::AwaitingRelease, &[], None, None);
        assert!(!anonymous.contains("/approve\""), "{anonymous}");
        assert!(anonymous.contains("to approve or release"), "{anonymous}");
    }

    #[test]
    fn approvers_are_escaped_and_one_who_approved_is_not_asked_again() {
        let approvals = [approval("ann", "<script>alert(1)</script> & go")];
        let html = render_with(
            RunState::AwaitingRelease,
            &approvals,
            Some("1 more approval <needed>"),
            Some("ann"),
        );
        assert!(html.contains(">ann<"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; go"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("id=\"approve\""), "{html}");
        assert!(html.contains("<button id=\"release\">"), "{html}");
        assert!(html.contains("1 more approval &lt;needed&gt;"), "{html}");
    }

    #[test]
    fn a_released_run_offers_no_buttons() {
        let html = render_with(RunState::Released, &[], Some("x"), Some("ann"));
        assert!(html.contains("id=\"gate\""), "{html}");
        assert!(!html.contains("<button id=\"release\""), "{html}");
        assert!(!html.contains("id=\"unmet\""), "{html}");
    }

    #[test]
    fn a_held_job_says_why_and_a_signed_in_user_gets_a_button_to_resume_it() {
        let run = run(7, "main", RunState::Running);
        let held = [crate::fleet::Held {
            job: 3,
            name: "ship <it>".into(),
            note: Some("may have deployed: held until a person resumes it".into()),
        }];
        let view = |viewer| {
            let view = View {
                repo: "api",
                run: &run,
                jobs: &[],
                needs: &[],
                approvals: &[],
                audit: &[],
                gate: None,
                held: &held,
            };
            render(&view, viewer, Utc::now())
        };
        let html = view(Some("ann"));
        assert!(html.contains("<b>ship &lt;it&gt;</b>"), "{html}");
        assert!(html.contains("may have deployed"), "{html}");
        assert!(
            html.contains("action=\"/repos/api/runs/7/jobs/ship%20%3Cit%3E/resume\""),
            "{html}"
        );
        let anonymous = view(None);
        assert!(!anonymous.contains("/resume\""), "{anonymous}");
        assert!(anonymous.contains("to resume a held job"), "{anonymous}");
    }

    #[test]
    fn scan_findings_are_counted_per_severity() {
        let run = run(6, "main", RunState::Failed);
        let mut scan = job("secrets", "failed", Phase::Main);
        scan.findings = Some(crate::scan::Counts {
            low: 0,
            medium: 1,
            high: 2,
            critical: 0,
        });
        let jobs = [scan];
        let view = View {
            repo: "api",
            run: &run,
            jobs: &jobs,
            needs: &[],
            approvals: &[],
            audit: &[],
            gate: None,
            held: &[],
        };
        let html = render(&view, None, Utc::now());
        assert!(html.contains("id=\"findings\""), "{html}");
        assert!(
            html.contains(
                "<td class=\"bad\">2</td><td class=\"warn\">1</td><td class=\"quiet\">0</td>"
            ),
            "{html}"
        );
        assert!(!html.contains("id=\"gate\""), "{html}");
    }
}
