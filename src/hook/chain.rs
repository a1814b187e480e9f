//! The hook pipe's own replaced: run first, with git's arguments and stdin, as git would have
//! run it; when it fails, pipe's check does not run.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::{install::kept_path, HookError, Kind};

/// How the kept hook went; `None` when there is none (or, as git treats hooks, it is not
/// executable).
pub fn run_kept(
    dir: &Path,
    kind: Kind,
    args: &[String],
    stdin: &[u8],
) -> Result<Option<(PathBuf, ExitStatus)>, HookError> {
    let hooks =
        crate::git::hooks_dir(dir).ok_or_else(|| HookError::NotARepository(dir.to_path_buf()))?;
    let kept = kept_path(&hooks, kind);
    let executable = kept
        .metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        return Ok(None);
    }
    let doing = format!("run {}", kept.display());
    let mut child = Command::new(&kept)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(HookError::io(&doing))?;
    let mut input = child.stdin.take().expect("stdin is piped");
    // A hook may exit without reading its stdin: that is its business, not an error.
    match input.write_all(stdin) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => return Err(HookError::io(&doing)(e)),
        _ => drop(input),
    }
    let status = child.wait().map_err(HookError::io(&doing))?;
    Ok(Some((kept, status)))
}
