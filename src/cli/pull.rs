//! `--pull` as clap sees it, mapped onto the Docker backend's policy, so that the backend
//! does not depend on clap.

use crate::backend::docker::Pull;

/// When to pull images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullArg {
    /// Use only images already on the engine
    Never,
    /// Pull an image only when the engine does not have it
    Missing,
    /// Pull every image before the run, for the newest of each tag
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
