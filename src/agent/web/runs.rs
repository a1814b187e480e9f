//! The recent runs page: every watched repository's runs, newest first, with a filter form
//! that maps onto the API's query (`repo`, `state`, `branch`).

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::escape::{segment, text};
use super::layout::{ago, page, short_commit, status};
use crate::store::RunRecord;

/// One run and the repository it belongs to.
pub struct Row<'a> {
    pub repo: &'a str,
    pub run: &'a RunRecord,
}

/// What the list was narrowed to, shown back in the form.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filter {
    pub repo: Option<String>,
    pub state: Option<String>,
    pub branch: Option<String>,
}

pub fn render(rows: &[Row], filter: &Filter, viewer: Option<&str>, now: DateTime<Utc>) -> String {
    let mut body = String::from("<h1>Recent runs</h1>");
    let field = |name: &str, value: &Option<String>| {
        format!(
            "<input type=\"text\" name=\"{name}\" placeholder=\"{name}\" value=\"{}\">",
            text(value.as_deref().unwrap_or(""))
        )
    };
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"/\">{}{}{}<button>Filter</button></form>",
        field("repo", &filter.repo),
        field("state", &filter.state),
        field("branch", &filter.branch)
    );
    if rows.is_empty() {
        body.push_str("<p id=\"no-runs\">No runs yet.</p>");
        return page("Recent runs", viewer, &body);
    }
    body.push_str(
        "<table id=\"runs\"><thead><tr><th>Run</th><th>Repository</th><th>Status</th>\
         <th>Branch</th><th>Commit</th><th>Trigger</th><th>Started</th></tr></thead><tbody>",
    );
    for Row { repo, run } in rows {
        let _ = write!(
            body,
            "<tr class=\"run\"><td><a href=\"/repos/{}/runs/{}\">#{}</a></td><td>{}</td><td>{}</td>\
             <td class=\"branch\">{}</td><td>{}</td><td>{}</td><td title=\"{}\">{}</td></tr>",
            segment(repo),
            run.id,
            run.id,
            text(repo),
            status(run.state.as_str()),
            text(run.branch.as_deref().unwrap_or("")),
            short_commit(run.commit.as_deref()),
            text(&run.trigger),
            run.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            ago(now, run.started_at)
        );
    }
    body.push_str("</tbody></table>");
    page("Recent runs", viewer, &body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::RunState;

    pub(crate) fn run(id: i64, branch: &str, state: RunState) -> RunRecord {
        RunRecord {
            id,
            pipeline_name: "ci".into(),
            pipeline_file: "pipeline.yml".into(),
            pipeline_sha256: "0".repeat(64),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            branch: Some(branch.into()),
            tags: vec![],
            changed_paths: Some(0),
            trigger: "push".into(),
            state,
            started_at: Utc::now() - chrono::Duration::seconds(90),
            ended_at: None,
            environments: vec![],
            releases: 0,
        }
    }

    #[test]
    fn a_hostile_branch_name_shows_as_text() {
        let hostile = run(7, "<img src=x onerror=alert(1)>", RunState::Passed);
        let html = render(
            &[Row {
                repo: "web\"app",
                run: &hostile,
            }],
            &Filter::default(),
            None,
            Utc::now(),
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("href=\"/repos/web%22app/runs/7\""), "{html}");
        assert!(html.contains(">web&quot;app<"), "{html}");
    }

    #[test]
    fn each_run_shows_its_status_commit_trigger_and_age() {
        let r = run(3, "main", RunState::AwaitingRelease);
        let html = render(
            &[Row {
                repo: "api",
                run: &r,
            }],
            &Filter::default(),
            None,
            Utc::now(),
        );
        assert!(html.contains(">awaiting release<"), "{html}");
        assert!(html.contains(">0123456789<"), "{html}");
        assert!(html.contains(">push<"), "{html}");
        assert!(html.contains(">1 min ago<"), "{html}");
    }

    #[test]
    fn the_filter_is_shown_back_escaped() {
        let filter = Filter {
            branch: Some("\"><script>x</script>".into()),
            ..Filter::default()
        };
        let html = render(&[], &filter, None, Utc::now());
        assert!(
            html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""),
            "{html}"
        );
        assert!(html.contains("No runs yet."));
    }
}
