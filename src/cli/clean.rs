//! `pipe clean`: removes what runs whose pipe process is gone left behind — containers and
//! volumes found by label, local job workspaces and cgroups, and per-job scratch space under
//! `.pipe/runs`. Only the current project's, unless `--all`: another project's leftovers may be
//! what someone is looking into.

use super::{exit, print, CliError, Internal};
use crate::backend::docker::{self, DockerBackend, Pull};
use crate::backend::local;
use crate::backend::BackendError;
use crate::owner::project_key;
use crate::workspace;

#[derive(clap::Args)]
pub struct Args {
    /// Also remove what dead runs of every other project left on this machine and engine
    #[arg(long)]
    all: bool,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Internal::io("start the runtime"))?;
    let project = super::run::project_dir()?;
    let key = project_key(&project);
    let scope = (!args.all).then_some(key.as_str());
    let dirs = workspace::clean_dead_runs(&project).map_err(Internal::io("clean .pipe/runs"))?;
    let local = local::clean(scope).map_err(Internal::io("clean local job workspaces"))?;
    let docker = runtime.block_on(async {
        let docker = docker::connect().await?;
        DockerBackend::new(docker, Pull::Never, std::time::Duration::ZERO)
            .clean(scope)
            .await
    });
    let text = match docker {
        Ok((containers, volumes)) => format!(
            "removed {containers} container(s), {volumes} volume(s), {local} local job workspace(s) and the scratch space of {dirs} run(s)\n"
        ),
        // Without an engine there are no containers to look for; the files are done.
        Err(BackendError::Unavailable(_)) => {
            format!("removed {local} local job workspace(s) and the scratch space of {dirs} run(s); no Docker engine answers, so no containers were looked for\n")
        }
        Err(e) => return Err(Internal::Backend(e.to_string()).into()),
    };
    print(&text)?;
    Ok(exit::OK)
}
