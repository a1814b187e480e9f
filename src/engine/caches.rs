//! Where a project's job caches are: in the fleet's object store for runs recorded in a shared
//! store that has one, so that any agent restores what another saved; else in a folder of this
//! machine.

use std::path::PathBuf;

use super::publish::shared_outputs;
use super::Context;
use crate::cache::{shared::SharedCaches, Caches, Store};
use crate::owner::project_key;

/// The context's caches: the object store's, else those in `dir` (at most `size` bytes of all
/// projects'); `None`: there is nowhere to keep them.
pub fn caches(ctx: &Context, dir: Option<&PathBuf>, size: u64) -> Option<Caches> {
    match shared_outputs(ctx) {
        Some(to) => Some(Caches::Objects(SharedCaches::new(to.objects, to.project))),
        None => {
            dir.map(|dir| Caches::Folder(Store::new(dir.clone(), project_key(&ctx.project), size)))
        }
    }
}
