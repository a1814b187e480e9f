//! `pipe retry RUN`: a new run of the same snapshot and pipeline; `--failed` reruns, in the same
//! run, only the jobs that did not pass, keeping the others' results and artifacts.

use super::exec::{context, ExecArgs};
use super::{CliError, Output};
use crate::engine::{self, RetryRequest};
use crate::store::RunRecord;

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
    if args.exec.output == Output::Human {
        // Someone who fixed a file and retries expects the fix to be seen: say it is not.
        let shown = engine::show(&context(None)?, &args.run)?;
        eprintln!("pipe: {}", what_reruns(&shown.run, args.failed));
    }
    let exec = args.exec.options()?;
    args.exec.drive(|ctx, cancel| {
        engine::retry(RetryRequest {
            ctx,
            run: args.run.clone(),
            failed: args.failed,
            exec,
            cancel,
        })
    })
}

fn what_reruns(run: &RunRecord, failed: bool) -> String {
    let id = run.id;
    let what = if failed {
        format!("rerunning the jobs of run {id} that did not pass, in run {id},")
    } else {
        format!("retrying run {id} as a new run,")
    };
    let snapshot = match &run.commit {
        Some(commit) => {
            let changes = match run.changed_paths {
                Some(0) => String::new(),
                Some(n) => format!(" plus its uncommitted changes to {n} path(s)"),
                None => " plus its uncommitted changes".into(),
            };
            format!("of commit {}{changes}", &commit[..commit.len().min(12)])
        }
        None => "of the working tree as it was then".into(),
    };
    format!("{what} on run {id}'s snapshot {snapshot}, not on the working tree as it is now")
}
