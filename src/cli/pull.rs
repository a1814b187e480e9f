//! `--pull` as clap sees it, mapped onto the Docker backend's policy, so that the backend
//! does not depend on clap.

use crate::backend::docker::Pull;

/// When to pull images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullArg {
    Never,
    Missing,
    Always,
}

impl From<PullArg> for Pull {
    fn from(arg: PullArg) -> Pull {
        match arg {
            PullArg::Never => Pull::Never,
            PullArg::Missing => Pull::Missing,
            PullArg::Always => Pull::Always,
        }
    }
}
