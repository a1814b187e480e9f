//! The git-hook trigger: installing pipe's hook script (keeping the hook it replaces), reading
//! the refs git is pushing, and turning each pushed commit (or the staged content) into an
//! engine request. A hook never runs deploy or release jobs.

mod chain;
mod install;
mod refs;
mod script;

use std::path::PathBuf;

pub use chain::run_kept;
pub use install::{install, status, uninstall, Installed, Removed, State, Status};
pub use refs::{parse_pre_push, PushedRef};
pub use script::Script;

/// The hooks pipe installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PrePush,
    PreCommit,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::PrePush, Kind::PreCommit];

    /// git's name for it, which is also its file's name and the runs' trigger.
    pub fn name(self) -> &'static str {
        match self {
            Kind::PrePush => "pre-push",
            Kind::PreCommit => "pre-commit",
        }
    }
}

/// The stages a hook runs unless installed with others.
pub const DEFAULT_STAGES: [&str; 3] = ["build", "test", "security-scan"];

/// Stages a hook refuses to run whatever its options say: a push or a commit is no release.
pub const NEVER_STAGES: [&str; 2] = ["deploy", "release"];

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{0} is not in a git repository: git hooks belong to one")]
    NotARepository(PathBuf),
    /// The user asked for something pipe will not do; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// What git wrote on the hook's stdin is not what git writes.
    #[error("cannot read the refs git is pushing: {0}")]
    Input(String),
    #[error("cannot {doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
}

impl HookError {
    fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> HookError {
        let doing = doing.into();
        move |source| HookError::Io { doing, source }
    }
}

/// Checks the stages a hook is asked to run: named, and neither deploy nor release.
pub fn check_stages(stages: &[String]) -> Result<(), HookError> {
    if stages.is_empty() {
        return Err(HookError::Refused("a hook needs at least one stage".into()));
    }
    for stage in stages {
        if NEVER_STAGES.contains(&stage.as_str()) {
            return Err(HookError::Refused(format!(
                "a hook never runs the `{stage}` stage: pushing or committing is not releasing"
            )));
        }
        if stage.is_empty()
            || stage
                .chars()
                .any(|c| c.is_control() || c == '\'' || c == ',')
        {
            return Err(HookError::Refused(format!(
                "`{stage}` is not a stage name (no quotes, commas or control characters)"
            )));
        }
    }
    Ok(())
}
