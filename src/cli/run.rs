//! `pipe run`: the jobs before the release gate (or a dry run that lists them), and with
//! `--release` the release too when the gate allows it.

use std::path::PathBuf;

use super::exec::ExecArgs;
use super::{exit, list, load_plan, print, CliError};
use crate::engine::{self, StartRequest};
use crate::plan::{Phase, Selection};

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// Run only this job and what it needs (repeatable; a matrix job's name runs all its variants)
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    #[command(flatten)]
    exec: ExecArgs,
    /// Show the jobs that would run, and run nothing
    #[arg(long)]
    dry_run: bool,
    /// Go through the release gate in this invocation when it asks for no approval and every
    /// other condition holds
    #[arg(long)]
    release: bool,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    if args.dry_run {
        let selection = Selection {
            phase: Phase::Main,
            only: &args.jobs,
            done: &[],
        };
        let (_, _, plan) = load_plan(args.file.as_deref(), selection)?;
        print(&list::render(&plan, args.exec.output))?;
        return Ok(exit::OK);
    }
    args.exec.drive(|ctx, cancel| {
        engine::start(StartRequest {
            ctx,
            file: args.file.clone(),
            jobs: args.jobs.clone(),
            exec: args.exec.options(),
            release: args.release,
            trigger: "run".into(),
            cancel,
        })
    })
}
