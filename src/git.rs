//! Facts from git, through git2: the commit and branch a run is built from, and whether the
//! working tree it is copied from differs from that commit.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// Tags that point at the commit.
    pub tags: Vec<String>,
    /// Paths under the project whose content in the working tree is not the commit's: tracked
    /// files modified, added, deleted or renamed, and untracked files git does not ignore.
    /// `None` without a commit to compare with, or when git could not tell.
    pub changed_paths: Option<u32>,
    /// The files a run changes, relative to the project and `/`-separated: for a run of the
    /// working tree, the paths counted in `changed_paths`. `None` when git cannot tell.
    pub changed_files: Option<Vec<String>>,
}

/// The commit checked out in the repository that contains `dir`, and its branch; empty when
/// `dir` is not in a repository or nothing is committed yet.
pub fn facts(dir: &Path) -> Facts {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return Facts::default();
    };
    let Ok(head) = repo.head() else {
        return Facts::default();
    };
    let commit = head.peel_to_commit().ok().map(|c| c.id());
    let mut tags = Vec::new();
    if let (Some(commit), Ok(names)) = (commit, repo.tag_names(None)) {
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
    let changed_files = commit.and_then(|_| changed_files(&repo, dir));
    Facts {
        commit: commit.map(|c| c.to_string()),
        branch: head
            .is_branch()
            .then(|| head.shorthand().map(str::to_string))
            .flatten(),
        tags,
        changed_paths: changed_files
            .as_ref()
            .and_then(|f| u32::try_from(f.len()).ok()),
        changed_files,
    }
}

/// The paths under `dir` that differ from the commit checked out, as `git status` lists them
/// (untracked directories file by file), relative to `dir`. Paths elsewhere in the repository
/// are not part of a snapshot of `dir`, so they do not count. pipe's own `.pipe` is ignored by
/// the `.gitignore` pipe writes into it, so it never counts either.
fn changed_files(repo: &git2::Repository, dir: &Path) -> Option<Vec<String>> {
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let dir = dir.canonicalize().ok()?;
    let under = dir.strip_prefix(&workdir).ok()?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false);
    let statuses = repo.statuses(Some(&mut opts)).ok()?;
    let under = under.as_os_str().as_encoded_bytes();
    let files = statuses
        .iter()
        .filter(|entry| entry.status() != git2::Status::CURRENT)
        .filter(|entry| !entry.status().contains(git2::Status::IGNORED))
        .filter_map(|entry| {
            // Paths in a status are relative to the working directory, `/`-separated.
            let rest = entry.path_bytes().strip_prefix(under)?;
            let rest = match rest.strip_prefix(b"/") {
                Some(inner) if !under.is_empty() => inner,
                _ if under.is_empty() => rest,
                _ => return None,
            };
            Some(String::from_utf8_lossy(rest).into_owned())
        })
        .collect();
    Some(files)
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

/// git's `user.name`: the repository's own setting, else the user's or the system's.
pub fn user_name(project: &Path) -> Option<String> {
    let config = match git2::Repository::discover(project) {
        Ok(repo) => repo.config().ok()?,
        Err(_) => git2::Config::open_default().ok()?,
    };
    config.get_string("user.name").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commit_and_branch_of_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        assert_eq!(facts(dir.path()), Facts::default());
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
        let f = facts(dir.path());
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
        let now = facts(dir.path());
        assert_eq!(now.changed_paths, Some(3));
        let mut files = now.changed_files.unwrap();
        files.sort();
        assert_eq!(files, [".gitignore", "f", "sub/new"]);
        // Seen from the folder `sub` (a project inside the repository), only its own path.
        assert_eq!(
            facts(&dir.path().join("sub")).changed_files,
            Some(vec!["new".to_string()])
        );
        std::fs::remove_file(dir.path().join("f")).unwrap();
        assert_eq!(
            facts(dir.path()).changed_paths,
            Some(3),
            "a deletion counts"
        );
    }
}
