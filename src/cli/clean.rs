//! `pipe clean`: removes what runs whose pipe process is gone left behind — containers and
//! volumes found by label, local job workspaces and cgroups, and per-job scratch space under
//! `.pipe/runs` — and empties the project's kept checkouts of commits that no run holds. Only the current project's, unless `--all`: another project's leftovers may be
//! what someone is looking into.

use super::exec::{project, runtime};
use super::{exit, print, CliError};

#[derive(clap::Args)]
pub struct Args {
    /// Also remove what dead runs of every other project left on this machine and engine
    #[arg(long)]
    all: bool,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let dir = project(None)?.dir;
    let cleaned = runtime()?.block_on(crate::engine::clean(&dir, args.all))?;
    let (local, dirs) = (cleaned.local_workspaces, cleaned.run_dirs);
    let text = match cleaned.docker {
        Some((containers, volumes)) => format!(
            "removed {containers} container(s), {volumes} volume(s), {local} local job workspace(s) and the scratch space of {dirs} run(s)\n"
        ),
        None => {
            format!("removed {local} local job workspace(s) and the scratch space of {dirs} run(s); no Docker engine answers, so no containers were looked for\n")
        }
    };
    // This project's only, whatever `--all` says: pipe knows no other project's folder.
    let text = match crate::engine::empty_checkouts(&dir)? {
        0 => text,
        n => format!(
            "{}; emptied {n} kept checkout(s) of commits\n",
            text.trim_end()
        ),
    };
    print(&text)?;
    Ok(exit::OK)
}
