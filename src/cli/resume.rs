//! `pipe resume RUN JOB`: a person's word that a fleet's held deploy or release job may run
//! again.

use super::exec::{context, StoreArg};
use super::{exit, print, CliError};
use crate::engine::{self, Context};

#[derive(clap::Args)]
pub struct Args {
    /// The run: its number, or `last`
    run: String,
    /// The held job, by its name in the pipeline
    job: String,
    /// Who decides [default: $PIPE_USER, else the login name]: recorded in the audit trail
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    store: StoreArg,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let ctx = Context {
        store: args.store.at()?,
        ..context(args.by.as_deref())?
    };
    let resumed = engine::resume(&ctx, &args.run, &args.job)?;
    print(&format!(
        "job `{}` of run {} resumed by {}: queued for the fleet's agents\n",
        resumed.job, resumed.run, ctx.actor
    ))?;
    Ok(exit::OK)
}
