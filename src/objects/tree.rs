//! A directory of artifacts in the object store: a manifest of its files (each a blob) and
//! links (kept as links, never followed). A manifest read back is not trusted: its paths must be
//! plain relative paths, and it is laid through a fresh folder without following any link.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{Objects, ObjectsError};
use crate::workspace::{self, private};

/// A directory's files and links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the directory.
    pub path: String,
    #[serde(flatten)]
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File {
        sha256: String,
        size: u64,
        executable: bool,
    },
    Link {
        target: String,
    },
}

impl Objects {
    /// Stores the files beneath `dir` (none when it is missing) and returns their manifest.
    /// Nothing is followed: a link is recorded as a link.
    pub async fn put_tree(&self, dir: &Path) -> Result<Tree, ObjectsError> {
        let mut tree = Tree::default();
        let root = dir.to_path_buf();
        let walked = tokio::task::spawn_blocking(move || workspace::walk(&root))
            .await
            .map_err(io::Error::other)??;
        for e in walked {
            let path = e.path.to_string_lossy().into_owned();
            let kind = match e.link {
                Some(target) => Kind::Link {
                    target: target.to_string_lossy().into_owned(),
                },
                None => {
                    let (bytes, executable) = read_nofollow(&dir.join(&e.path)).await?;
                    let size = bytes.len() as u64;
                    let sha256 = self.put_blob(bytes).await?;
                    Kind::File {
                        sha256,
                        size,
                        executable,
                    }
                }
            };
            tree.entries.push(Entry { path, kind });
        }
        Ok(tree)
    }

    /// Lays `tree` at `dest` (merged into what is there), each file checked against its hash
    /// before anything is laid. `scratch` is a folder of pipe's own to build it in; it is
    /// removed after.
    pub async fn get_tree(
        &self,
        tree: &Tree,
        dest: &Path,
        scratch: &Path,
    ) -> Result<(), ObjectsError> {
        let paths = checked_paths(tree)?;
        let mut files = Vec::new();
        for (entry, rel) in tree.entries.iter().zip(&paths) {
            if let Kind::File {
                sha256, executable, ..
            } = &entry.kind
            {
                files.push((rel.clone(), self.get_blob(sha256).await?, *executable));
            }
        }
        let (tree, dest, scratch) = (tree.clone(), dest.to_path_buf(), scratch.to_path_buf());
        // Writing files is blocking work: off the async workers.
        tokio::task::spawn_blocking(move || {
            let built = build(&tree, &paths, files, &dest, &scratch);
            let _ = workspace::remove(&scratch);
            built
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn build(
    tree: &Tree,
    paths: &[PathBuf],
    files: Vec<(PathBuf, Vec<u8>, bool)>,
    dest: &Path,
    scratch: &Path,
) -> Result<(), ObjectsError> {
    workspace::remove(scratch)?;
    if let Some(parent) = scratch.parent() {
        private::dir(parent)?;
    }
    private::new_dir(scratch)?;
    // Files first: the scratch folder holds no link yet, so making their folders follows none.
    for (rel, bytes, executable) in files {
        let at = scratch.join(&rel);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&at, bytes)?;
        if executable {
            fs::set_permissions(&at, fs::Permissions::from_mode(0o755))?;
        }
    }
    for (entry, rel) in tree.entries.iter().zip(paths) {
        if let Kind::Link { target } = &entry.kind {
            let at = scratch.join(rel);
            if let Some(parent) = at.parent() {
                fs::create_dir_all(parent)?;
            }
            std::os::unix::fs::symlink(target, at)?;
        }
    }
    workspace::lay(scratch, dest, Path::new(""))?;
    Ok(())
}

/// Each entry's path, refused unless it is plain and relative, and unless no entry lies behind
/// a link of the tree (laying it would follow the link).
fn checked_paths(tree: &Tree) -> Result<Vec<PathBuf>, ObjectsError> {
    let refuse = |path: &str, why: &str| ObjectsError::Record {
        name: "an artifact manifest".into(),
        why: format!("its path `{path}` {why}"),
    };
    let links: HashSet<&Path> = tree
        .entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::Link { .. }))
        .map(|e| Path::new(&e.path))
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in &tree.entries {
        let path = Path::new(&e.path);
        let plain =
            !e.path.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(refuse(&e.path, "is not a plain relative path"));
        }
        if path.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(refuse(&e.path, "lies behind a link"));
        }
        if !seen.insert(path) {
            return Err(refuse(&e.path, "is listed twice"));
        }
        out.push(path.to_path_buf());
    }
    Ok(out)
}

/// A file's bytes and whether it is executable, opened without following a link at its end
/// (`walk` found it as a file, beneath real directories).
async fn read_nofollow(path: &Path) -> io::Result<(Vec<u8>, bool)> {
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .await?;
    let executable = file.metadata().await?.permissions().mode() & 0o111 != 0;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await?;
    Ok((bytes, executable))
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    #[tokio::test]
    async fn a_tree_comes_back_with_its_bytes_modes_and_links_as_links() {
        let (_d, objects) = testing::store();
        let work = tempfile::tempdir().unwrap();
        let from = work.path().join("from");
        fs::create_dir_all(from.join("bin")).unwrap();
        fs::write(from.join("bin/app"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(from.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(from.join("notes"), "n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.join("passwd")).unwrap();
        let tree = objects.put_tree(&from).await.unwrap();
        assert_eq!(tree.entries.len(), 3);
        let to = work.path().join("to");
        objects
            .get_tree(&tree, &to, &work.path().join("scratch"))
            .await
            .unwrap();
        assert_eq!(
            fs::read_to_string(to.join("bin/app")).unwrap(),
            "#!/bin/sh\n"
        );
        let mode = fs::metadata(to.join("bin/app"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            fs::read_link(to.join("passwd")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(!work.path().join("scratch").exists());
    }

    #[tokio::test]
    async fn a_manifest_that_escapes_or_reaches_behind_a_link_is_refused_and_lays_nothing() {
        let (_d, objects) = testing::store();
        let sha256 = objects.put_blob(b"x".to_vec()).await.unwrap();
        let file = |path: &str| Entry {
            path: path.into(),
            kind: Kind::File {
                sha256: sha256.clone(),
                size: 1,
                executable: false,
            },
        };
        let link = |path: &str| Entry {
            path: path.into(),
            kind: Kind::Link { target: "/".into() },
        };
        let work = tempfile::tempdir().unwrap();
        let to = work.path().join("to");
        for (entries, why) in [
            (vec![file("../escaped")], "is not a plain relative path"),
            (vec![file("/etc/x")], "is not a plain relative path"),
            (vec![file("./a")], "is not a plain relative path"),
            (vec![link("out"), file("out/etc/x")], "lies behind a link"),
            (vec![file("a"), file("a")], "is listed twice"),
        ] {
            let err = objects
                .get_tree(&Tree { entries }, &to, &work.path().join("s"))
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{err}");
            assert!(!to.exists(), "nothing is laid");
        }
    }
}
