//! A run's DAG as an inline SVG drawn from its `needs` edges: each job sits in the column of
//! its longest chain of needs, so a job is always right of everything it waits for, and each
//! box links to the job's log.

use std::collections::HashMap;
use std::fmt::Write;

use super::escape::{segment, text};
use super::layout::tone_class;
use crate::store::{JobRecord, Phase, RunId};

const WIDTH: usize = 168;
const HEIGHT: usize = 40;
const GAP_X: usize = 56;
const GAP_Y: usize = 14;
/// Characters of a job's name that fit its box; the full name is in its tooltip.
const NAME_CHARS: usize = 22;

/// `needs` holds `[from, to]`: `to` waits for `from`. Edges naming unknown jobs are left out.
pub fn render(repo: &str, run: RunId, jobs: &[JobRecord], needs: &[(String, String)]) -> String {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let edges: Vec<(usize, usize)> = needs
        .iter()
        .filter_map(|(from, to)| Some((*index.get(from.as_str())?, *index.get(to.as_str())?)))
        .collect();
    let column = columns(jobs.len(), &edges);
    let mut rows = vec![0usize; jobs.len()];
    let mut filled: HashMap<usize, usize> = HashMap::new();
    for (i, c) in column.iter().enumerate() {
        let slot = filled.entry(*c).or_default();
        rows[i] = *slot;
        *slot += 1;
    }
    let at = |i: usize| {
        (
            8 + column[i] * (WIDTH + GAP_X),
            8 + rows[i] * (HEIGHT + GAP_Y),
        )
    };
    let width = 16 + (column.iter().max().map_or(0, |c| c + 1)) * (WIDTH + GAP_X) - GAP_X;
    let height = 16 + filled.values().max().copied().unwrap_or(0) * (HEIGHT + GAP_Y) - GAP_Y;
    let mut svg = format!(
        "<svg id=\"dag\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"jobs and their needs\">"
    );
    for (from, to) in &edges {
        let (x1, y1) = at(*from);
        let (x2, y2) = at(*to);
        let (x1, y1, y2) = (x1 + WIDTH, y1 + HEIGHT / 2, y2 + HEIGHT / 2);
        let mid = (x1 + x2) / 2;
        let _ = write!(
            svg,
            "<path d=\"M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}\"/>"
        );
    }
    for (i, job) in jobs.iter().enumerate() {
        let (x, y) = at(i);
        let mut name: String = job.name.chars().take(NAME_CHARS).collect();
        if job.name.chars().count() > NAME_CHARS {
            name.push('…');
        }
        let release = if job.phase == Phase::Release {
            " release"
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<a href=\"/repos/{}/runs/{run}/jobs/{}\" class=\"job {}{release}\" data-job=\"{}\" \
             data-status=\"{}\"><title>{} — {}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"5\"/>\
             <text x=\"{}\" y=\"{}\">{}</text><text class=\"status\" x=\"{}\" y=\"{}\">{}</text></a>",
            segment(repo),
            segment(&job.name),
            tone_class(&job.status),
            text(&job.name),
            text(&job.status),
            text(&job.name),
            text(&crate::style::status_word(&job.status)),
            x + 8,
            y + 16,
            text(&name),
            x + 8,
            y + 32,
            text(&crate::style::status_word(&job.status)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Each job's column: the length of its longest chain of needs. Needs form a DAG (the checker
/// refuses cycles); should one slip through, the passes stop after `n` rounds all the same.
fn columns(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut column = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for &(from, to) in edges {
            if column[to] < column[from] + 1 && column[from] < n {
                column[to] = column[from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    column
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn job(name: &str, status: &str, phase: Phase) -> JobRecord {
        JobRecord {
            name: name.into(),
            stage: "test".into(),
            phase,
            environment: None,
            status: status.into(),
            attempts: 1,
            exit_code: None,
            duration_ms: Some(1200),
            note: None,
            log: String::new(),
            artifacts: vec![],
            findings: None,
            image: None,
            drift: None,
            epoch: crate::store::UNCLAIMED,
        }
    }

    fn edge(from: &str, to: &str) -> (String, String) {
        (from.into(), to.into())
    }

    #[test]
    fn a_job_sits_right_of_its_longest_chain_of_needs() {
        // a → b → c and a → c: c is in column 2, not 1.
        assert_eq!(columns(3, &[(0, 1), (1, 2), (0, 2)]), vec![0, 1, 2]);
        assert_eq!(columns(3, &[]), vec![0, 0, 0]);
    }

    #[test]
    fn boxes_link_to_logs_carry_their_state_and_escape_names() {
        let jobs = [
            job("build", "passed", Phase::Main),
            job("<script>x</script>", "running", Phase::Main),
            job("deploy", "pending", Phase::Release),
        ];
        let svg = render(
            "api",
            4,
            &jobs,
            &[
                edge("build", "<script>x</script>"),
                edge("<script>x</script>", "deploy"),
                edge("ghost", "deploy"),
            ],
        );
        assert!(
            svg.contains("href=\"/repos/api/runs/4/jobs/build\" class=\"job good\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"job busy\" data-job=\"&lt;script&gt;x&lt;/script&gt;\""),
            "{svg}"
        );
        assert!(
            svg.contains("/jobs/%3Cscript%3Ex%3C%2Fscript%3E\""),
            "{svg}"
        );
        assert!(svg.contains("class=\"job quiet release\""), "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
        assert_eq!(svg.matches("<path").count(), 2, "{svg}");
    }
}
