//! pipe's own files under `.pipe` are the user's alone: logs can carry secrets, and the store
//! holds who approved what. `.pipe` is 0700 (which also covers what jobs made, kept with their
//! own modes: an executable artifact stays executable), and the files pipe writes there are
//! 0600 whatever the umask says.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as 0700, or tightens it to 0700 if it exists.
pub fn dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    tighten(dir, DIR_MODE)
}

/// Creates `dir` as 0700; fails if it exists already.
pub fn new_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(dir)
}

/// Writes `bytes` to `path` as a file only the user can read.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let mut file = open(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?;
    file.write_all(bytes.as_ref())
}

/// Opens (creating if needed) a file only the user can read, with `options`; an existing file
/// is tightened too.
pub fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options.mode(FILE_MODE).open(path)?;
    if file.metadata()?.permissions().mode() & 0o777 != FILE_MODE {
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

/// Tightens an existing file to 0600; a file that is not there is fine.
pub fn file_if_exists(path: &Path) -> io::Result<()> {
    match tighten(path, FILE_MODE) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    if fs::symlink_metadata(path)?.permissions().mode() & 0o777 != mode {
        fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_folders_are_private_and_old_ones_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join(".pipe");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, Permissions::from_mode(0o755)).unwrap();
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        let old = state.join("old.log");
        fs::write(&old, "x").unwrap();
        fs::set_permissions(&old, Permissions::from_mode(0o644)).unwrap();
        write(&old, "y").unwrap();
        assert_eq!(mode(&old), 0o600);
        write(&state.join("new"), "z").unwrap();
        assert_eq!(mode(&state.join("new")), 0o600);
        file_if_exists(&state.join("absent")).unwrap();
        assert!(
            new_dir(&state).is_err(),
            "an existing folder is never taken"
        );
    }
}
