//! `only:`: when a job is part of a run at all — on which branches (`branches`), for which
//! changed files (`changes`). A job left out is not part of the run; the planner leaves out
//! what needs it too, and says why.

use super::check::suggest;
use super::glob::Glob;
use super::yaml::{Kind, Node};
use super::Problem;

const KEYS: &[&str] = &["branches", "changes"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Only {
    /// Globs the run's branch must match; `None`: any branch, or none.
    pub branches: Option<Vec<Glob>>,
    /// Globs over project-relative, `/`-separated paths, one of which a changed file must
    /// match; `None`: whatever changed.
    pub changes: Option<Vec<Glob>>,
}

impl Only {
    /// Why the job is left out of a run on `branch` that changed `changed` (`None`: git cannot
    /// tell what changed, and `changes` then keeps the job, as GitLab does); `None` if it runs.
    /// Without a branch (a detached HEAD) a job limited to branches is left out: it asked for
    /// a branch, and there is none.
    pub fn leaves_out(&self, branch: Option<&str>, changed: Option<&[String]>) -> Option<String> {
        if let Some(globs) = &self.branches {
            let on = match branch {
                Some(b) if globs.iter().any(|g| g.is_match(b)) => None,
                Some(b) => Some(format!("the run is on `{b}`")),
                None => Some("the run is on no branch".to_string()),
            };
            if let Some(on) = on {
                return Some(format!("only: branches {} — {on}", listed(globs)));
            }
        }
        if let (Some(globs), Some(files)) = (&self.changes, changed) {
            if !files.iter().any(|f| globs.iter().any(|g| g.is_match(f))) {
                let none = match files.len() {
                    0 => "no file changed".to_string(),
                    n => format!("none of the {n} changed file(s) match"),
                };
                return Some(format!("only: changes {} — {none}", listed(globs)));
            }
        }
        None
    }
}

fn listed(globs: &[Glob]) -> String {
    globs
        .iter()
        .map(|g| format!("`{}`", g.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A job's `only:` mapping, with a problem (and its position) for each thing wrong in it.
pub(super) fn parse(node: &Node) -> (Option<Only>, Vec<Problem>) {
    let mut problems = Vec::new();
    let Kind::Map(entries) = &node.kind else {
        problems.push(
            Problem::at(
                node.pos,
                1,
                format!("`only` must be a mapping, found {}", node.kind.describe()),
            )
            .hint("for example `only: {branches: [main], changes: [\"src/**\"]}`"),
        );
        return (None, problems);
    };
    if entries.is_empty() {
        problems.push(
            Problem::at(node.pos, 1, "`only` is empty")
                .hint("give it `branches`, `changes` or both, or remove it"),
        );
        return (None, problems);
    }
    let mut only = Only::default();
    for (key, value) in entries {
        let Kind::Str(name) = &key.kind else {
            problems.push(Problem::at(key.pos, 1, "keys in `only` must be strings"));
            continue;
        };
        match name.as_str() {
            "branches" => only.branches = globs(name, value, &mut problems),
            "changes" => only.changes = globs(name, value, &mut problems),
            other => {
                let hint = match suggest(other, KEYS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of: {}", KEYS.join(", ")),
                };
                problems.push(
                    Problem::at(
                        key.pos,
                        other.chars().count(),
                        format!("unknown key `{other}` in `only`"),
                    )
                    .hint(hint),
                );
            }
        }
    }
    (Some(only), problems)
}

/// A list of globs; `None` (with problems) when any entry is not one.
fn globs(key: &str, node: &Node, problems: &mut Vec<Problem>) -> Option<Vec<Glob>> {
    let what = format!("`only.{key}`");
    let Kind::Seq(items) = &node.kind else {
        problems.push(Problem::at(
            node.pos,
            1,
            format!(
                "{what} must be a list of globs, found {}",
                node.kind.describe()
            ),
        ));
        return None;
    };
    if items.is_empty() {
        problems.push(
            Problem::at(
                node.pos,
                1,
                format!("{what} is empty: the job would never run"),
            )
            .hint(format!("list at least one glob, or remove {what}")),
        );
        return None;
    }
    let before = problems.len();
    let mut out = Vec::new();
    for item in items {
        let Kind::Str(text) = &item.kind else {
            problems.push(Problem::at(
                item.pos,
                1,
                format!(
                    "{what} entries must be strings, found {}",
                    item.kind.describe()
                ),
            ));
            continue;
        };
        let width = text.chars().count();
        if text.trim().is_empty() {
            problems.push(Problem::at(
                item.pos,
                1,
                format!("{what} entries cannot be empty"),
            ));
        } else if key == "changes" && (text.starts_with('/') || text.starts_with("./")) {
            problems.push(
                Problem::at(
                    item.pos,
                    width,
                    format!("`{text}` in {what} would match no changed file"),
                )
                .hint("changed files are relative to the project: write the glob without a leading `/` or `./`"),
            );
        } else {
            match Glob::new(text) {
                Ok(glob) => out.push(glob),
                Err(why) => problems.push(
                    Problem::at(
                        item.pos,
                        width,
                        format!("`{text}` in {what} is not a valid glob: {why}"),
                    )
                    .hint("`*` matches within a path segment, `**` across them, `{a,b}` either"),
                ),
            }
        }
    }
    (problems.len() == before).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(yaml: &str) -> Only {
        let node = super::super::yaml::parse(yaml).unwrap();
        let (only, problems) = parse(&node);
        assert!(problems.is_empty(), "{problems:?}");
        only.unwrap()
    }

    #[test]
    fn branches_match_by_glob_and_no_branch_leaves_the_job_out() {
        let o = only("branches: [main, 'release/*']");
        assert_eq!(o.leaves_out(Some("main"), None), None);
        assert_eq!(o.leaves_out(Some("release/1.2"), None), None);
        let why = o.leaves_out(Some("feature/x"), None).unwrap();
        assert_eq!(
            why,
            "only: branches `main`, `release/*` — the run is on `feature/x`"
        );
        assert!(o.leaves_out(None, None).unwrap().contains("on no branch"));
    }

    #[test]
    fn changes_keep_the_job_when_git_cannot_tell() {
        let o = only("changes: ['docs/**', '*.md']");
        let files = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(o.leaves_out(None, Some(&files(&["docs/a/b.txt"]))), None);
        assert_eq!(o.leaves_out(None, Some(&files(&["README.md"]))), None);
        assert!(o
            .leaves_out(None, Some(&files(&["src/README.md"])))
            .unwrap()
            .contains("none of the 1 changed file(s) match"));
        assert!(o
            .leaves_out(None, Some(&[]))
            .unwrap()
            .contains("no file changed"));
        assert_eq!(
            o.leaves_out(None, None),
            None,
            "unknown changes keep the job"
        );
    }

    #[test]
    fn both_conditions_must_hold() {
        let o = only("{branches: [main], changes: ['src/**']}");
        let src = vec!["src/lib.rs".to_string()];
        assert_eq!(o.leaves_out(Some("main"), Some(&src)), None);
        assert!(o.leaves_out(Some("dev"), Some(&src)).is_some());
        assert!(o.leaves_out(Some("main"), Some(&["a".into()])).is_some());
    }

    #[test]
    fn mistakes_are_problems_with_positions() {
        let node = super::super::yaml::parse(
            "branchs: [main]\nchanges: ['src/[', '/abs/**', 3]\nbranches: []\n",
        )
        .unwrap();
        let (_, problems) = parse(&node);
        let messages: Vec<(u32, u32, &str)> = problems
            .iter()
            .map(|p| {
                let pos = p.pos.unwrap();
                (pos.line, pos.col, p.message.as_str())
            })
            .collect();
        assert_eq!(messages.len(), 5, "{messages:?}");
        assert_eq!(messages[0].0, 1);
        assert!(messages[0].2.contains("unknown key `branchs`"));
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("did you mean `branches`?")
        );
        assert_eq!((messages[1].0, messages[1].1), (2, 11));
        assert!(messages[1]
            .2
            .contains("`src/[` in `only.changes` is not a valid glob"));
        assert!(messages[2].2.contains("would match no changed file"));
        assert!(messages[3].2.contains("must be strings"));
        assert!(messages[4].2.contains("`only.branches` is empty"));
    }
}
