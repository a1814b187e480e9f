//! A run's logs and artifacts published to a fleet's object store when a phase ends, so that
//! any agent or laptop reaches them, not only the machine that ran the jobs.

use tokio::io::AsyncReadExt;

use super::{Context, StoreAt};
use crate::objects::{LogWriter, ObjectsError};
use crate::plan::Plan;
use crate::reuse::SharedOutputs;
use crate::workspace::RunDir;

/// A log is stored in chunks of this many bytes, so a long log is never one object in memory.
const CHUNK: usize = 1 << 20;

/// The object store the context's runs keep their outputs in: only a shared run store's runs
/// do (a project's own store keeps them in `.pipe/runs/`).
pub(super) fn shared_outputs(ctx: &Context) -> Option<SharedOutputs> {
    match (&ctx.store, &ctx.objects) {
        (StoreAt::Shared(_), Some(objects)) => Some(SharedOutputs {
            objects: objects.clone(),
            project: super::record::shared_name(&ctx.project),
        }),
        _ => None,
    }
}

/// Publishes each job's log and artifacts of the plan as they are in the run's directory, under
/// `epoch`: the claim of the fleet's queue the jobs run under, or [`crate::store::UNCLAIMED`].
pub(super) async fn publish(
    to: &SharedOutputs,
    plan: &Plan,
    run: &RunDir,
    epoch: i64,
) -> Result<(), ObjectsError> {
    for slug in &plan.slugs {
        let mut log = match tokio::fs::File::open(run.log(slug)).await {
            Ok(log) => log,
            // A job that never started has no log.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let name = to.log_name(run.id, slug, epoch);
        let mut writer = LogWriter::new(&to.objects, &refs(&name));
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            chunk.clear();
            (&mut log)
                .take(CHUNK as u64)
                .read_to_end(&mut chunk)
                .await?;
            if chunk.is_empty() {
                break;
            }
            writer.append(&chunk).await?;
        }
        writer.finish().await?;
        let tree = to.objects.put_tree(&run.artifacts(slug)).await?;
        let json = serde_json::to_vec(&tree).expect("a manifest serializes");
        let name = to.artifacts_name(run.id, slug, epoch);
        to.objects.put_record(&refs(&name), json).await?;
    }
    Ok(())
}

pub(super) fn refs(name: &[String]) -> Vec<&str> {
    name.iter().map(String::as_str).collect()
}
