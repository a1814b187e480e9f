//! `pipe clean`: removes what runs whose pipe process is gone left behind — containers and
//! volumes found by label, local job workspaces, and per-job scratch space under `.pipe/runs`.

use super::exec::{project_dir, runtime};
use super::{exit, print, CliError};

pub fn run() -> Result<u8, CliError> {
    let cleaned = runtime()?.block_on(crate::engine::clean(&project_dir()?))?;
    let (local, dirs) = (cleaned.local_workspaces, cleaned.run_dirs);
    let text = match cleaned.docker {
        Some((containers, volumes)) => format!(
            "removed {containers} container(s), {volumes} volume(s), {local} local job workspace(s) and the scratch space of {dirs} run(s)\n"
        ),
        None => {
            format!("removed {local} local job workspace(s) and the scratch space of {dirs} run(s); no Docker engine answers, so no containers were looked for\n")
        }
    };
    print(&text)?;
    Ok(exit::OK)
}
