//! From the refs being pushed to the commits to check: each pushed commit once, deletions none.

use super::PushedRef;

/// One commit a pre-push hook runs the pipeline on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedCommit {
    pub commit: String,
    /// What the remote has of the ref now: the changes are counted from there. `None` for a
    /// ref new to the remote.
    pub since: Option<String>,
    /// For people: `main at 3f2a91c` (a ref name is data: printed, never run).
    pub subject: String,
}

/// The commits `refs` push, in git's order; a commit pushed to several refs is checked once
/// (with the changes since the first of them), a deletion not at all.
pub fn pushed_commits(refs: &[PushedRef]) -> Vec<PushedCommit> {
    let mut commits: Vec<PushedCommit> = Vec::new();
    for r in refs {
        let Some(commit) = &r.local else { continue };
        if commits.iter().any(|c| &c.commit == commit) {
            continue;
        }
        let name = r
            .remote_ref
            .strip_prefix("refs/heads/")
            .unwrap_or(&r.remote_ref);
        commits.push(PushedCommit {
            commit: commit.clone(),
            since: r.remote.clone(),
            subject: format!("{name} at {}", &commit[..7]),
        });
    }
    commits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::parse_pre_push;

    #[test]
    fn each_commit_once_and_deletions_not_at_all() {
        let (a, b, zero) = ("a".repeat(40), "b".repeat(40), "0".repeat(40));
        let refs = parse_pre_push(&format!(
            "refs/heads/one {a} refs/heads/one {b}\n\
             refs/heads/two {a} refs/heads/two {zero}\n\
             (delete) {zero} refs/heads/old {b}\n\
             refs/tags/v1 {b} refs/tags/v1 {zero}\n"
        ))
        .unwrap();
        assert_eq!(
            pushed_commits(&refs),
            [
                PushedCommit {
                    commit: a.clone(),
                    since: Some(b.clone()),
                    subject: "one at aaaaaaa".into(),
                },
                PushedCommit {
                    commit: b.clone(),
                    since: None,
                    subject: "refs/tags/v1 at bbbbbbb".into(),
                },
            ]
        );
        let deletion = parse_pre_push(&format!("(delete) {zero} refs/heads/old {b}\n")).unwrap();
        assert_eq!(pushed_commits(&deletion), []);
    }
}
