//! Writing a tree out by its difference from another: what a kept checkout needs to go from
//! one commit's content to another's. git hands over entries; where they land is the caller's
//! to check (a path from git is untrusted).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use git2::{Delta, DiffOptions, FileMode, Oid};

use super::rev::{open, GitError};

/// One entry of a tree's difference from another, as it must be laid out.
pub enum Change<'a> {
    Remove(&'a Path),
    File {
        path: &'a Path,
        content: &'a [u8],
        executable: bool,
    },
    Link {
        path: &'a Path,
        target: &'a [u8],
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{0}")]
    Write(#[from] io::Error),
}

impl From<git2::Error> for ExportError {
    fn from(e: git2::Error) -> Self {
        ExportError::Git(e.into())
    }
}

/// Calls `apply` with what turns tree `from` (nothing: `None`) into tree `to`, both trees of
/// the repository holding `project`: every removal first, then every file and link written, so
/// that a file replacing a folder (or the reverse) finds its place free. Submodules are left
/// out. Returns how many entries it applied.
pub fn changes(
    project: &Path,
    from: Option<&str>,
    to: &str,
    apply: &mut dyn FnMut(Change) -> io::Result<()>,
) -> Result<usize, ExportError> {
    let (repo, _) = open(project)?;
    let tree =
        |id: &str| -> Result<git2::Tree, ExportError> { Ok(repo.find_tree(Oid::from_str(id)?)?) };
    let old = from.map(tree).transpose()?;
    let new = tree(to)?;
    let mut opts = DiffOptions::new();
    // A file that became a link (or the reverse) is a removal and an addition.
    opts.include_typechange(false);
    let diff = repo.diff_tree_to_tree(old.as_ref(), Some(&new), Some(&mut opts))?;
    let mut writes = Vec::new();
    let mut applied = 0;
    for delta in diff.deltas() {
        let path = |f: &git2::DiffFile| f.path_bytes().map(|p| p.to_vec());
        match delta.status() {
            Delta::Deleted => {
                if let Some(p) = path(&delta.old_file()) {
                    apply(Change::Remove(Path::new(OsStr::from_bytes(&p))))?;
                    applied += 1;
                }
            }
            Delta::Added | Delta::Modified => {
                let file = delta.new_file();
                if let Some(p) = path(&file) {
                    writes.push((p, file.id(), file.mode()));
                }
            }
            _ => {}
        }
    }
    for (p, id, mode) in writes {
        let path = Path::new(OsStr::from_bytes(&p));
        let change = match mode {
            FileMode::Blob | FileMode::BlobGroupWritable | FileMode::BlobExecutable => {
                let blob = repo.find_blob(id)?;
                apply(Change::File {
                    path,
                    content: blob.content(),
                    executable: mode == FileMode::BlobExecutable,
                })
            }
            FileMode::Link => {
                let blob = repo.find_blob(id)?;
                apply(Change::Link {
                    path,
                    target: blob.content(),
                })
            }
            // Submodules (commits) are not part of the project's own content.
            _ => continue,
        };
        change?;
        applied += 1;
    }
    Ok(applied)
}
