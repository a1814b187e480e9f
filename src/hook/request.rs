//! A hook's engine request: the pushed commit (or the staged content), the stages the hook was
//! installed with, never a deploy or release job, recorded with the hook's name as trigger.

use std::path::PathBuf;

use super::{Kind, PushedCommit};
use crate::engine::{Cancel, Context, ExecOptions, Source, StartRequest};

/// What one run of a hook checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Pushed(PushedCommit),
    /// What is being committed, for pre-commit: the index, or the one in this file (git's
    /// GIT_INDEX_FILE).
    Staged(Option<PathBuf>),
}

impl Check {
    /// For people: `pre-push of main at 3f2a91c`, `pre-commit of the staged changes`.
    pub fn subject(&self) -> String {
        match self {
            Check::Pushed(c) => format!("{} of {}", Kind::PrePush.name(), c.subject),
            Check::Staged(_) => format!("{} of the staged changes", Kind::PreCommit.name()),
        }
    }
}

pub fn start_request(
    check: Check,
    stages: &[String],
    ctx: Context,
    exec: ExecOptions,
    cancel: Cancel,
) -> StartRequest {
    let (kind, source, changes_since) = match check {
        Check::Pushed(c) => (Kind::PrePush, Source::Commit(c.commit), c.since),
        Check::Staged(index) => (
            Kind::PreCommit,
            index.map_or(Source::Index, Source::IndexFile),
            None,
        ),
    };
    StartRequest {
        ctx,
        file: None,
        jobs: Vec::new(),
        stages: stages.to_vec(),
        until: None,
        // Whatever the stages say, a push or a commit never deploys or releases.
        no_deploy: true,
        exec,
        release: false,
        trigger: kind.name().into(),
        cancel,
        source,
        changes_since,
        // A hook's run of an unchanged tree is over at once.
        reuse: true,
        fleet: None,
    }
}
