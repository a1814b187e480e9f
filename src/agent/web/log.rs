//! A job's page: its state and its log, followed live by a small script (`assets/log.js`) that
//! reads the API's Server-Sent Events and adds each chunk as text.

use super::escape::{segment, text};
use super::layout::{duration, page, status};
use crate::store::{JobRecord, RunRecord};

pub fn render(repo: &str, run: &RunRecord, job: &JobRecord, viewer: Option<&str>) -> String {
    let run_link = format!("/repos/{}/runs/{}", segment(repo), run.id);
    let body = format!(
        "<h1><a href=\"{run_link}\">{} · run #{}</a> · {}</h1>\
         <div class=\"facts\"><span><b>job</b><span id=\"job-state\">{}</span></span>\
         <span><b>log</b><span id=\"log-status\" class=\"state busy\">following</span></span>{}</div>\
         <pre class=\"log\" id=\"log\" data-src=\"{run_link}/jobs/{}/events\">\
         <noscript>The live log needs JavaScript; the API serves it as text.</noscript></pre>\
         <script src=\"/assets/log.js\" defer></script>",
        text(repo),
        run.id,
        text(&job.name),
        status(&job.status),
        job.duration_ms
            .map(|ms| format!("<span><b>took</b>{}</span>", duration(ms)))
            .unwrap_or_default(),
        segment(&job.name),
    );
    page(&format!("{} · {}", job.name, repo), viewer, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::web::dag::tests::job;
    use crate::agent::web::runs::tests::run;
    use crate::store::{Phase, RunState};

    #[test]
    fn the_log_follows_the_jobs_events_and_names_are_escaped() {
        let run = run(9, "main", RunState::Running);
        let job = job("say \"hi\" <b>", "running", Phase::Main);
        let html = render("a/b", &run, &job, None);
        assert!(
            html.contains("data-src=\"/repos/a%2Fb/runs/9/jobs/say%20%22hi%22%20%3Cb%3E/events\""),
            "{html}"
        );
        assert!(html.contains("say &quot;hi&quot; &lt;b&gt;"), "{html}");
        assert!(!html.contains("<b>\""), "{html}");
        assert!(html.contains("src=\"/assets/log.js\""), "{html}");
    }
}
