//! One job's cache through its life: the key resolved and the entry restored before its first
//! attempt, what it kept saved once it passed. A cache only ever saves time: whatever goes
//! wrong with it is said in the job's log and the job runs without it. Its entries are in a
//! folder of this machine or in a fleet's object store ([`Caches`]).

use std::path::PathBuf;

use super::{key, CacheError, Caches, Saved};
use crate::pipeline::cache::Cache;

pub struct JobCache {
    pub store: Caches,
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
        let (cache, source, env, matrix, into) = (
            self.cache.clone(),
            self.source.clone(),
            self.env.clone(),
            self.matrix.clone(),
            self.restore_into.clone(),
        );
        let keys = tokio::task::spawn_blocking(move || -> Result<_, String> {
            // Left by an earlier phase of the run (a retry of its failed jobs) at most.
            let _ = crate::workspace::remove(&into);
            let key = key::evaluate(&cache.key, &source, &env, &matrix)?;
            // A fallback that cannot be evaluated is skipped, not fatal: the key still works.
            let fallbacks: Vec<String> = cache
                .fallback_keys
                .iter()
                .filter_map(|t| key::evaluate(t, &source, &env, &matrix).ok())
                .collect();
            Ok((key, fallbacks))
        });
        let (key, fallbacks) = match keys.await.map_err(|e| e.to_string()).and_then(|k| k) {
            Ok(keys) => keys,
            Err(why) => {
                say(format!("pipe: the cache is not used: {why}"));
                return Restored {
                    key: None,
                    exact: false,
                    layer: None,
                };
            }
        };
        let (exact, layer) = match self.find_and_restore(&key, &fallbacks).await {
            Ok(Some(found)) if found == key => {
                say(format!("pipe: cache restored from `{key}`"));
                (true, Some(self.restore_into.clone()))
            }
            Ok(Some(found)) => {
                say(format!(
                    "pipe: cache restored from `{found}` (a fallback for `{key}`)"
                ));
                (false, Some(self.restore_into.clone()))
            }
            Ok(None) => {
                say(format!("pipe: no cache for `{key}`"));
                (false, None)
            }
            Err(CacheError::Objects(e)) => {
                say(format!("pipe: the cache is not restored: {e}"));
                (false, None)
            }
            Err(e) => {
                say(format!("pipe: {e}"));
                (false, None)
            }
        };
        Restored {
            key: Some(key),
            exact,
            layer,
        }
    }

    /// Finds the best entry and unpacks it into `restore_into`; the key of the entry restored.
    async fn find_and_restore(
        &self,
        key: &str,
        fallbacks: &[String],
    ) -> Result<Option<String>, CacheError> {
        match &self.store {
            Caches::Folder(store) => {
                let (store, key, fallbacks, into) = (
                    store.clone(),
                    key.to_string(),
                    fallbacks.to_vec(),
                    self.restore_into.clone(),
                );
                let work = tokio::task::spawn_blocking(move || -> Result<_, CacheError> {
                    match store.find(&key, &fallbacks)? {
                        Some(entry) => Ok(store.restore(&entry, &into)?.then_some(entry.meta.key)),
                        None => Ok(None),
                    }
                });
                work.await
                    .map_err(|e| super::io_err("restore the cache")(std::io::Error::other(e)))?
            }
            Caches::Objects(shared) => {
                let found = shared.find(key, fallbacks).await;
                match found.map_err(CacheError::Objects)? {
                    Some(record) => {
                        shared.restore(&record, &self.restore_into).await?;
                        Ok(Some(record.meta.key))
                    }
                    None => Ok(None),
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
        let saved = match &self.store {
            Caches::Folder(store) => {
                let (store, from, run, job, key) = (
                    store.clone(),
                    self.save_from.clone(),
                    self.run,
                    self.job.clone(),
                    key.clone(),
                );
                let saving =
                    tokio::task::spawn_blocking(move || store.save(&key, &from, run, &job));
                saving.await.unwrap_or_else(|e| {
                    Err(super::io_err("save the cache")(std::io::Error::other(e)))
                })
            }
            Caches::Objects(shared) => {
                shared
                    .save(&key, &self.save_from, self.run, &self.job)
                    .await
            }
        };
        match saved {
            Ok(Saved::Stored { size }) => say(format!(
                "pipe: cache saved as `{key}` ({})",
                super::human_size(size)
            )),
            Ok(Saved::AlreadyThere) => say(format!(
                "pipe: cache `{key}` not saved: another job saved it first"
            )),
            Err(e) => say(format!("pipe: cache `{key}` not saved: {e}")),
        }
    }
}
