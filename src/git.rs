//! Facts from git, through git2: the commit and branch a run is built from, and whether the
//! working tree it is copied from differs from that commit.

use std::path::{Path, PathBuf};

mod export;
mod fetch;
mod rev;

pub use export::{changes, Change, ExportError};
pub use fetch::{fetch, has_commit, head_of, FetchError};
pub use rev::{resolve, GitError, Resolved, Rev};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub commit: Option<String>,
    /// The commit's shortest unambiguous abbreviation (7 characters at least).
    pub short_commit: Option<String>,
    pub branch: Option<String>,
    /// Tags that point at the commit.
    pub tags: Vec<String>,
    pub message: Option<String>,
    /// The tag at the commit, else `git describe --tags` (`1.4.0-3-gabc1234`), else
    /// `0.0.0-abc1234`.
    pub version: Option<String>,
    /// Paths under the project whose content in the working tree is not the commit's: tracked
    /// files modified, added, deleted or renamed, and untracked files git does not ignore.
    /// `None` without a commit to compare with, or when git could not tell.
    pub changed_paths: Option<u32>,
    /// The files the run changes against its base (see [`rev::base`]), relative to the project
    /// and `/`-separated; `None` when git cannot tell.
    pub changed_files: Option<Vec<String>>,
}

/// The commit checked out in the repository that contains `dir`, its branch and what the
/// working tree changes (counted against `changes_since` when given); empty when `dir` is not
/// in a repository or nothing is committed yet.
pub fn facts(dir: &Path, changes_since: Option<&str>) -> Facts {
    let Ok((repo, prefix)) = rev::open(dir) else {
        return Facts::default();
    };
    let Some(head) = repo.head().ok().and_then(|h| h.peel_to_commit().ok()) else {
        return Facts::default();
    };
    let mut facts = rev::commit_facts(&repo, &head, rev::head_branch(&repo));
    facts.changed_paths = changed_paths(&repo, dir);
    facts.changed_files = working_changes(&repo, &head, &prefix, changes_since);
    facts
}

/// The commit's own facts (message, version, …) for a run recorded with `commit`, or nothing
/// when the repository no longer has it.
pub fn commit_facts(dir: &Path, commit: &str) -> Option<Facts> {
    let (repo, _) = rev::open(dir).ok()?;
    let commit = repo.find_commit(git2::Oid::from_str(commit).ok()?).ok()?;
    Some(rev::commit_facts(&repo, &commit, None))
}

/// The files a run of the working tree changes: those HEAD changes against its base, and those
/// the working tree changes against HEAD (as `git status` lists them).
fn working_changes(
    repo: &git2::Repository,
    head: &git2::Commit,
    prefix: &Path,
    since: Option<&str>,
) -> Option<Vec<String>> {
    let base = rev::base(repo, Some(head.id()), since, false)?;
    let tree = rev::subtree(repo, &head.tree().ok()?, prefix).ok()?;
    let mut paths = rev::diff_paths(repo, base, tree.as_ref(), prefix)?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let under = prefix.as_os_str().as_encoded_bytes();
    for entry in repo.statuses(Some(&mut opts)).ok()?.iter() {
        let path = entry.path_bytes();
        let rel = if under.is_empty() {
            Some(path)
        } else {
            path.strip_prefix(under).and_then(|r| r.strip_prefix(b"/"))
        };
        if let Some(rel) = rel {
            paths.push(String::from_utf8_lossy(rel).into_owned());
        }
    }
    paths.sort();
    paths.dedup();
    Some(paths)
}

/// How many paths under `dir` differ from the commit checked out, as `git status` lists them
/// (untracked directories counted file by file). Paths elsewhere in the repository are not
/// part of a snapshot of `dir`, so they do not count. pipe's own `.pipe` is ignored by the
/// `.gitignore` pipe writes into it, so it never counts either.
fn changed_paths(repo: &git2::Repository, dir: &Path) -> Option<u32> {
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let dir = dir.canonicalize().ok()?;
    let under = dir.strip_prefix(&workdir).ok()?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false);
    let statuses = repo.statuses(Some(&mut opts)).ok()?;
    let count = statuses
        .iter()
        .filter(|entry| entry.status() != git2::Status::CURRENT)
        .filter(|entry| !entry.status().contains(git2::Status::IGNORED))
        .filter(|entry| {
            // Paths in a status are relative to the working directory, `/`-separated.
            entry
                .path_bytes()
                .strip_prefix(under.as_os_str().as_encoded_bytes())
                .is_some_and(|rest| {
                    under.as_os_str().is_empty() || rest.is_empty() || rest.starts_with(b"/")
                })
        })
        .count();
    u32::try_from(count).ok()
}

