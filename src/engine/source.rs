//! What a run runs: the working tree, copied into the run's directory, or the tree of a commit
//! or of the index, in a kept checkout that the run holds while its jobs go on (see
//! [`crate::workspace::checkout`]). Neither touches the developer's tree or index.

use std::path::{Path, PathBuf};

use super::{EngineError, Internal};
use crate::git::{self, Facts, Rev};
use crate::workspace::checkout::{self, Checkout};
use crate::workspace::{shared, RunDir};

/// What a run is started on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Source {
    /// The working tree as it is, uncommitted changes included.
    #[default]
    WorkingTree,
    /// What is staged: the content `git commit` would commit now.
    Index,
    /// What is staged in this index file: a pre-commit hook of `git commit -a` or `git commit
    /// PATH` is handed a temporary index (GIT_INDEX_FILE) holding what the commit will be.
    IndexFile(PathBuf),
    /// A commit, as `git rev-parse` names it (a sha, a branch, a tag, `HEAD~1`).
    Commit(String),
}

/// A run's files for its jobs; a kept checkout stays the run's, and a snapshot stays where a
/// prune leaves it, while this lives.
pub(super) struct Files {
    pub dir: PathBuf,
    _checkout: Option<Checkout>,
    _snapshot: Option<shared::Held>,
}

/// Git content resolved and checked out: its tree's id, facts and files.
pub(super) struct Resolved {
    pub tree: String,
    pub facts: Facts,
    pub files: Files,
}

/// Resolves a commit or the index (`None` for the working tree, which is copied once the run
/// is recorded), with the files it changes against `changes_since` (see [`git::resolve`]).
pub(super) async fn resolve(
    project: &Path,
    source: &Source,
    changes_since: Option<&str>,
) -> Result<Option<Resolved>, EngineError> {
    let rev = match source {
        Source::WorkingTree => return Ok(None),
        Source::Index => Rev::Index,
        Source::IndexFile(file) => Rev::IndexFile(file),
        Source::Commit(rev) => Rev::Commit(rev),
    };
    let resolved = git::resolve(project, rev, changes_since)
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    let files = hold(project, resolved.tree.clone()).await?;
    Ok(Some(Resolved {
        tree: resolved.tree,
        facts: resolved.facts,
        files,
    }))
}

/// A checkout of `tree`, held. Off the async workers: a first checkout writes the whole tree.
pub(super) async fn hold(project: &Path, tree: String) -> Result<Files, EngineError> {
    let project = project.to_path_buf();
    let held = tokio::task::spawn_blocking(move || checkout::take(&project, &tree))
        .await
        .map_err(|e| Internal::Backend(format!("the checkout stopped: {e}")))?
        .map_err(Internal::Checkout)?;
    Ok(Files {
        dir: held.files().to_path_buf(),
        _checkout: Some(held),
        _snapshot: None,
    })
}

/// What a pipeline read from a checkout is named unless its file names it: what a run of the
/// working tree would name it (for the file's folder in the project), not the checkout's folder.
pub(super) fn pipeline_name(project: &Path, file: Option<&Path>) -> String {
    let file = project.join(file.unwrap_or(Path::new("pipe.yml")));
    let folder = file.parent().and_then(|d| d.canonicalize().ok());
    let name = folder.as_deref().and_then(Path::file_name);
    name.map_or_else(|| "pipeline".into(), |n| n.to_string_lossy().into_owned())
}

/// The files recorded run `run` ran on: its snapshot (its own or the one it shares), or a
/// checkout of its tree; `None` when its snapshot is gone.
pub(super) async fn recorded(project: &Path, run: &RunDir) -> Result<Option<Files>, EngineError> {
    if let Some(files) = snapshot(project, run).await? {
        return Ok(Some(files));
    }
    match recorded_tree(run) {
        Some(tree) => hold(project, tree).await.map(Some),
        None => Ok(None),
    }
}

/// Run `run`'s snapshot (its own or the one it shares), held; `None` when there is none (a run
/// of git content) or it is gone. Off the async workers: it waits while a prune removes it.
pub(super) async fn snapshot(project: &Path, run: &RunDir) -> Result<Option<Files>, EngineError> {
    let (project, at) = (project.to_path_buf(), run.clone());
    let held = tokio::task::spawn_blocking(move || shared::hold(&project, &at))
        .await
        .map_err(|e| Internal::Backend(format!("holding the snapshot stopped: {e}")))?
        .map_err(Internal::io(format!("hold the snapshot of run {}", run.id)))?;
    Ok(held.map(|(dir, held)| Files {
        dir,
        _checkout: None,
        _snapshot: Some(held),
    }))
}

/// The tree a run of git content ran on, as recorded in its directory.
pub(super) fn recorded_tree(run: &RunDir) -> Option<String> {
    std::fs::read_to_string(run.tree_file()).ok()
}
