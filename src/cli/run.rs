//! `pipe run`: the jobs before the release gate (or a dry run that lists them), and with
//! `--release` the release too when the gate allows it.

use std::path::PathBuf;

use super::exec::ExecArgs;
use super::{exit, list, load_plan, print, CliError};
use crate::engine::{self, Source, StartRequest};
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
    #[arg(long, conflicts_with_all = ["commit", "staged"])]
    dry_run: bool,
    /// Run on this commit's content (a sha, branch, tag, `HEAD~1`), with the pipeline file as
    /// it is in that commit; the working tree and the index are not touched
    #[arg(long, value_name = "REV", conflicts_with = "staged")]
    commit: Option<String>,
    /// Run on what is staged (the index), as `git commit` would commit it now
    #[arg(long)]
    staged: bool,
    /// Count the files the run changes (PIPE_CHANGED_FILES) against this commit [default: the
    /// merge base with the default branch, or the commit's parent]
    #[arg(long, value_name = "REV")]
    changes_since: Option<String>,
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
    let source = match (&args.commit, args.staged) {
        (Some(rev), _) => Source::Commit(rev.clone()),
        (None, true) => Source::Index,
        (None, false) => Source::WorkingTree,
    };
    args.exec.drive(|ctx, cancel| {
        engine::start(StartRequest {
            ctx,
            file: args.file.clone(),
            jobs: args.jobs.clone(),
            exec: args.exec.options(),
            release: args.release,
            trigger: "run".into(),
            source: source.clone(),
            changes_since: args.changes_since.clone(),
            cancel,
        })
    })
}
