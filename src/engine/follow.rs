//! What a client that follows a run live reads (the agent's API and pages): a job's log from a
//! byte offset, a piece at a time, and the run's job graph as its stored pipeline draws it.

use std::io::{Read, Seek, SeekFrom};

use tokio::runtime::Handle;

use super::load::stored_pipeline;
use super::publish::{refs, shared_outputs};
use super::record::recorded;
use super::{Context, EngineError, Internal};
use crate::store::{RunId, UNCLAIMED};
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

/// At most `max` bytes of run `run`'s log of `job` from byte `offset`. A job an agent of the
/// fleet ran from the queue has its log in the object store once it is over (each agent's
/// folder of the job is gone by then), whole: all of it from `offset` comes at once. Blocking:
/// call it off the async workers, except with `max` 0, which reads nothing.
pub fn log_since(
    ctx: &Context,
    run: RunId,
    job: &str,
    offset: u64,
    max: usize,
) -> Result<LogPiece, EngineError> {
    let mut store = recorded(ctx, &run.to_string())?;
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
    let file = ctx.project.join(&record.log);
    let local = (!record.log.is_empty() && max > 0).then(|| std::fs::File::open(&file));
    match (local, shared_outputs(ctx)) {
        (Some(Ok(mut f)), _) => {
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.take(max as u64).read_to_end(&mut text))
                .map_err(Internal::io(format!("read the log of job `{job}`")))?;
        }
        (Some(Err(_)), Some(shared)) if record.epoch != UNCLAIMED => {
            let slug = file.file_stem().unwrap_or_default().to_string_lossy();
            let name = shared.log_name(run, &slug, record.epoch);
            match Handle::current().block_on(shared.objects.read_log(&refs(&name))) {
                Ok(log) => text = log.get(offset as usize..).unwrap_or_default().to_vec(),
                // Until the agent that ran it has published it.
                Err(_) if !over => {}
                Err(e) => return Err(Internal::Backend(e.to_string()).into()),
            }
            return Ok(LogPiece {
                ended: over,
                next: offset + text.len() as u64,
                text,
            });
        }
        _ => {}
    }
    Ok(LogPiece {
        ended: over && text.len() < max,
        next: offset + text.len() as u64,
        text,
    })
}

/// Run `run`'s edges `(needed, needing)` between job names, as its pipeline says. Blocking: a
/// run of the fleet's queue started elsewhere gets its folder here first.
pub fn job_needs(ctx: &Context, run: RunId) -> Result<Vec<(String, String)>, EngineError> {
    let mut store = recorded(ctx, &run.to_string())?;
    let record = store.run(run)?;
    super::adopt::directory(ctx, run, &record, &store.jobs(run)?)?;
    let pipeline = stored_pipeline(&RunDir::at(&ctx.project, run), &record)?;
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
