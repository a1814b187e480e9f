//! Who a run is by, for a gate whose approvals must come from someone else (`not_author`). The
//! author is recorded in the run's audit trail as it starts (action `author`): for a commit the
//! agent picked up, the commit's author; for a run started by hand through the agent's API, the
//! token's name; for `pipe run` and the git hook, the local git user. A retried run keeps the
//! author of the run it retries, so that a retry never makes an author's approval count.

use std::path::Path;

use super::{EngineError, Refusal};
use crate::pipeline::Pipeline;
use crate::store::{JobRecord, RunId, Store};

const ACTION: &str = "author";

/// The author of a new run that `actor` starts with `trigger`, of `commit` if it runs one.
pub(super) fn of_new_run(
    project: &Path,
    trigger: &str,
    commit: Option<&str>,
    actor: &str,
) -> String {
    let found = match trigger {
        // The agent's own triggers: whoever wrote the commit it picked up.
        "poll" | "github" | "gitlab" => commit.and_then(|c| crate::git::commit_author(project, c)),
        // By hand through the agent's API: the token's name.
        "api" => Some(actor.to_string()),
        _ => crate::git::user(project),
    };
    found.unwrap_or_else(|| actor.to_string())
}

pub(super) fn record(store: &mut dyn Store, id: RunId, author: &str) -> Result<(), EngineError> {
    Ok(store.audit(id, "pipe", ACTION, author)?)
}

/// Who run `id` is by, as recorded when it started (runs recorded before pipe kept it: none).
pub(super) fn of_run(store: &mut dyn Store, id: RunId) -> Result<Option<String>, EngineError> {
    let trail = store.audit_trail(id)?;
    Ok(trail
        .into_iter()
        .find(|a| a.action == ACTION)
        .map(|a| a.detail))
}

/// Refuses `by`'s approval of run `id` when a release job it runs wants approvers other than
/// the author and `by` is the author.
pub(super) fn refuse_own_approval(
    store: &mut dyn Store,
    pipeline: &Pipeline,
    jobs: &[JobRecord],
    id: RunId,
    by: &str,
) -> Result<(), EngineError> {
    let left_out = |name: &str| {
        jobs.iter()
            .any(|j| j.name == name && j.status == "left_out")
    };
    let wanting = pipeline
        .gates()
        .into_iter()
        .find(|(name, gate)| gate.not_author && !left_out(name));
    let Some((job, _)) = wanting else {
        return Ok(());
    };
    match of_run(store, id)? {
        Some(author) if is_author(&author, by) => {
            let refusal = Refusal::OwnApproval {
                run: id,
                author,
                job: job.to_string(),
            };
            store.audit(id, by, "approve refused", &refusal.to_string())?;
            Err(refusal.into())
        }
        _ => Ok(()),
    }
}

/// Whether `approver` names `author`: the whole of it, or the name or the email of
/// `Name <email>`, in any case.
fn is_author(author: &str, approver: &str) -> bool {
    let approver = approver.trim();
    let (name, email) = match author.rsplit_once(" <") {
        Some((name, email)) => (name.trim(), email.trim_end_matches('>')),
        None => (author, ""),
    };
    [author, name, email]
        .iter()
        .any(|a| !a.is_empty() && a.eq_ignore_ascii_case(approver))
}

#[cfg(test)]
mod tests {
    use super::is_author;

    #[test]
    fn the_author_is_named_by_the_whole_their_name_or_their_email() {
        let author = "Ann Lee <ann@example.com>";
        for same in [author, "Ann Lee", "ANN@example.com", " ann lee "] {
            assert!(is_author(author, same), "{same}");
        }
        for other in ["ann", "Bob <ann@example.com>", "example.com", ""] {
            assert!(!is_author(author, other), "{other}");
        }
        assert!(is_author("alice", "Alice"));
        assert!(!is_author("alice", "bob"));
    }
}
