//! Finding, loading and planning a project's pipeline, with paths as the user names them.

use std::path::{Path, PathBuf};

use super::EngineError;
use crate::pipeline::{self, LoadError, Pipeline, DEFAULT_FILES};
use crate::plan::{self, Plan, Selection};

/// Finds (`file`, else the first of the default names in `project`), loads and plans a
/// pipeline. The file is returned, and named in errors, as given: relative to the project.
pub fn load_plan(
    project: &Path,
    file: Option<&Path>,
    selection: Selection,
) -> Result<(PathBuf, Pipeline, Plan), EngineError> {
    load_plan_as(project, file, selection, None)
}

/// `load_plan`, with the pipeline named `default_name` unless its file names it (a pipeline
/// read from a checkout is named for the project, not for the checkout's folder).
pub(super) fn load_plan_as(
    project: &Path,
    file: Option<&Path>,
    selection: Selection,
    default_name: Option<&str>,
) -> Result<(PathBuf, Pipeline, Plan), EngineError> {
    let file = match file {
        Some(file) => file.to_path_buf(),
        None => DEFAULT_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| project.join(p).is_file())
            .ok_or_else(|| LoadError::NotFound {
                dir: project.to_path_buf(),
            })?,
    };
    let pipeline = match pipeline::load_as(&project.join(&file), default_name) {
        Ok(p) => p,
        Err(LoadError::Invalid(mut invalid)) => {
            // Report cycles among the jobs that could be read together with everything else.
            if let Some(Err(cycles)) = invalid
                .partial
                .as_ref()
                .map(|p| plan::build(p, Selection::all()))
            {
                invalid.problems.extend(cycles);
                invalid.problems.sort_by_key(|p| p.pos);
            }
            invalid.file = file;
            return Err(LoadError::Invalid(invalid).into());
        }
        Err(LoadError::Read { source, .. }) => return Err(LoadError::Read { file, source }.into()),
        Err(LoadError::TooLarge { size, .. }) => {
            return Err(LoadError::TooLarge { file, size }.into())
        }
        Err(e) => return Err(e.into()),
    };
    let plan = plan::build(&pipeline, selection).map_err(|problems| EngineError::Plan {
        file: file.clone(),
        problems,
    })?;
    Ok((file, pipeline, plan))
}

/// The pipeline as run `record` was started with it, under the run's own name.
pub(super) fn stored_pipeline(
    run: &crate::workspace::RunDir,
    record: &crate::store::RunRecord,
) -> Result<Pipeline, EngineError> {
    let mut pipeline = pipeline::load(&run.pipeline_file())?;
    pipeline.name = record.pipeline_name.clone();
    Ok(pipeline)
}
