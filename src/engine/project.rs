//! Which project a command acts on, found as cargo finds its manifest: the folder of the given
//! pipeline file, else the nearest folder at or above where the user stands that holds one of
//! the default pipeline files, looking no higher than the repository's root. `.pipe/` lives in
//! that folder, so every command finds the same runs from any of its subfolders. The caller
//! says where the user stands: the engine never reads the current directory.

use std::path::{Component, Path, PathBuf};

use super::EngineError;
use crate::pipeline::DEFAULT_FILES;

/// A project and its pipeline file, relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub dir: PathBuf,
    /// `None` when none was given: the first of the default names in `dir`.
    pub file: Option<PathBuf>,
}

/// The project of pipeline `file` (relative to `here`, as the user typed it), or the nearest
/// one at or above `here`.
pub fn find_project(here: &Path, file: Option<&Path>) -> Result<Project, EngineError> {
    match file {
        Some(file) => Ok(of_file(&normalize(&here.join(file)))),
        None => find_upwards(here),
    }
}

/// The folder of the file; a file of a `pipelines/` folder (as the default
/// `pipelines/ci.yml`) belongs to the folder above it, as it does when found by its default name.
fn of_file(path: &Path) -> Project {
    let name = PathBuf::from(path.file_name().unwrap_or_default());
    let folder = path.parent().unwrap_or(Path::new("/"));
    let (dir, file) = match folder.file_name() {
        Some(sub) if sub == "pipelines" => (
            folder.parent().unwrap_or(folder).to_path_buf(),
            Path::new(sub).join(name),
        ),
        _ => (folder.to_path_buf(), name),
    };
    Project {
        dir,
        file: Some(file),
    }
}

fn find_upwards(here: &Path) -> Result<Project, EngineError> {
    let here = normalize(here);
    // Outside a repository the walk goes up to the file system's root.
    let top = crate::git::work_root(&here).map(|root| normalize(&root));
    for dir in here.ancestors() {
        if DEFAULT_FILES.iter().any(|f| dir.join(f).is_file()) {
            return Ok(Project {
                dir: dir.to_path_buf(),
                file: None,
            });
        }
        if top.as_deref() == Some(dir) {
            break;
        }
    }
    let up_to = match &top {
        Some(top) if *top != here => format!(
            " and every folder above it up to the repository's root {}",
            top.display()
        ),
        Some(_) => " (the repository's root)".into(),
        None => " and every folder above it".into(),
    };
    Err(EngineError::Invalid(format!(
        "no pipeline file found: looked for {} in {}{up_to}",
        DEFAULT_FILES.join(", "),
        here.display()
    )))
}

/// `a/b/../c` → `a/c`, without touching the file system: the file may not exist, and its
/// folder is named as the user named it, links included.
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_file_is_relative_to_where_the_user_stands() {
        let found = find_project(Path::new("/p/src"), Some(Path::new("../pipe.yml"))).unwrap();
        assert_eq!(found.dir, Path::new("/p"));
        assert_eq!(found.file.as_deref(), Some(Path::new("pipe.yml")));
        let found = find_project(Path::new("/p"), Some(Path::new("/q/ci.yaml"))).unwrap();
        assert_eq!(found.dir, Path::new("/q"));
    }

    #[test]
    fn a_file_in_pipelines_belongs_to_the_folder_above() {
        let found = find_project(Path::new("/p"), Some(Path::new("pipelines/ci.yml"))).unwrap();
        assert_eq!(found.dir, Path::new("/p"));
        assert_eq!(found.file.as_deref(), Some(Path::new("pipelines/ci.yml")));
    }

    #[test]
    fn walks_up_to_the_nearest_pipeline_but_not_past_the_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path();
        std::fs::write(outer.join("pipe.yml"), "jobs: {}\n").unwrap();
        let repo = outer.join("repo");
        let deep = repo.join("src/deep");
        std::fs::create_dir_all(&deep).unwrap();
        git2::Repository::init(&repo).unwrap();
        let err = find_project(&deep, None).unwrap_err().to_string();
        assert!(err.contains("up to the repository's root"), "{err}");
        std::fs::create_dir_all(repo.join("pipelines")).unwrap();
        std::fs::write(repo.join("pipelines/ci.yml"), "jobs: {}\n").unwrap();
        assert_eq!(find_project(&deep, None).unwrap().dir, normalize(&repo));
        // Outside a repository the walk goes on up.
        let plain = outer.join("plain/sub");
        std::fs::create_dir_all(&plain).unwrap();
        assert_eq!(find_project(&plain, None).unwrap().dir, outer);
    }
}
