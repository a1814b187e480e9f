//! A watch session (`pipe run --watch`): a run, then a new run of the same request after each
//! batch of changes to the files a run sees ([`crate::watch`]), until the request's cancel
//! handle is asked to stop. The pipeline file is loaded afresh for each run, so an edit to it
//! counts at once; a run that cannot start (an invalid pipeline, no backend, a refusal) is
//! reported and the session waits for the next change.
//!
//! Changes made during a run are kept: when it ends, one new run follows for all of them. A
//! run is never cancelled for a change, as `cargo watch -r` would: a cancelled run leaves an
//! interrupted run in the store for each save, and its jobs' containers torn down half way,
//! while a run that ends says something true about the tree it started on.

use super::{start, Cancel, Context, EngineError, Internal, StartRequest};
use crate::event::EventKind;
use crate::run::Interrupt;
use crate::watch::Changes;

/// Runs `request` (made afresh for each run) until `cancel` is asked to stop; returns what
/// stopped it. `failed` hears each run that could not start; pipe's own failures end the
/// session instead.
pub async fn watch(
    ctx: Context,
    cancel: Cancel,
    request: impl Fn(Context, Cancel) -> StartRequest,
    mut failed: impl FnMut(&EngineError),
) -> Result<Interrupt, EngineError> {
    // Watching starts before the first run: a change made during it is not missed.
    let mut changes = Changes::watch(&ctx.project).map_err(Internal::from)?;
    let mut asked = cancel.subscribe();
    loop {
        match start(request(ctx.clone(), cancel.clone())).await {
            Ok(_) => {}
            Err(EngineError::Internal(e)) => return Err(e.into()),
            Err(e) => failed(&e),
        }
        if let Some(why) = asked.borrow().first() {
            return Ok(*why);
        }
        ctx.emit(EventKind::Watching {});
        let paths = tokio::select! {
            paths = changes.next() => paths.map_err(Internal::from)?,
            stop = asked.wait_for(|asked| !asked.is_empty()) => {
                // The handle lives as long as `cancel`: it cannot close while waited on.
                return Ok(stop.map_or(Interrupt::Interrupt, |asked| asked[0]));
            }
        };
        ctx.emit(EventKind::FilesChanged {
            paths: paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        });
    }
}
