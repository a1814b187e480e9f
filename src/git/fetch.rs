//! The agent's clones: a repository kept under the agent's data folder that fetches a watched
//! remote's branches as they are there (`+refs/heads/*:refs/heads/*`), so a run of a branch's
//! commit resolves and names its branch as in a developer's clone. Nothing is ever checked out
//! in it: runs take their files from the commit (see [`crate::engine::Source::Commit`]).

use std::path::Path;
use std::sync::Mutex;

use git2::{FetchOptions, Repository};

#[derive(Debug, thiserror::Error)]
#[error("cannot fetch {url}: {message}")]
pub struct FetchError {
    pub url: String,
    pub message: String,
}

/// Fetches `branches` of `url` into the clone at `dir` (made on the first call) and returns
/// each branch's commit there; a branch the remote does not have is left out.
pub fn fetch(
    dir: &Path,
    url: &str,
    branches: &[String],
) -> Result<Vec<(String, String)>, FetchError> {
    // One fetch at a time in this process: the leader's poller and the agent's claims fetch
    // into the same clones, and git refuses a second writer of a ref (`main.lock` exists).
    static FETCHING: Mutex<()> = Mutex::new(());
    let _one = FETCHING.lock().unwrap_or_else(|p| p.into_inner());
    let failed = |e: git2::Error| FetchError {
        url: url.to_string(),
        message: e.message().to_string(),
    };
    let repo = match Repository::open(dir) {
        Ok(repo) => repo,
        Err(_) => Repository::init(dir).map_err(failed)?,
    };
    let mut remote = repo.remote_anonymous(url).map_err(failed)?;
    let specs: Vec<String> = branches
        .iter()
        .map(|b| format!("+refs/heads/{b}:refs/heads/{b}"))
        .collect();
    let mut options = FetchOptions::new();
    options.update_fetchhead(false);
    // Fetching into a branch HEAD names is what git refuses for a checked-out branch; nothing
    // is checked out here, so it is allowed.
    remote
        .fetch(&specs, Some(&mut options), None)
        .map_err(failed)?;
    Ok(branches
        .iter()
        .filter_map(|b| Some((b.clone(), branch_head(&repo, b)?)))
        .collect())
}

/// The commit branch `branch` of the clone at `dir` points at.
pub fn head_of(dir: &Path, branch: &str) -> Option<String> {
    branch_head(&Repository::open(dir).ok()?, branch)
}

fn branch_head(repo: &Repository, branch: &str) -> Option<String> {
    let found = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    Some(found.peel_to_commit().ok()?.id().to_string())
}

/// Whether the clone at `dir` has commit `sha`.
pub fn has_commit(dir: &Path, sha: &str) -> bool {
    let found = Repository::open(dir).ok().and_then(|repo| {
        let id = git2::Oid::from_str(sha).ok()?;
        repo.find_commit(id).ok().map(|_| ())
    });
    found.is_some()
}
