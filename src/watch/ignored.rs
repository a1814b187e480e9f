//! Which changed paths a run would not see: pipe's state, git's, and what the snapshot leaves
//! out by the same rules ([`crate::workspace::snapshot`]: `.ignore` and `.gitignore` files of
//! the project and its parent folders, the repository's `info/exclude`, the user's global
//! excludes), unless git tracks the file anyway.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::workspace::STATE_DIR;

/// The ignore files a folder can hold, the one that wins first.
const IGNORE_FILES: [&str; 2] = [".ignore", ".gitignore"];

pub struct Ignored {
    root: PathBuf,
    /// Each folder's matchers as read last; dropped when an ignore file changes.
    folders: HashMap<PathBuf, Vec<Gitignore>>,
    /// The repository's `info/exclude`, then the user's global excludes.
    repo_wide: Vec<Gitignore>,
    /// What git tracks, read once per batch and only when a path matches a rule.
    tracked: Option<HashSet<PathBuf>>,
}

impl Ignored {
    /// The rules for the project at `root` (a canonical path).
    pub fn new(root: &Path) -> Ignored {
        let mut ignored = Ignored {
            root: root.to_path_buf(),
            folders: HashMap::new(),
            repo_wide: Vec::new(),
            tracked: None,
        };
        ignored.reload();
        ignored
    }

    /// Reads the rules afresh at the next question: an ignore file changed.
    pub fn reload(&mut self) {
        self.folders.clear();
        self.tracked = None;
        let exclude = self
            .root
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .map(|repo| Gitignore::new(repo.join(".git/info/exclude")).0);
        let global = GitignoreBuilder::new(&self.root).build_global().0;
        self.repo_wide = exclude.into_iter().chain([global]).collect();
    }

    /// Forgets what git tracks: a new batch may follow a `git add -f`.
    pub fn new_batch(&mut self) {
        self.tracked = None;
    }

    /// Whether the change at `rel` (relative to the root) is invisible to a run.
    pub fn ignored(&mut self, rel: &Path) -> bool {
        if matches!(
            rel.components().next().and_then(|c| c.as_os_str().to_str()),
            Some(".git") | Some(STATE_DIR) | None
        ) {
            return true;
        }
        let path = self.root.join(rel);
        // A removed path cannot be asked: a file is the likelier guess, and a folder's rules
        // (`build/`) still match the files under it.
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !self.matches_a_rule(&path, is_dir) {
            return false;
        }
        let root = &self.root;
        let tracked = self
            .tracked
            .get_or_insert_with(|| crate::git::tracked_files(root).into_iter().collect());
        !tracked.contains(rel)
    }

    /// The deepest folder's rules win, `.ignore` before `.gitignore`, then the repository's.
    fn matches_a_rule(&mut self, path: &Path, is_dir: bool) -> bool {
        for dir in path.ancestors().skip(1) {
            let matchers = self.folders.entry(dir.to_path_buf()).or_insert_with(|| {
                IGNORE_FILES
                    .iter()
                    .map(|name| dir.join(name))
                    .filter(|file| file.is_file())
                    .map(|file| Gitignore::new(file).0)
                    .collect()
            });
            if let Some(decided) = decide(matchers, path, is_dir) {
                return decided;
            }
        }
        decide(&self.repo_wide, path, is_dir).unwrap_or(false)
    }
}

fn decide(matchers: &[Gitignore], path: &Path, is_dir: bool) -> Option<bool> {
    matchers
        .iter()
        .map(|m| m.matched_path_or_any_parents(path, is_dir))
        .find_map(|m| match m {
            Match::None => None,
            Match::Ignore(_) => Some(true),
            Match::Whitelist(_) => Some(false),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    #[test]
    fn state_and_git_folders_are_ignored() {
        let (_dir, root) = project();
        let mut ignored = Ignored::new(&root);
        assert!(ignored.ignored(Path::new(".pipe/runs/1/log")));
        assert!(ignored.ignored(Path::new(".git/index")));
        assert!(!ignored.ignored(Path::new("src/main.rs")));
    }

    #[test]
    fn nested_ignore_files_decide_deepest_first() {
        let (_dir, root) = project();
        std::fs::write(root.join(".gitignore"), "*.log\nbuild/\n").unwrap();
        std::fs::create_dir_all(root.join("sub/build")).unwrap();
        std::fs::write(root.join("sub/.gitignore"), "!keep.log\n").unwrap();
        let mut ignored = Ignored::new(&root);
        assert!(ignored.ignored(Path::new("a.log")));
        assert!(ignored.ignored(Path::new("sub/b.log")));
        assert!(!ignored.ignored(Path::new("sub/keep.log")));
        assert!(ignored.ignored(Path::new("sub/build/out.o")));
        assert!(!ignored.ignored(Path::new("sub/main.rs")));
    }

    #[test]
    fn a_changed_ignore_file_counts_after_reload() {
        let (_dir, root) = project();
        let mut ignored = Ignored::new(&root);
        assert!(!ignored.ignored(Path::new("notes.txt")));
        std::fs::write(root.join(".gitignore"), "notes.txt\n").unwrap();
        ignored.reload();
        assert!(ignored.ignored(Path::new("notes.txt")));
    }
}
