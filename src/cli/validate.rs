//! `pipe validate`: every problem of a pipeline at once, or a one-line all-clear.

use std::path::Path;

use super::{exit, load_plan, print, CliError};

pub fn run(file: Option<&Path>) -> Result<u8, CliError> {
    let (file, pipeline, plan) = load_plan(file, crate::plan::Selection::all())?;
    print(&format!(
        "{}: valid: pipeline `{}`, {} job(s) in {} stage(s), critical path {} job(s)\n",
        file.display(),
        pipeline.name,
        plan.jobs.len(),
        pipeline.stages.len(),
        plan.critical_path.len()
    ))?;
    Ok(exit::OK)
}
