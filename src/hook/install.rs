//! `pipe hook install`, `uninstall` and `status`: pipe's script in the repository's hooks folder
//! (wherever `core.hooksPath` and worktrees put it), the hook it replaces kept beside it as
//! `<hook>.pipe-original`, run first, and put back on uninstall.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::script::{is_pipes, Script};
use super::{check_stages, HookError, Kind};

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    New(PathBuf),
    /// pipe's hook was there already and now runs what was asked.
    Updated(PathBuf),
    /// Another hook was there: it is kept at `kept` and runs before pipe's.
    Chained {
        path: PathBuf,
        kept: PathBuf,
    },
}

/// What `uninstall` did for one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Removed(PathBuf),
    /// The hook that pipe's had replaced is back.
    Restored(PathBuf),
    /// The hook there is not pipe's: left alone.
    NotPipes(PathBuf),
    NotInstalled,
}

/// One hook's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub kind: Kind,
    pub path: PathBuf,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Absent,
    Other,
    Pipes {
        script: Script,
        /// The hook pipe's runs first, if it replaced one.
        chained: Option<PathBuf>,
    },
}

/// The hooks folder of the repository containing `dir`.
fn hooks_dir(dir: &Path) -> Result<PathBuf, HookError> {
    crate::git::hooks_dir(dir).ok_or_else(|| HookError::NotARepository(dir.to_path_buf()))
}

/// Where pipe keeps the hook its own replaced.
pub fn kept_path(hooks: &Path, kind: Kind) -> PathBuf {
    hooks.join(format!("{}.pipe-original", kind.name()))
}

/// The hook another tool put in place pipe keeps, not a link's target: `symlink_metadata`.
fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Installs `script` as its hook in the repository containing `dir`. A hook pipe wrote is
/// updated in place; any other is kept and run first. `force` replaces a kept hook left from an
/// earlier install, which pipe otherwise refuses to overwrite.
pub fn install(dir: &Path, script: &Script, force: bool) -> Result<Installed, HookError> {
    check_stages(&script.stages)?;
    let hooks = hooks_dir(dir)?;
    let path = hooks.join(script.kind.name());
    let kept = kept_path(&hooks, script.kind);
    fs::create_dir_all(&hooks).map_err(HookError::io(format!("create {}", hooks.display())))?;
    let done = if !exists(&path) {
        Installed::New(path.clone())
    } else if is_pipes(&path) {
        Installed::Updated(path.clone())
    } else {
        if exists(&kept) && !force {
            return Err(HookError::Refused(format!(
                "{} is not pipe's, and {} already holds a hook pipe kept before; move one of them away, or pass --force to replace the kept one",
                path.display(),
                kept.display()
            )));
        }
        fs::rename(&path, &kept).map_err(HookError::io(format!("keep {}", path.display())))?;
        Installed::Chained {
            path: path.clone(),
            kept,
        }
    };
    // Written beside the hook and renamed over it: git never runs half a script.
    let fresh = hooks.join(format!(".{}.pipe-new", script.kind.name()));
    let write = || -> std::io::Result<()> {
        fs::write(&fresh, script.render())?;
        fs::set_permissions(&fresh, fs::Permissions::from_mode(0o755))?;
        fs::rename(&fresh, &path)
    };
    write().map_err(HookError::io(format!("write {}", path.display())))?;
    Ok(done)
}

/// Removes pipe's hooks of `kinds` and puts back what they replaced.
pub fn uninstall(dir: &Path, kinds: &[Kind]) -> Result<Vec<(Kind, Removed)>, HookError> {
    let hooks = hooks_dir(dir)?;
    let mut done = Vec::new();
    for &kind in kinds {
        let path = hooks.join(kind.name());
        let kept = kept_path(&hooks, kind);
        let removed = if !exists(&path) {
            Removed::NotInstalled
        } else if !is_pipes(&path) {
            Removed::NotPipes(path)
        } else if exists(&kept) {
            fs::rename(&kept, &path)
                .map_err(HookError::io(format!("restore {}", path.display())))?;
            Removed::Restored(path)
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(HookError::io(format!("remove {}", path.display()))(e))
                }
                _ => Removed::Removed(path),
            }
        };
        done.push((kind, removed));
    }
    Ok(done)
}

