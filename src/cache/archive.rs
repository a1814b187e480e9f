//! A cache entry's contents as one tar file, packed from what a job kept and unpacked into a
//! fresh folder. Nothing in an archive is trusted: unpacking refuses absolute paths, `..`,
//! links that lead out of the folder, entries that pass through a link, and anything but files,
//! folders and links — a poisoned cache (CVE-2022-1423) writes nothing outside.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

/// Why an archive was not unpacked (or a folder not packed).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive (or what a job kept) holds something a cache may not.
    #[error("{0}")]
    Unsafe(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Packs every file, folder and link under `from` (never following a link) into `to`. A link
/// that leads out of `from` is refused: restoring it would be refused too.
pub fn pack(from: &Path, to: impl Write) -> Result<(), ArchiveError> {
    let mut builder = tar::Builder::new(to);
    builder.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(from.join(&rel))?
            .map(|e| e.map(|e| rel.join(e.file_name())))
            .collect::<io::Result<_>>()?;
        children.sort();
        for child in children {
            let full = from.join(&child);
            let meta = fs::symlink_metadata(&full)?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&full)?;
                if let Err(why) = inward(&child, &target) {
                    return Err(ArchiveError::Unsafe(why));
                }
            } else if meta.is_dir() {
                stack.push(child.clone());
            } else if !meta.is_file() {
                continue; // sockets and fifos are not kept, as in artifacts
            }
            builder.append_path_with_name(&full, &child)?;
        }
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

/// How much of an entry is read and written at once: a cache is mostly large files, and 8 KiB
/// steps cost a pair of system calls per 8 KiB.
const COPY_BUFFER: usize = 256 * 1024;

/// Unpacks `archive` into `into` (made here; it must not exist). On an error, what was unpacked
/// so far stays in `into` for the caller to remove: nothing was written elsewhere.
pub fn unpack(archive: impl Read, into: &Path) -> Result<(), ArchiveError> {
    if let Some(parent) = into.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::create_dir(into)?;
    let mut archive = tar::Archive::new(archive);
    let mut folders = Folders::default();
    let mut buffer = vec![0; COPY_BUFFER];
    for entry in archive.entries()? {
        let mut entry = entry?;
        let written = entry.path()?.into_owned();
        let rel = relative(&written)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        folders.through_folders_only(into, &rel)?;
        let dest = into.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match entry.header().entry_type() {
            EntryType::Directory => {
                if !folders.known(&rel) {
                    match fs::symlink_metadata(&dest) {
                        Ok(m) if m.is_dir() => {}
                        Ok(_) => return Err(duplicate(&rel)),
                        Err(_) => fs::create_dir_all(&dest)?,
                    }
                    folders.add(&rel);
                }
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o700))?;
            }
            EntryType::Regular | EntryType::Continuous => {
                folders.make_parents(into, &rel)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .mode(mode)
                    .open(&dest)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::AlreadyExists => duplicate(&rel),
                        _ => e.into(),
                    })?;
                copy(&mut entry, &mut file, &mut buffer)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| unsafe_entry(&rel, "is a link to nothing"))?
                    .into_owned();
                inward(&rel, &target).map_err(ArchiveError::Unsafe)?;
                folders.make_parents(into, &rel)?;
                std::os::unix::fs::symlink(&target, &dest).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => duplicate(&rel),
                    _ => e.into(),
                })?;
            }
            other => {
                return Err(unsafe_entry(
                    &rel,
                    &format!("is a {other:?} entry, which a cache never holds"),
                ))
            }
        }
    }
    Ok(())
}

/// An entry's path as a relative path of plain names, or why it is refused.
fn relative(written: &Path) -> Result<PathBuf, ArchiveError> {
    let mut rel = PathBuf::new();
    for component in written.components() {
        match component {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(unsafe_entry(written, "goes up out of the workspace (`..`)"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(written, "is an absolute path"))
            }
        }
    }
    Ok(rel)
}

/// Copies what is left of `from` into `to` in steps of `buffer`'s size.
fn copy(from: &mut impl Read, to: &mut impl Write, buffer: &mut [u8]) -> io::Result<()> {
    loop {
        let n = match from.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buffer[..n])?;
    }
}

/// The folders (relative to the unpack's root) known to be real folders. Nothing an unpack
/// does replaces one (a file or link of the same name is refused as a duplicate), so each is
/// looked at once, not once per entry beneath it.
#[derive(Default)]
struct Folders(HashSet<PathBuf>);

impl Folders {
    fn known(&self, rel: &Path) -> bool {
        self.0.contains(rel)
    }

    fn add(&mut self, rel: &Path) {
        self.0.insert(rel.to_path_buf());
    }

