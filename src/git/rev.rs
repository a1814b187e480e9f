//! Runs of a commit or of the index (what is staged): what runs (the tree of the project's
//! folder in it), the commit's facts (branch, tags, message, version) and the files the run
//! changes against a base. Nothing here touches the working tree or writes the index file.

use std::path::{Path, PathBuf};

use git2::{Commit, Oid, Repository, Tree};

use super::Facts;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{} is not in a git repository with a working tree", .0.display())]
    NoRepository(PathBuf),
    #[error("`{0}` names no commit in this repository")]
    NoSuchRev(String),
    #[error("the project's folder `{0}` is not in that commit or index")]
    NotInTree(String),
    #[error("the index has unresolved conflicts: resolve them before a run of what is staged")]
    Conflicts,
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// What a run of git content runs.
#[derive(Debug, Clone, Copy)]
pub enum Rev<'a> {
    /// What is staged: the commit `git commit` would make now.
    Index,
    /// What is staged in this index file instead of the repository's own.
    IndexFile(&'a Path),
    /// A commit, as `git rev-parse` names it.
    Commit(&'a str),
}

/// A commit or index resolved: the id of the project folder's tree in it, and the run's facts.
#[derive(Debug)]
pub struct Resolved {
    pub tree: String,
    pub facts: Facts,
}

/// Resolves `rev` for the project in `project`. The changed files are computed against
/// `changes_since` when given (see [`base`]).
pub fn resolve(
    project: &Path,
    rev: Rev<'_>,
    changes_since: Option<&str>,
) -> Result<Resolved, GitError> {
    let (repo, prefix) = open(project)?;
    match rev {
        Rev::Commit(name) => {
            let commit = repo
                .revparse_single(name)
                .and_then(|o| o.peel_to_commit())
                .map_err(|_| GitError::NoSuchRev(name.to_string()))?;
            let root = commit.tree()?;
            let tree = subtree(&repo, &root, &prefix)?
                .ok_or_else(|| GitError::NotInTree(prefix.display().to_string()))?;
            let mut facts = commit_facts(&repo, &commit, branch_of(&repo, name, commit.id()));
            // Exactly the commit's content: never dirty.
            facts.changed_paths = Some(0);
            facts.changed_files = base(&repo, Some(commit.id()), changes_since, false)
                .and_then(|base| diff_paths(&repo, base, Some(&tree), &prefix));
            Ok(Resolved {
                tree: tree.id().to_string(),
                facts,
            })
        }
        Rev::Index | Rev::IndexFile(_) => {
            let mut index = match rev {
                Rev::IndexFile(file) => git2::Index::open(file)?,
                _ => repo.index()?,
            };
            if index.has_conflicts() {
                return Err(GitError::Conflicts);
            }
            // Writes the index's tree objects to the object database (the blobs are there
            // since `git add`); the index file itself is not written.
            let root = repo.find_tree(index.write_tree_to(&repo)?)?;
            let tree = subtree(&repo, &root, &prefix)?
                .ok_or_else(|| GitError::NotInTree(prefix.display().to_string()))?;
            let head = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
            let mut facts = match &head {
                Some(head) => {
                    let branch = head_branch(&repo);
                    commit_facts(&repo, head, branch)
                }
                None => Facts {
                    branch: head_branch(&repo),
                    ..Facts::default()
                },
            };
            // What is staged but not committed, as the working tree's changes are counted.
            let head_tree = match &head {
                Some(h) => subtree(&repo, &h.tree()?, &prefix)?,
                None => None,
            };
            facts.changed_paths = count_diff(&repo, head_tree.as_ref(), &tree);
            let head_id = head.as_ref().map(Commit::id);
            facts.changed_files = base(&repo, head_id, changes_since, true)
                .and_then(|base| diff_paths(&repo, base, Some(&tree), &prefix));
            Ok(Resolved {
                tree: tree.id().to_string(),
                facts,
            })
        }
    }
}

/// The repository holding `project` and the project's folder in it, relative to its root.
pub(super) fn open(project: &Path) -> Result<(Repository, PathBuf), GitError> {
    let none = || GitError::NoRepository(project.to_path_buf());
    let repo = Repository::discover(project).map_err(|_| none())?;
    let workdir = repo
        .workdir()
        .ok_or_else(none)?
        .canonicalize()
        .map_err(|_| none())?;
    let dir = project.canonicalize().map_err(|_| none())?;
    let prefix = dir
        .strip_prefix(&workdir)
        .map_err(|_| none())?
        .to_path_buf();
    Ok((repo, prefix))
}

/// The tree of folder `prefix` in `root` (`root` itself for an empty prefix); `None` when the
/// folder is not there.
pub(super) fn subtree<'r>(
    repo: &'r Repository,
    root: &Tree<'r>,
    prefix: &Path,
) -> Result<Option<Tree<'r>>, GitError> {
    if prefix.as_os_str().is_empty() {
        return Ok(Some(root.clone()));
    }
    let Ok(entry) = root.get_path(prefix) else {
        return Ok(None);
    };
    Ok(entry.to_object(repo)?.into_tree().ok())
}

