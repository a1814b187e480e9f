//! What a client that follows a run live reads (the agent's API and pages): a job's log from a
//! byte offset, a piece at a time, and the run's job graph as its stored pipeline draws it.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::load::stored_pipeline;
use super::record::recorded_store;
use super::{EngineError, Internal};
use crate::store::{RunId, Store};
use crate::workspace::RunDir;

/// A piece of a job's log.
#[derive(Debug)]
pub struct LogPiece {
    pub text: Vec<u8>,
    /// The offset after `text`: where the next read starts.
    pub next: u64,
    /// The job is over and `text` reaches the end of its log: nothing more will come.
    pub ended: bool,
}

/// At most `max` bytes of run `run`'s log of `job` from byte `offset`.
pub fn log_since(
    project: &Path,
    run: RunId,
    job: &str,
    offset: u64,
    max: usize,
) -> Result<LogPiece, EngineError> {
    let mut store = recorded_store(project, &run.to_string())?;
    let record = store.jobs(run)?.into_iter().find(|j| j.name == job);
    let Some(record) = record else {
        return Err(EngineError::Invalid(format!(
            "run {run} has no job `{job}`"
        )));
    };
    // Judged before reading: a job that ends meanwhile has written all of its log by then, so
    // the read below cannot miss its end.
    let over = !matches!(record.status.as_str(), "running" | "pending" | "waiting")
        || !store.run(run)?.state.is_active();
    let mut text = Vec::new();
    if !record.log.is_empty() {
        if let Ok(mut f) = std::fs::File::open(project.join(&record.log)) {
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.take(max as u64).read_to_end(&mut text))
                .map_err(Internal::io(format!("read the log of job `{job}`")))?;
        }
    }
    Ok(LogPiece {
        ended: over && text.len() < max,
        next: offset + text.len() as u64,
        text,
    })
}

/// Run `run`'s edges `(needed, needing)` between job names, as its pipeline says.
pub fn job_needs(project: &Path, run: RunId) -> Result<Vec<(String, String)>, EngineError> {
    let mut store = recorded_store(project, &run.to_string())?;
    let record = store.run(run)?;
    let pipeline = stored_pipeline(&RunDir::at(project, run), &record)?;
    let mut edges = Vec::new();
    for job in &pipeline.jobs {
        for need in job.needs.iter().flatten() {
            for from in pipeline.jobs.iter().filter(|j| j.base == need.name) {
                edges.push((from.name.clone(), job.name.clone()));
            }
        }
    }
    Ok(edges)
}
