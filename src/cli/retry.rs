//! `pipe retry RUN`: a new run of the same snapshot and pipeline; `--failed` reruns, in the same
//! run, only the jobs that did not pass, keeping the others' results and artifacts.

use super::exec::ExecArgs;
use super::CliError;
use crate::engine::{self, RetryRequest};

#[derive(clap::Args)]
pub struct Args {
    /// The run: its number, or `last`
    run: String,
    /// Rerun only the jobs that failed (and those skipped because of them), in the same run
    #[arg(long)]
    failed: bool,
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    args.exec.drive(|ctx, cancel| {
        engine::retry(RetryRequest {
            ctx,
            run: args.run.clone(),
            failed: args.failed,
            exec: args.exec.options(),
            cancel,
        })
    })
}
