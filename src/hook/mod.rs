//! The git-hook trigger: installing pipe's hook script (keeping the hook it replaces), reading
//! the refs git is pushing, and turning each pushed commit (or the staged content) into an
//! engine request. A hook never runs deploy or release jobs.

mod chain;
mod install;
mod push;
mod refs;
mod request;
mod script;

use std::path::PathBuf;

pub use chain::run_kept;
pub use install::{install, status, uninstall, Installed, Removed, State, Status};
pub use push::{pushed_commits, PushedCommit};
pub use refs::{parse_pre_push, PushedRef};
pub use request::{start_request, Check};
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

/// The stages a hook is installed with: those asked for, which the pipeline (when it can be
/// read) must have; else the default ones the pipeline has, so that a pipeline with its own
/// `stages:` gets a hook that runs.
pub fn choose_stages(
    asked: Option<Vec<String>>,
    pipeline_stages: Option<&[String]>,
) -> Result<Vec<String>, HookError> {
    let stages = match (asked, pipeline_stages) {
        (Some(asked), Some(known)) => {
            if let Some(unknown) = asked.iter().find(|s| !known.contains(s)) {
                return Err(HookError::Refused(format!(
                    "the pipeline has no stage `{unknown}`; its stages are {}",
                    known.join(", ")
                )));
            }
            asked
        }
        (Some(asked), None) => asked,
        (None, known) => DEFAULT_STAGES
            .iter()
            .filter(|s| known.is_none_or(|k| k.iter().any(|k| k == *s)))
            .map(|s| s.to_string())
            .collect(),
    };
    check_stages(&stages)?;
    Ok(stages)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stages_fit_the_pipeline() {
        let own = strings(&["build", "test", "deploy"]);
        assert_eq!(choose_stages(None, None).unwrap(), DEFAULT_STAGES);
        assert_eq!(choose_stages(None, Some(&own)).unwrap(), ["build", "test"]);
        let err = choose_stages(Some(strings(&["lint"])), Some(&own)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the pipeline has no stage `lint`; its stages are build, test, deploy"
        );
        assert!(choose_stages(Some(strings(&["deploy"])), Some(&own)).is_err());
        assert!(
            choose_stages(None, Some(&strings(&["deploy"]))).is_err(),
            "none left"
        );
        assert_eq!(
            choose_stages(Some(strings(&["lint"])), None).unwrap(),
            ["lint"]
        );
    }
}
