//! Renaming what a job left in a tree so that no name gives a secret away: a file named after a
//! token (`report-$TOKEN.txt`) is kept as `report-***.txt`, as the job's output is masked
//! before it is kept. Every step goes through directory descriptors and never follows a link.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat2, RenameFlags};
use nix::sys::stat::Mode;
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use super::lay::{children, kind_at, open_beneath, Kind, DIR};

/// Renames every entry beneath `root` whose name `mask` changes, and rewrites every link whose
/// target it changes; `mask` returns `None` for what it leaves as it is. A masked name already
/// taken gets `~2`, `~3`… so nothing is replaced.
pub fn mask_names(root: &Path, mask: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> io::Result<()> {
    // Pipe's own folder: none when the job kept nothing.
    if !std::fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    match open_beneath(root, Path::new(""))? {
        Some(dir) => mask_at(&dir, mask),
        None => Ok(()),
    }
}

fn mask_at(dir: &OwnedFd, mask: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> io::Result<()> {
    for name in children(dir)? {
        let name = match mask(name.as_bytes()) {
            Some(masked) => rename_free(dir, &name, masked)?,
            None => name,
        };
        match kind_at(dir, &name)? {
            Some((Kind::Dir, _)) => {
                mask_at(&openat(dir, name.as_os_str(), DIR, Mode::empty())?, mask)?
            }
            Some((Kind::Link, _)) => {
                let target = readlinkat(dir, name.as_os_str())?;
                if let Some(masked) = mask(target.as_bytes()) {
                    unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
                    symlinkat(OsStr::from_bytes(&masked), dir, name.as_os_str())?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Renames `name` to `masked`, or the first of `masked~2`, `masked~3`… that is free. Returns
/// the name it took.
fn rename_free(dir: &OwnedFd, name: &OsStr, masked: Vec<u8>) -> io::Result<OsString> {
    for n in 1u32.. {
        let mut to = masked.clone();
        if n > 1 {
            to.extend_from_slice(format!("~{n}").as_bytes());
        }
        let to = OsString::from_vec(to);
        match renameat2(
            dir,
            name,
            dir,
            to.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(to),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stars(name: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(name).ok()?;
        text.contains("s3cr3t")
            .then(|| text.replace("s3cr3t", "***").into_bytes())
    }

    #[test]
    fn names_and_link_targets_that_hold_a_value_are_masked_without_replacing_anything() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("dir-s3cr3t/in")).unwrap();
        std::fs::write(r.join("dir-s3cr3t/in/f-s3cr3t"), "one").unwrap();
        std::fs::write(r.join("a-s3cr3t"), "a").unwrap();
        std::fs::write(r.join("a-***"), "there before").unwrap();
        std::os::unix::fs::symlink("/tmp/s3cr3t", r.join("link")).unwrap();
        mask_names(r, &stars).unwrap();
        let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(read("dir-***/in/f-***"), "one");
        assert_eq!(read("a-***"), "there before");
        assert_eq!(read("a-***~2"), "a");
        assert_eq!(
            std::fs::read_link(r.join("link")).unwrap(),
            Path::new("/tmp/***")
        );
        assert!(!r.join("dir-s3cr3t").exists() && !r.join("a-s3cr3t").exists());
    }

    #[test]
    fn a_root_that_is_missing_or_a_link_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        mask_names(&root.path().join("none"), &stars).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("s3cr3t"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        mask_names(&root.path().join("link"), &stars).unwrap();
        assert!(outside.path().join("s3cr3t").exists());
    }
}