    /// Refuses an entry whose folders are not all real folders: writing through a link an
    /// earlier entry made could land anywhere.
    fn through_folders_only(&mut self, root: &Path, rel: &Path) -> Result<(), ArchiveError> {
        for parent in parents(rel) {
            if self.known(parent) {
                continue;
            }
            match fs::symlink_metadata(root.join(parent)) {
                Ok(m) if m.is_dir() => self.add(parent),
                Ok(_) => return Err(unsafe_entry(rel, "passes through a link or a file")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Makes the folders `rel` is in that are not there yet (checked by `through_folders_only`:
    /// what is there of them is real folders).
    fn make_parents(&mut self, root: &Path, rel: &Path) -> io::Result<()> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        if !self.known(parent) {
            fs::create_dir_all(root.join(parent))?;
            for folder in parents(rel) {
                self.add(folder);
            }
        }
        Ok(())
    }
}

/// The folders `rel` is in, outermost first, without the root itself.
fn parents(rel: &Path) -> impl Iterator<Item = &Path> {
    let mut all: Vec<&Path> = rel
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    all.reverse();
    all.into_iter()
}

/// Whether a link at `rel` pointing at `target` stays inside the folder it is in, or why not.
/// `..` may only lead a target (`../../lib/x`): after a name, it could climb out of a folder
/// that is itself a link. Each link is checked so, so a chain of them stays inside too.
pub fn inward(rel: &Path, target: &Path) -> Result<(), String> {
    let outward = || {
        format!(
            "`{}` is a link to `{}`, outside the workspace",
            rel.display(),
            target.display()
        )
    };
    if target.is_absolute() {
        return Err(outward());
    }
    let depth = rel.components().count().saturating_sub(1);
    let mut ups = 0;
    let mut named = false;
    for component in target.components() {
        match component {
            Component::ParentDir if named => return Err(outward()),
            Component::ParentDir => ups += 1,
            Component::Normal(_) => named = true,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(outward()),
        }
    }
    if ups > depth {
        return Err(outward());
    }
    Ok(())
}

fn unsafe_entry(rel: &Path, why: &str) -> ArchiveError {
    ArchiveError::Unsafe(format!("entry `{}` {why}", rel.display()))
}

fn duplicate(rel: &Path) -> ArchiveError {
    unsafe_entry(rel, "comes twice or replaces another kind of entry")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        // set_path refuses `..`: write the name as raw bytes, as an attacker would.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(EntryType::Symlink);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    }

    #[test]
    fn packs_and_unpacks_files_folders_modes_and_inward_links() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        fs::create_dir_all(from.join("a/b")).unwrap();
        fs::write(from.join("a/b/run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(from.join("a/b/run"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../top", from.join("a/up")).unwrap();
        fs::write(from.join("top"), "t").unwrap();
        let mut bytes = Vec::new();
        pack(&from, &mut bytes).unwrap();
        let into = dir.path().join("into");
        unpack(&bytes[..], &into).unwrap();
        assert_eq!(
            fs::read_to_string(into.join("a/b/run")).unwrap(),
            "#!/bin/sh\n"
        );
        let mode = fs::metadata(into.join("a/b/run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            fs::read_link(into.join("a/up")).unwrap(),
            Path::new("../top")
        );
    }

    #[test]
    fn refuses_traversal_absolute_and_outward_links() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            archive(|b| file(b, "../evil", b"x")),
            archive(|b| file(b, "/tmp/evil", b"x")),
            archive(|b| link(b, "out", "/etc")),
            archive(|b| link(b, "a/out", "../../x")),
            archive(|b| link(b, "a/out", "b/../../..")),
            archive(|b| {
                link(b, "inside", ".");
                file(b, "inside/x", b"x");
            }),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let into = dir.path().join(i.to_string());
            let err = unpack(&bytes[..], &into).unwrap_err();
            assert!(matches!(err, ArchiveError::Unsafe(_)), "case {i}: {err}");
        }
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn files_without_folder_entries_get_their_folders_and_a_link_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(|b| {
            file(b, "a/b/one", b"1");
            file(b, "a/b/two", &vec![7; 3 * COPY_BUFFER + 5]);
            file(b, "a/three", b"3");
        });
        let into = dir.path().join("ok");
        unpack(&bytes[..], &into).unwrap();
        assert_eq!(fs::read(into.join("a/b/one")).unwrap(), b"1");
        assert_eq!(
            fs::read(into.join("a/b/two")).unwrap().len(),
            3 * COPY_BUFFER + 5
        );
        assert_eq!(fs::read(into.join("a/three")).unwrap(), b"3");

        // A folder checked once stays a folder: a link of its name is refused.
        let swapped = archive(|b| {
            file(b, "a/one", b"1");
            link(b, "a", "b");
            file(b, "a/two", b"2");
        });
        let err = unpack(&swapped[..], &dir.path().join("swapped")).unwrap_err();
        assert!(matches!(err, ArchiveError::Unsafe(_)), "{err}");
    }

    #[test]
    fn packing_refuses_a_link_a_job_made_out_of_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("escape")).unwrap();
        let err = pack(dir.path(), Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("`escape` is a link to `/etc`"),
            "{err}"
        );
    }
}
