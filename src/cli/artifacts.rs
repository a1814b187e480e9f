//! `pipe artifacts RUN [JOB] [--to DIR]`: what a run's jobs handed on, listed or copied out.

use std::path::PathBuf;

use super::exec::{context, current_dir, project, runtime, StoreArg};
use super::{exit, print, table, CliError, Output};
use crate::engine::{self, Artifact, Context};
use crate::event::SCHEMA_VERSION;

#[derive(clap::Args)]
pub struct Args {
    /// The run: its number, or `last`
    run: String,
    /// One job's artifacts (a matrix job's name: all its variants) [default: every job's]
    job: Option<String>,
    /// Copy them into DIR (one job's at DIR/PATH, every job's at DIR/JOB/PATH); nothing in DIR
    /// is ever replaced
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// How to print the artifacts: a table for people, or one JSON object per artifact for
    /// programs
    #[arg(long, value_enum, default_value = "human")]
    output: Output,
    // With --objects: the artifacts as published to the object store, wherever the jobs ran.
    #[command(flatten)]
    store: StoreArg,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let project = project(None)?.dir;
    let job = args.job.as_deref();
    // DIR is where the user stands, not the project.
    let to = args
        .to
        .as_ref()
        .map(|to| current_dir().map(|d| d.join(to)))
        .transpose()?;
    let (id, items) = match (args.store.objects()?, &to) {
        (None, Some(to)) => engine::copy_artifacts(&project, &args.run, job, to)?,
        (None, None) => engine::artifacts(&project, &args.run, job)?,
        (Some(objects), to) => {
            let ctx = Context {
                store: args.store.at()?,
                objects: Some(objects),
                ..context(None)?
            };
            runtime()?.block_on(async {
                match to {
                    Some(to) => engine::copy_shared_artifacts(&ctx, &args.run, job, to).await,
                    None => engine::shared_artifacts(&ctx, &args.run, job).await,
                }
            })?
        }
    };
    if args.output == Output::Json {
        let lines: String = items
            .iter()
            .map(|a| {
                let mut v = serde_json::to_value(a).unwrap_or_default();
                v["schema"] = SCHEMA_VERSION.into();
                v["run"] = id.into();
                format!("{v}\n")
            })
            .collect();
        return print(&lines).map(|_| exit::OK);
    }
    let text = match (&args.to, items.is_empty()) {
        (_, true) => format!("run {id} has no artifacts{}\n", of(job)),
        (Some(to), false) => {
            let bytes: u64 = items.iter().map(|a| a.size).sum();
            format!(
                "copied {} artifact(s){} of run {id}, {bytes} bytes, to {}\n",
                items.len(),
                of(job),
                to.display()
            )
        }
        (None, false) => listing(&items),
    };
    print(&text)?;
    Ok(exit::OK)
}

fn of(job: Option<&str>) -> String {
    job.map(|j| format!(" of job `{j}`")).unwrap_or_default()
}

fn listing(items: &[Artifact]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| match &a.link {
            Some(target) => vec![
                a.job.clone(),
                format!("{} -> {target}", a.path),
                "link".into(),
            ],
            None => vec![a.job.clone(), a.path.clone(), a.size.to_string()],
        })
        .collect();
    table(&["JOB", "PATH", "SIZE"], &rows)
}
