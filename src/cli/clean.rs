//! `pipe clean`: removes what runs whose pipe process is gone left behind — containers and
//! volumes found by label, local job workspaces, and per-job scratch space under `.pipe/runs`.

use super::{exit, print, CliError, Internal};
use crate::backend::docker::{self, DockerBackend, Pull};
use crate::backend::local;
use crate::backend::BackendError;
use crate::workspace;

pub fn run() -> Result<u8, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Internal::io("start the runtime"))?;
    let project = super::run::project_dir()?;
    let dirs = workspace::clean_dead_runs(&project).map_err(Internal::io("clean .pipe/runs"))?;
    let local = local::clean().map_err(Internal::io("clean local job workspaces"))?;
    let docker = runtime.block_on(async {
        let docker = docker::connect().await?;
        DockerBackend::new(docker, Pull::Never, std::time::Duration::ZERO)
            .clean()
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