/// A commit's facts: the commit, `branch`, the tags pointing at it, its message and version.
pub(super) fn commit_facts(repo: &Repository, commit: &Commit, branch: Option<String>) -> Facts {
    let short = commit
        .as_object()
        .short_id()
        .ok()
        .and_then(|s| s.as_str().map(str::to_string));
    Facts {
        commit: Some(commit.id().to_string()),
        short_commit: short.clone(),
        branch,
        tags: tags_at(repo, commit.id()),
        message: commit.message().map(|m| m.trim_end().to_string()),
        version: Some(version(commit, short.as_deref().unwrap_or_default())),
        changed_paths: None,
        changed_files: None,
    }
}

/// The tags that point at `commit` (annotated ones peeled), by name.
pub(super) fn tags_at(repo: &Repository, commit: Oid) -> Vec<String> {
    let mut tags = Vec::new();
    if let Ok(names) = repo.tag_names(None) {
        for name in names.iter().flatten() {
            let points_here = repo
                .revparse_single(&format!("refs/tags/{name}"))
                .and_then(|o| o.peel_to_commit())
                .is_ok_and(|c| c.id() == commit);
            if points_here {
                tags.push(name.to_string());
            }
        }
    }
    tags
}

/// `git describe --tags`: the tag at the commit, else `TAG-N-gSHORT` from the nearest tag
/// behind it, else `0.0.0-SHORT`.
fn version(commit: &Commit, short: &str) -> String {
    let mut opts = git2::DescribeOptions::new();
    opts.describe_tags();
    commit
        .as_object()
        .describe(&opts)
        .and_then(|d| d.format(Some(git2::DescribeFormatOptions::new().abbreviated_size(7))))
        .unwrap_or_else(|_| format!("0.0.0-{short}"))
}

/// The branch checked out, when HEAD is on one (even one without a commit yet).
pub(super) fn head_branch(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target()?;
    target.strip_prefix("refs/heads/").map(str::to_string)
}

/// The branch a commit run records: the branch `name` names when it names one; else a local
/// branch whose tip is the commit — the one checked out if it is one of them, else the first
/// by name; `None` when no branch ends there (a detached commit, an older commit).
fn branch_of(repo: &Repository, name: &str, commit: Oid) -> Option<String> {
    let short = name.strip_prefix("refs/heads/").unwrap_or(name);
    if repo.find_branch(short, git2::BranchType::Local).is_ok() {
        return Some(short.to_string());
    }
    let mut tips: Vec<String> = repo
        .branches(Some(git2::BranchType::Local))
        .ok()?
        .flatten()
        .filter(|(b, _)| b.get().peel_to_commit().is_ok_and(|c| c.id() == commit))
        .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
        .collect();
    tips.sort();
    match head_branch(repo) {
        Some(head) if tips.contains(&head) => Some(head),
        _ => tips.into_iter().next(),
    }
}

/// The default branch's tip: `origin/HEAD`, else `main`, else `master`.
fn default_tip(repo: &Repository) -> Option<Oid> {
    [
        "refs/remotes/origin/HEAD",
        "refs/heads/main",
        "refs/heads/master",
    ]
    .iter()
    .find_map(|name| {
        let r = repo.find_reference(name).ok()?;
        Some(r.resolve().ok()?.peel_to_commit().ok()?.id())
    })
}

/// The commit whose tree a run's changed files are counted from (`Some(None)`: from nothing,
/// every file is new); `None` when git cannot tell. `since` when given; else the merge base
/// with the default branch when `commit` is not on it; else the commit's first parent — or,
/// for what is staged (`staged`), `commit` (HEAD) itself, the parent of the commit to be.
pub(super) fn base(
    repo: &Repository,
    commit: Option<Oid>,
    since: Option<&str>,
    staged: bool,
) -> Option<Option<Oid>> {
    if let Some(since) = since {
        let base = repo.revparse_single(since).and_then(|o| o.peel_to_commit());
        return base.ok().map(|c| Some(c.id()));
    }
    let Some(commit) = commit else {
        return Some(None);
    };
    if let Some(tip) = default_tip(repo) {
        let on_default = tip == commit || repo.graph_descendant_of(tip, commit).ok()?;
        if !on_default {
            // Unrelated histories have no merge base: git cannot tell.
            return repo.merge_base(commit, tip).ok().map(Some);
        }
    }
    if staged {
        return Some(Some(commit));
    }
    Some(repo.find_commit(commit).ok()?.parent_id(0).ok())
}

/// The paths (relative to the project, `/`-separated) that differ between folder `prefix` of
/// commit `base` and `tree`; `None` when git cannot tell.
pub(super) fn diff_paths(
    repo: &Repository,
    base: Option<Oid>,
    tree: Option<&Tree>,
    prefix: &Path,
) -> Option<Vec<String>> {
    let old = match base {
        Some(id) => subtree(repo, &repo.find_commit(id).ok()?.tree().ok()?, prefix).ok()?,
        None => None,
    };
    let diff = repo.diff_tree_to_tree(old.as_ref(), tree, None).ok()?;
    let mut paths: Vec<String> = diff
        .deltas()
        .filter_map(|d| d.new_file().path_bytes().or(d.old_file().path_bytes()))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    Some(paths)
}

fn count_diff(repo: &Repository, old: Option<&Tree>, new: &Tree) -> Option<u32> {
    let diff = repo.diff_tree_to_tree(old, Some(new), None).ok()?;
    u32::try_from(diff.deltas().len()).ok()
}
