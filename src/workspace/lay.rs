//! Copying trees that jobs made without ever following a link they made.
//!
//! Artifacts and workspaces hold whatever a job left there, symbolic links to anywhere
//! included. Every step here goes through directory file descriptors opened with `O_NOFOLLOW`,
//! one component at a time, so a link is only ever copied as a link: reading never leaves the
//! source tree and writing never leaves the destination. Laying one tree over another works as
//! an overlay mount does: a directory merges into a directory, anything else replaces what is in
//! its way (a link in the way of a directory is removed, not written through).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use super::CopyStats;

pub(super) const DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    Link,
    /// Sockets, fifos and devices do not belong in a workspace.
    Other,
}

/// What `name` in `dir` is, without following it; `None` when there is nothing.
pub(super) fn kind_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<(Kind, Mode)>> {
    let stat = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(None),
        other => other?,
    };
    let kind = match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFREG => Kind::File,
        SFlag::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    };
    // No set-id or sticky bits: a job running as root in a container must not hand the host
    // a set-uid file.
    Ok(Some((kind, Mode::from_bits_truncate(stat.st_mode & 0o777))))
}

pub(super) fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} leaves its root", rel.display()),
            )),
        })
        .collect()
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(openat(
        nix::fcntl::AT_FDCWD,
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Directory `rel` beneath `root`, every component a real directory; `None` when one is
/// missing, a file or a link.
pub(super) fn open_beneath(root: &Path, rel: &Path) -> io::Result<Option<OwnedFd>> {
    let mut fd = open_root(root)?;
    for name in names(rel)? {
        fd = match openat(&fd, name, DIR, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    }
    Ok(Some(fd))
}

/// Directory `rel` beneath `root`, made where missing; whatever else stands in the way
/// (a file, a link) is replaced by a directory.
pub(super) fn make_beneath(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    make_beneath_as(root, rel, 0o700)
}

/// `make_beneath`, with the directories it makes given `mode` (less the umask).
pub(super) fn make_beneath_as(root: &Path, rel: &Path, mode: u32) -> io::Result<OwnedFd> {
    std::fs::create_dir_all(root)?;
    let mut fd = open_root(root)?;
    for name in names(rel)? {
        fd = ensure_dir(&fd, name, mode)?;
    }
    Ok(fd)
}

fn ensure_dir(parent: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<OwnedFd> {
    match kind_at(parent, name)? {
        Some((Kind::Dir, _)) => {}
        other => {
            if other.is_some() {
                unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?;
            }
            mkdirat(parent, name, Mode::from_bits_truncate(mode))?;
        }
    }
    Ok(openat(parent, name, DIR, Mode::empty())?)
}

/// The entries of an open directory. Reads through a fresh open of `.`, so the position of
/// `dir` itself is never moved.
pub(super) fn children(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let fresh = openat(dir, ".", DIR, Mode::empty())?;
    let mut listing = Dir::from_fd(fresh)?;
    let mut out = Vec::new();
    for entry in listing.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(std::os::unix::ffi::OsStringExt::from_vec(name));
        }
    }
    Ok(out)
}

/// Removes `name` from `parent` whatever it is, a whole directory included, never following a
/// link.
pub(super) fn remove_at(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match kind_at(parent, name)? {
        None => Ok(()),
        Some((Kind::Dir, _)) => {
            let dir = openat(parent, name, DIR, Mode::empty())?;
            for child in children(&dir)? {
                remove_at(&dir, &child)?;
            }
            Ok(unlinkat(parent, name, UnlinkatFlags::RemoveDir)?)
        }
        Some(_) => Ok(unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?),
    }
}

/// Copies entry `name` of `src` into `dst`, laid over whatever is there.
fn copy_at(src: &OwnedFd, name: &OsStr, dst: &OwnedFd, stats: &mut CopyStats) -> io::Result<()> {
    let Some((kind, mode)) = kind_at(src, name)? else {
        return Ok(());
    };
    match kind {
        Kind::Dir => {
            let from = openat(src, name, DIR, Mode::empty())?;
            let to = ensure_dir(dst, name, 0o700)?;
            copy_children(&from, &to, stats)?;
            // Last, so that a read-only directory could still be filled.
            fchmod(&to, mode)?;
        }
        Kind::Link => {
            let target = readlinkat(src, name)?;
            remove_at(dst, name)?;
            symlinkat(target.as_os_str(), dst, name)?;
            stats.files += 1;
        }
        Kind::File => {
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let mut from = File::from(openat(src, name, flags, Mode::empty())?);
            remove_at(dst, name)?;
            // O_EXCL: a link raced into this place is never opened.
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let mut to = File::from(openat(dst, name, flags, mode)?);
            // io::copy between files uses copy_file_range, which reflinks where it can.
            stats.bytes += io::copy(&mut from, &mut to)?;
            fchmod(&to, mode)?;
            stats.files += 1;
        }
        Kind::Other => {}
    }
    Ok(())
}

fn copy_children(from: &OwnedFd, to: &OwnedFd, stats: &mut CopyStats) -> io::Result<()> {
    for name in children(from)? {
        copy_at(from, &name, to, stats)?;
    }
    Ok(())
}

/// Lays `rel` of the tree at `from` at the same place in the tree at `to` (the whole tree for
/// an empty `rel`), merging directories and replacing anything else. Only the two roots are
/// resolved as ordinary paths: they are pipe's own. `None` when `rel` is not in `from`, or
/// only behind a link.
pub fn lay(from: &Path, to: &Path, rel: &Path) -> io::Result<Option<CopyStats>> {
    let mut stats = CopyStats::default();
    let parts = names(rel)?;
    let Some((name, parent)) = parts.split_last() else {
        let Some(src) = open_beneath(from, Path::new(""))? else {
            return Ok(None);
        };
        copy_children(&src, &make_beneath(to, Path::new(""))?, &mut stats)?;
        return Ok(Some(stats));
    };
    let parent: PathBuf = parent.iter().collect();
    let Some(src) = open_beneath(from, &parent)? else {
        return Ok(None);
    };
    if kind_at(&src, name)?.is_none() {
        return Ok(None);
    }
    copy_at(&src, name, &make_beneath(to, &parent)?, &mut stats)?;
    Ok(Some(stats))
}

/// The entries of directory `rel` beneath `root`, each with whether it is a real directory;
/// `None` when `rel` is not a directory there, or only behind a link.
pub fn list(root: &Path, rel: &Path) -> io::Result<Option<Vec<(OsString, bool)>>> {
    let Some(dir) = open_beneath(root, rel)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in children(&dir)? {
        let is_dir = matches!(kind_at(&dir, &name)?, Some((Kind::Dir, _)));
        out.push((name, is_dir));
    }
    Ok(Some(out))
}

/// A file or link in a tree, found without following links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the tree's root.
    pub path: PathBuf,
    pub size: u64,
    /// Where a link points, as written: it is shown, never followed.
    pub link: Option<PathBuf>,
}

/// Every file and link beneath `root`, in name order; empty when `root` is not a directory.
pub fn walk(root: &Path) -> io::Result<Vec<Entry>> {
    if !std::fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        return Ok(Vec::new());
    }
    let Some(dir) = open_beneath(root, Path::new(""))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    walk_at(&dir, PathBuf::new(), &mut out)?;
    Ok(out)
}

fn walk_at(dir: &OwnedFd, rel: PathBuf, out: &mut Vec<Entry>) -> io::Result<()> {
    let mut names = children(dir)?;
    names.sort();
    for name in names {
        let path = rel.join(&name);
        match kind_at(dir, &name)? {
            Some((Kind::Dir, _)) => walk_at(
                &openat(dir, name.as_os_str(), DIR, Mode::empty())?,
                path,
                out,
            )?,
            Some((Kind::File, _)) => {
                let stat = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                out.push(Entry {
                    path,
                    size: stat.st_size as u64,
                    link: None,
                });
            }
            Some((Kind::Link, _)) => out.push(Entry {
                path,
                size: 0,
                link: Some(readlinkat(dir, name.as_os_str())?.into()),
            }),
            Some((Kind::Other, _)) | None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "lay_tests.rs"]
mod tests;
