//! `pipe list` (and `run --dry-run`): the jobs a run would start, with their stage and needs.

use std::path::PathBuf;

use super::{exit, load_plan, print, CliError};
use crate::event::SCHEMA_VERSION;
use crate::plan::Plan;

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = super::FILE_HELP)]
    file: Option<PathBuf>,
    /// Only this job and what it needs (repeatable)
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    #[arg(long, value_enum, default_value = "human")]
    output: Output,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Output {
    Human,
    Json,
}

pub fn run(args: Args) -> Result<u8, CliError> {
    let (_, _, plan) = load_plan(args.file.as_deref(), &args.jobs)?;
    print(&render(&plan, args.output))?;
    Ok(exit::OK)
}

pub fn render(plan: &Plan, output: Output) -> String {
    let needs = |i: usize| -> Vec<&str> { plan.deps[i].iter().map(|(d, _)| plan.jobs[*d].name.as_str()).collect() };
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
            .collect(),
        Output::Human => {
            let rows: Vec<[String; 4]> = plan
                .order
                .iter()
                .map(|&i| {
                    let j = &plan.jobs[i];
                    [j.name.clone(), j.stage.clone(), needs(i).join(", "), j.image.clone().unwrap_or_else(|| "-".into())]
                })
                .collect();
            table(&["JOB", "STAGE", "NEEDS", "IMAGE"], &rows)
        }
    }
}

fn table(header: &[&str; 4], rows: &[[String; 4]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let s: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:w$}")).collect();
        format!("{}\n", s.join("  ").trim_end())
    };
    let mut out = line(*header);
    for row in rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    out
}