/// The state of each hook pipe knows, in the repository containing `dir`.
pub fn status(dir: &Path) -> Result<Vec<Status>, HookError> {
    let hooks = hooks_dir(dir)?;
    Ok(Kind::ALL
        .into_iter()
        .map(|kind| {
            let path = hooks.join(kind.name());
            let state = if !exists(&path) {
                State::Absent
            } else {
                match fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| Script::parse(&t))
                {
                    Some(script) => State::Pipes {
                        script,
                        chained: Some(kept_path(&hooks, kind)).filter(|k| exists(k)),
                    },
                    None => State::Other,
                }
            };
            Status { kind, path, state }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git2::Repository::init(dir.path()).unwrap();
        dir
    }

    fn script(stages: &[&str]) -> Script {
        Script {
            kind: Kind::PrePush,
            stages: stages.iter().map(|s| s.to_string()).collect(),
            backend: None,
            pipe: PathBuf::from("/usr/bin/pipe"),
        }
    }

    #[test]
    fn installs_updates_in_place_and_removes() {
        let dir = repo();
        let hook = dir.path().join(".git/hooks/pre-push");
        assert_eq!(
            install(dir.path(), &script(&["build"]), false).unwrap(),
            Installed::New(hook.clone())
        );
        let mode = fs::metadata(&hook).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "executable");
        assert_eq!(
            install(dir.path(), &script(&["test"]), false).unwrap(),
            Installed::Updated(hook.clone())
        );
        let state = &status(dir.path()).unwrap()[0].state;
        assert_eq!(
            state,
            &State::Pipes {
                script: script(&["test"]),
                chained: None
            }
        );
        assert!(!kept_path(&dir.path().join(".git/hooks"), Kind::PrePush).exists());
        let removed = uninstall(dir.path(), &Kind::ALL).unwrap();
        assert_eq!(removed[0].1, Removed::Removed(hook.clone()));
        assert_eq!(removed[1].1, Removed::NotInstalled);
        assert!(!hook.exists());
    }

    #[test]
    fn another_hook_is_kept_and_restored_and_never_overwritten() {
        let dir = repo();
        let hooks = dir.path().join(".git/hooks");
        let hook = hooks.join("pre-push");
        fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
        let kept = kept_path(&hooks, Kind::PrePush);
        assert_eq!(
            install(dir.path(), &script(&["build"]), false).unwrap(),
            Installed::Chained {
                path: hook.clone(),
                kept: kept.clone()
            }
        );
        assert_eq!(fs::read_to_string(&kept).unwrap(), "#!/bin/sh\nexit 0\n");
        // Another tool replaces pipe's hook: a second install would lose the kept one.
        fs::write(&hook, "#!/bin/sh\nexit 3\n").unwrap();
        let refused = install(dir.path(), &script(&["build"]), false).unwrap_err();
        assert!(refused.to_string().contains("--force"), "{refused}");
        assert_eq!(fs::read_to_string(&hook).unwrap(), "#!/bin/sh\nexit 3\n");
        assert_eq!(
            uninstall(dir.path(), &[Kind::PrePush]).unwrap()[0].1,
            Removed::NotPipes(hook.clone()),
            "a hook that is not pipe's is left alone"
        );
        install(dir.path(), &script(&["build"]), true).unwrap();
        assert_eq!(fs::read_to_string(&kept).unwrap(), "#!/bin/sh\nexit 3\n");
        assert_eq!(
            uninstall(dir.path(), &[Kind::PrePush]).unwrap()[0].1,
            Removed::Restored(hook.clone())
        );
        assert_eq!(fs::read_to_string(&hook).unwrap(), "#!/bin/sh\nexit 3\n");
        assert!(!kept.exists());
    }

    #[test]
    fn hooks_go_where_core_hooks_path_and_worktrees_say() {
        let dir = repo();
        let repo = git2::Repository::open(dir.path()).unwrap();
        repo.config()
            .unwrap()
            .set_str("core.hooksPath", "ci/hooks")
            .unwrap();
        let sub = dir.path().join("src");
        fs::create_dir(&sub).unwrap();
        assert_eq!(
            install(&sub, &script(&["build"]), false).unwrap(),
            Installed::New(dir.path().join("ci/hooks/pre-push"))
        );

        // A linked worktree shares the main repository's hooks.
        let main = self::repo();
        let repo = git2::Repository::open(main.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
            .unwrap();
        let linked = tempfile::tempdir().unwrap();
        let at = linked.path().join("wt");
        repo.worktree("wt", &at, None).unwrap();
        assert_eq!(
            install(&at, &script(&["build"]), false).unwrap(),
            Installed::New(main.path().join(".git/hooks/pre-push"))
        );
        let outside = tempfile::tempdir().unwrap();
        assert!(matches!(
            status(outside.path()),
            Err(HookError::NotARepository(_))
        ));
    }

    #[test]
    fn a_hook_never_runs_deploy_or_release() {
        let dir = repo();
        let err = install(dir.path(), &script(&["build", "release"]), false).unwrap_err();
        assert!(
            err.to_string().contains("never runs the `release` stage"),
            "{err}"
        );
        assert!(install(dir.path(), &script(&["deploy"]), true).is_err());
        assert!(install(dir.path(), &script(&["te'st"]), false).is_err());
        assert!(!dir.path().join(".git/hooks/pre-push").exists());
    }
}
