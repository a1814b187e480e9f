//! A secret's `command:`: run by `sh -c` in the project's folder, with pipe's environment (it
//! may need a vault token of its own); its standard output, less one final newline, is the
//! value. Its standard error is never shown: tools print what they fetched there too.

use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::pipeline::Provider;

/// The value `provider` prints, or why there is none (never including its output). A command
/// still running at its timeout is killed with everything it started (its process group).
pub(super) async fn run(provider: &Provider, project: &std::path::Path) -> Result<String, String> {
    let name = &provider.name;
    let child = Command::new("sh")
        .arg("-c")
        .arg(&provider.command)
        .current_dir(project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("the command for secret `{name}` could not be started: {e}"))?;
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    let output = match tokio::time::timeout(provider.timeout, child.wait_with_output()).await {
        Ok(output) => output
            .map_err(|e| format!("the command for secret `{name}` could not be waited for: {e}"))?,
        Err(_) => {
            if let Some(group) = group {
                let _ = killpg(group, Signal::SIGKILL);
            }
            return Err(format!(
                "the command for secret `{name}` did not finish within {}: it was stopped",
                humantime::format_duration(provider.timeout)
            ));
        }
    };
    if !output.status.success() {
        let how = output
            .status
            .code()
            .map_or("was killed by a signal".to_string(), |c| {
                format!("exited with {c}")
            });
        return Err(format!(
            "the command for secret `{name}` {how} (its output is not shown: it may hold the value)"
        ));
    }
    let mut value = String::from_utf8(output.stdout).map_err(|_| {
        format!("the command for secret `{name}` printed something that is not UTF-8")
    })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(format!("the command for secret `{name}` printed nothing"));
    }
    if value.contains('\0') {
        return Err(format!("the value the command for secret `{name}` printed holds a NUL character, which no environment variable can"));
    }
    Ok(value)
}
