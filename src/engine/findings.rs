//! What a run's kept SARIF reports say beyond the counts in the store: which tools found what,
//! and the run's SARIF — every scan job's report and every job's `reports:`, in one document.

use std::path::Path;

use serde_json::Value;

use super::artifacts::chosen_jobs;
use super::{EngineError, Internal};
use crate::store::{JobRecord, RunId};
use crate::workspace::RunDir;

/// The tools whose findings `job` of run `run` kept (`pipe` for a scan job), each once; empty
/// for a job without a SARIF report or whose report is gone.
pub fn finding_tools(project: &Path, run: RunId, job: &JobRecord) -> Vec<String> {
    // The job's log is `logs/SLUG.log`: its report is named by the same slug.
    let Some(slug) = Path::new(&job.log).file_stem().and_then(|s| s.to_str()) else {
        return Vec::new();
    };
    std::fs::read(RunDir::at(project, run).sarif(slug))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .map(|sarif| crate::scan::reports::tools(&sarif))
        .unwrap_or_default()
}

/// The SARIF reports of run `run` (a number or `last`), the runs of each appended in the
/// order of the pipeline's jobs.
pub fn run_sarif(project: &Path, run: &str) -> Result<(RunId, Value), EngineError> {
    let (id, dir, jobs) = chosen_jobs(project, run, None)?;
    let mut documents = Vec::new();
    for (name, slug) in jobs {
        let bytes = match std::fs::read(dir.sarif(&slug)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Internal::io(format!(
                    "read the SARIF report of job `{name}`"
                ))(e))
            }
        };
        let document = serde_json::from_slice(&bytes).map_err(|e| {
            Internal::io(format!("read the SARIF report of job `{name}`"))(std::io::Error::other(e))
        })?;
        documents.push(document);
    }
    Ok((id, crate::scan::reports::merge(documents)))
}
