//! `pipe validate`: every problem of a pipeline at once, or a one-line all-clear — with a
//! warning for each job `pipe run` would refuse on Docker without `--allow-privileged`, so
//! that "valid" never means "will run" when it will not.

use std::path::Path;

use super::{exit, load_plan, print, CliError};

pub fn run(file: Option<&Path>) -> Result<u8, CliError> {
    let (file, pipeline, plan) = load_plan(file, crate::plan::Selection::all())?;
    let mut asks = crate::engine::privileges_asked(pipeline.jobs.iter());
    // A matrix job's variants ask at the same place: one warning for them all.
    asks.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    asks.dedup_by(|a, b| (a.1, &a.2) == (b.1, &b.2));
    for (job, pos, what) in &asks {
        eprintln!(
            "{}:{}:{}: warning: job `{}` asks for {what}: `pipe run` refuses it on Docker unless you pass --allow-privileged",
            file.display(),
            pos.line,
            pos.col,
            job.base
        );
    }
    let warnings = match asks.len() {
        0 => String::new(),
        1 => " with 1 warning".into(),
        n => format!(" with {n} warnings"),
    };
    print(&format!(
        "{}: valid{warnings}: pipeline `{}`, {} job(s) in {} stage(s), critical path {} job(s)\n",
        file.display(),
        pipeline.name,
        plan.jobs.len(),
        pipeline.stages.len(),
        plan.critical_path.len()
    ))?;
    Ok(exit::OK)
}