/// The files git tracks under `dir`, relative to it (empty outside a repository). Some of them
/// may match `.gitignore` (added with `git add -f`): they are still part of the tree.
pub fn tracked_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return Vec::new();
    };
    let (Some(workdir), Ok(index)) = (repo.workdir(), repo.index()) else {
        return Vec::new();
    };
    let (Ok(workdir), Ok(dir)) = (workdir.canonicalize(), dir.canonicalize()) else {
        return Vec::new();
    };
    index
        .iter()
        .filter_map(|entry| {
            let path = workdir.join(std::str::from_utf8(&entry.path).ok()?);
            path.strip_prefix(&dir).ok().map(Path::to_path_buf)
        })
        .collect()
}

/// The working tree's root of the repository `dir` is in, `None` outside one (or in a bare
/// one).
pub fn work_root(dir: &Path) -> Option<PathBuf> {
    let repo = git2::Repository::discover(dir).ok()?;
    repo.workdir()?.canonicalize().ok()
}

/// The folder git runs the hooks of the repository containing `dir` from: `core.hooksPath`
/// when set (relative to the working tree's root, as git reads it), else the `hooks` folder
/// of the repository's common git directory, which a linked worktree shares with its main one.
/// `None` outside a repository.
pub fn hooks_dir(dir: &Path) -> Option<PathBuf> {
    let repo = git2::Repository::discover(dir).ok()?;
    let configured = repo
        .config()
        .ok()
        .and_then(|c| c.get_path("core.hooksPath").ok());
    Some(match configured {
        Some(path) if path.is_absolute() => path,
        Some(path) => repo.workdir().unwrap_or_else(|| repo.path()).join(path),
        None => repo.commondir().join("hooks"),
    })
}

/// git's `user.name`: the repository's own setting, else the user's or the system's.
pub fn user_name(project: &Path) -> Option<String> {
    let config = match git2::Repository::discover(project) {
        Ok(repo) => repo.config().ok()?,
        Err(_) => git2::Config::open_default().ok()?,
    };
    config.get_string("user.name").ok()
}

/// `Name <email>` of the author of `commit`.
pub fn commit_author(dir: &Path, commit: &str) -> Option<String> {
    let (repo, _) = rev::open(dir).ok()?;
    let commit = repo.find_commit(git2::Oid::from_str(commit).ok()?).ok()?;
    let author = commit.author();
    person(author.name(), author.email())
}

/// `Name <email>` of the local git user, as a commit made in `project` would name its author.
pub fn user(project: &Path) -> Option<String> {
    let config = match git2::Repository::discover(project) {
        Ok(repo) => repo.config().ok()?,
        Err(_) => git2::Config::open_default().ok()?,
    };
    let get = |key| config.get_string(key).ok();
    person(get("user.name").as_deref(), get("user.email").as_deref())
}

fn person(name: Option<&str>, email: Option<&str>) -> Option<String> {
    match (
        name.filter(|n| !n.is_empty()),
        email.filter(|e| !e.is_empty()),
    ) {
        (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
        (name, email) => name.or(email).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commit_and_branch_of_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        assert_eq!(facts(dir.path(), None), Facts::default());
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("f")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let oid = repo
            .commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
            .unwrap();
        repo.tag_lightweight("v1.0", &repo.find_object(oid, None).unwrap(), false)
            .unwrap();
        let f = facts(dir.path(), None);
        assert_eq!(f.commit, Some(oid.to_string()));
        assert!(f.branch.is_some());
        assert_eq!(f.tags, ["v1.0"]);
        assert_eq!(f.changed_paths, Some(0), "a tree just committed is clean");

        // Modified, untracked (in a new folder) and deleted count; ignored files do not.
        std::fs::write(dir.path().join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(dir.path().join("f"), "y").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/new"), "n").unwrap();
        std::fs::write(dir.path().join("sub/out.log"), "l").unwrap();
        assert_eq!(facts(dir.path(), None).changed_paths, Some(3)); // .gitignore, f, sub/new
                                                                    // Seen from the folder `sub` (a project inside the repository), only its own path.
        assert_eq!(facts(&dir.path().join("sub"), None).changed_paths, Some(1));
        std::fs::remove_file(dir.path().join("f")).unwrap();
        assert_eq!(
            facts(dir.path(), None).changed_paths,
            Some(3),
            "a deletion counts"
        );
    }
}
