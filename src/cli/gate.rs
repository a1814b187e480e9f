//! `pipe approve` and `pipe release`: the gate between deploying and releasing.

use super::exec::{context, ExecArgs};
use super::{exit, print, CliError};
use crate::engine::{self, ReleaseRequest};

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The run: its number, or `last`
    run: String,
    /// Who approves [default: $PIPE_USER, else the login name]; names differing only in case
    /// are one person
    #[arg(long)]
    by: Option<String>,
    /// Why, in a word or a sentence: recorded with the approval in the audit trail
    #[arg(long)]
    comment: Option<String>,
}

#[derive(clap::Args)]
pub struct ReleaseArgs {
    /// The run: its number, or `last`
    run: String,
    /// Release a run that was released before (recorded in the audit trail); a progressive
    /// release that is complete or was rolled back starts over from step 1
    #[arg(long)]
    again: bool,
    /// Run the release jobs' `rollback:` scripts for the steps a progressive release took,
    /// newest first
    #[arg(long, conflicts_with = "again")]
    rollback: bool,
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn approve(args: ApproveArgs) -> Result<u8, CliError> {
    let ctx = context(args.by.as_deref())?;
    let approved = engine::approve(&ctx, &args.run, args.comment.as_deref())?;
    let again = if approved.new {
        ""
    } else {
        " (already counted)"
    };
    print(&format!(
        "run {} approved by {}{again}: {} of {} approval(s)\n",
        approved.run, ctx.actor, approved.count, approved.needed
    ))?;
    eprintln!("{}", approved.next);
    Ok(exit::OK)
}

pub fn release(args: ReleaseArgs) -> Result<u8, CliError> {
    let exec = args.exec.options()?;
    let rollback = args.rollback;
    args.exec.drive(|ctx, cancel| {
        let request = ReleaseRequest {
            ctx,
            run: args.run.clone(),
            again: args.again,
            exec,
            cancel,
        };
        async move {
            if rollback {
                engine::rollback(request).await
            } else {
                engine::release(request).await
            }
        }
    })
}
