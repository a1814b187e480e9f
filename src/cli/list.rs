//! `pipe list` (and `run --dry-run`): the jobs a run would start, with their stage and needs.

use std::path::PathBuf;

use super::{exit, load_plan, print, table, CliError, Output};
use crate::event::SCHEMA_VERSION;
use crate::plan::Plan;

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// Only this job and what it needs (repeatable)
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    /// How to print the jobs: a table for people, or one JSON object per line for programs
    #[arg(long, value_enum, default_value = "human")]
    output: Output,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let (_, _, plan) = load_plan(
        args.file.as_deref(),
        crate::plan::Selection {
            jobs: &args.jobs,
            ..crate::plan::Selection::all()
        },
    )?;
    print(&render(&plan, args.output))?;
    Ok(exit::OK)
}

pub fn render(plan: &Plan, output: Output) -> String {
    let needs = |i: usize| -> Vec<&str> {
        plan.deps[i]
            .iter()
            .map(|(d, _)| plan.jobs[*d].name.as_str())
            .collect()
    };
    match output {
        Output::Json => plan
            .order
            .iter()
            .map(|&i| {
                let j = &plan.jobs[i];
                let record = serde_json::json!({
                    "schema": SCHEMA_VERSION, "job": j.name, "stage": j.stage, "needs": needs(i), "image": j.image,
                });
                format!("{record}\n")
            })
            .chain(plan.left_out.iter().map(|l| {
                let record = serde_json::json!({
                    "schema": SCHEMA_VERSION, "job": l.name, "stage": l.stage, "left_out": l.reason,
                });
                format!("{record}\n")
            }))
            .collect(),
        Output::Human => {
            let rows: Vec<Vec<String>> = plan
                .order
                .iter()
                .map(|&i| {
                    let j = &plan.jobs[i];
                    vec![j.name.clone(), j.stage.clone(), needs(i).join(", "), j.image.clone().unwrap_or_else(|| "-".into())]
                })
                .collect();
            let mut out = table(&["JOB", "STAGE", "NEEDS", "IMAGE"], &rows);
            for l in &plan.left_out {
                out.push_str(&format!("left out: {} ({}): {}\n", l.name, l.stage, l.reason));
            }
            out
        }
    }
}
