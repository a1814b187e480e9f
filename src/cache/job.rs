//! One job's cache through its life: the key resolved and the entry restored before its first
//! attempt, what it kept saved once it passed. A cache only ever saves time: whatever goes
//! wrong with it is said in the job's log and the job runs without it.

use std::path::PathBuf;

use super::{key, Saved, Store};
use crate::pipeline::cache::Cache;

pub struct JobCache {
    pub store: Store,
    pub cache: Cache,
    /// The run's source, which `hash` reads.
    pub source: PathBuf,
    pub env: Vec<(String, String)>,
    pub matrix: Vec<(String, String)>,
    /// Where the entry is unpacked, to become the top layer of the job's workspace.
    pub restore_into: PathBuf,
    /// Where the backend copied the cached paths when the job passed.
    pub save_from: PathBuf,
    pub run: i64,
    pub job: String,
}

/// What a restore found, for the save.
pub struct Restored {
    /// The key, if it could be had; `None`: the cache is not used.
    key: Option<String>,
    /// The entry restored had exactly this key: entries never change, so nothing is saved.
    exact: bool,
    /// The layer to lay on top of the job's workspace.
    pub layer: Option<PathBuf>,
}

impl Restored {
    /// Whether the job's paths will be saved if it passes: not after an exact hit, nor without
    /// a key. When not, the backend need not copy them out at all.
    pub fn saves(&self) -> bool {
        self.key.is_some() && !self.exact
    }
}

impl JobCache {
    /// Resolves the key and restores the best entry; `say` gets a line for the job's log.
    pub async fn restore(&self, mut say: impl FnMut(String)) -> Restored {
        let (store, cache, source, env, matrix, into) = (
            self.store.clone(),
            self.cache.clone(),
            self.source.clone(),
            self.env.clone(),
            self.matrix.clone(),
            self.restore_into.clone(),
        );
        let work = tokio::task::spawn_blocking(move || -> Result<_, String> {
            // Left by an earlier phase of the run (a retry of its failed jobs) at most.
            let _ = crate::workspace::remove(&into);
            let key = key::evaluate(&cache.key, &source, &env, &matrix)?;
            // A fallback that cannot be evaluated is skipped, not fatal: the key still works.
            let fallbacks: Vec<String> = cache
                .fallback_keys
                .iter()
                .filter_map(|t| key::evaluate(t, &source, &env, &matrix).ok())
                .collect();
            let restored = store.find(&key, &fallbacks).and_then(|found| match found {
                Some(entry) => store
                    .restore(&entry, &into)
                    .map(|restored| restored.then_some(entry.meta)),
                None => Ok(None),
            });
            Ok((key, restored))
        });
        match work.await {
            Ok(Ok((key, Ok(Some(meta))))) => {
                let exact = meta.key == key;
                if exact {
                    say(format!("pipe: cache restored from `{key}`"));
                } else {
                    say(format!(
                        "pipe: cache restored from `{}` (a fallback for `{key}`)",
                        meta.key
                    ));
                }
                Restored {
                    key: Some(key),
                    exact,
                    layer: Some(self.restore_into.clone()),
                }
            }
            Ok(Ok((key, Ok(None)))) => {
                say(format!("pipe: no cache for `{key}`"));
                Restored {
                    key: Some(key),
                    exact: false,
                    layer: None,
                }
            }
            Ok(Ok((key, Err(e)))) => {
                say(format!("pipe: {e}"));
                Restored {
                    key: Some(key),
                    exact: false,
                    layer: None,
                }
            }
            Ok(Err(why)) => {
                say(format!("pipe: the cache is not used: {why}"));
                Restored {
                    key: None,
                    exact: false,
                    layer: None,
                }
            }
            Err(e) => {
                say(format!("pipe: the cache is not used: {e}"));
                Restored {
                    key: None,
                    exact: false,
                    layer: None,
                }
            }
        }
    }

    /// Saves what the passed job kept under its key, unless it restored exactly that key.
    pub async fn save(&self, restored: &Restored, say: impl Fn(String)) {
        let Some(key) = restored.key.clone().filter(|_| restored.saves()) else {
            return;
        };
        if !self.save_from.is_dir() {
            say(format!(
                "pipe: cache `{key}` not saved: none of its paths were produced"
            ));
            return;
        }
        let (store, from, run, job) = (
            self.store.clone(),
            self.save_from.clone(),
            self.run,
            self.job.clone(),
        );
        let saving = {
            let key = key.clone();
            tokio::task::spawn_blocking(move || store.save(&key, &from, run, &job))
        };
        match saving.await {
            Ok(Ok(Saved::Stored { size })) => say(format!(
                "pipe: cache saved as `{key}` ({})",
                super::human_size(size)
            )),
            Ok(Ok(Saved::AlreadyThere)) => say(format!(
                "pipe: cache `{key}` not saved: another job saved it first"
            )),
            Ok(Err(e)) => say(format!("pipe: cache `{key}` not saved: {e}")),
            Err(e) => say(format!("pipe: cache `{key}` not saved: {e}")),
        }
    }
}
