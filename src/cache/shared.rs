//! Caches in a fleet's object store, so that a cache one agent saved is restored on any other.
//!
//! An entry is its archive stored as a blob by its sha256 (checked whenever it is read) and a
//! small record, `PROJECT/caches/ID` (ID: a digest of the key, as in the folder store), naming
//! the blob, its size, and when and by which run and job it was saved. The blob is stored before
//! the record, so a record always names a whole blob. Nothing evicts entries here: the fleet's
//! object store is sized and expired by whoever runs it, and `pipe cache clear` forgets them.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{archive, CacheError, Meta, Saved};
use crate::objects::{Objects, ObjectsError};

/// One project's caches in an object store.
#[derive(Clone)]
pub struct SharedCaches {
    objects: Objects,
    /// The project's name in what the fleet shares (its folder's name, as for its runs).
    project: String,
}

/// What the object store keeps under a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub meta: Meta,
    /// The archive's sha256: its blob's name.
    pub blob: String,
    pub size: u64,
}

impl SharedCaches {
    pub fn new(objects: Objects, project: String) -> SharedCaches {
        SharedCaches { objects, project }
    }

    /// Where this project's records are.
    fn folder(&self) -> [&str; 2] {
        [self.project.as_str(), "caches"]
    }

    fn record_name(&self, key: &str) -> [String; 3] {
        let id: String = Sha256::digest(key.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        [self.project.clone(), "caches".into(), id]
    }

    async fn read(&self, name: &[String]) -> Result<Option<Record>, ObjectsError> {
        let parts: Vec<&str> = name.iter().map(String::as_str).collect();
        let Some(json) = self.objects.get_record(&parts).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| ObjectsError::Record {
                name: name.join("/"),
                why: e.to_string(),
            })
    }

    async fn forget(&self, key: &str) -> Result<(), ObjectsError> {
        let name = self.record_name(key);
        let parts: Vec<&str> = name.iter().map(String::as_str).collect();
        self.objects.delete_record(&parts).await
    }

    /// This project's entries, newest first. A record that does not read is left out.
    pub async fn list(&self) -> Result<Vec<Record>, ObjectsError> {
        let mut records = Vec::new();
        for (id, _) in self.objects.list_records(&self.folder()).await? {
            let name = [self.project.clone(), "caches".into(), id];
            if let Ok(Some(record)) = self.read(&name).await {
                records.push(record);
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse((r.meta.created, r.meta.run)));
        Ok(records)
    }

    /// The entry to restore: the one with `key`, else the newest whose key starts with the
    /// first of `fallbacks` that any key starts with (as the folder store finds them).
    pub async fn find(
        &self,
        key: &str,
        fallbacks: &[String],
    ) -> Result<Option<Record>, ObjectsError> {
        if let Some(exact) =
            (self.read(&self.record_name(key)).await?).filter(|r| r.meta.key == key)
        {
            return Ok(Some(exact));
        }
        if fallbacks.is_empty() {
            return Ok(None);
        }
        let all = self.list().await?;
        Ok(fallbacks
            .iter()
            .find_map(|prefix| all.iter().find(|r| r.meta.key.starts_with(prefix.as_str())))
            .cloned())
    }

    /// Unpacks `record`'s archive into `into` (a folder made here). A blob that is missing or
    /// does not hash to its name, or an archive holding what no cache may, is forgotten (its
    /// record removed, so that the job saves a sound one) and `into` removed.
    pub async fn restore(&self, record: &Record, into: &Path) -> Result<(), CacheError> {
        let key = record.meta.key.clone();
        let bytes = match self.objects.get_blob(&record.blob).await {
            Ok(bytes) => bytes,
            Err(e @ (ObjectsError::Missing { .. } | ObjectsError::Corrupt { .. })) => {
                let _ = self.forget(&key).await;
                return Err(CacheError::Damaged {
                    key,
                    why: e.to_string(),
                });
            }
            Err(e) => return Err(CacheError::Objects(e)),
        };
        let to = into.to_path_buf();
        let unpacked = tokio::task::spawn_blocking(move || {
            let unpacked = archive::unpack(&bytes[..], &to);
            if unpacked.is_err() {
                let _ = crate::workspace::remove(&to);
            }
            unpacked
        })
        .await
        .map_err(|e| super::io_err("restore the cache")(std::io::Error::other(e)))?;
        match unpacked {
            Ok(()) => Ok(()),
            Err(archive::ArchiveError::Unsafe(why)) => {
                let _ = self.forget(&key).await;
                Err(CacheError::Poisoned { key, why })
            }
            Err(archive::ArchiveError::Io(e)) => Err(super::io_err("restore the cache")(e)),
        }
    }

    /// Saves what is under `from` as `key` unless an entry of that key is there already. The
    /// archive is held in memory while it is stored.
    pub async fn save(
        &self,
        key: &str,
        from: &Path,
        run: i64,
        job: &str,
    ) -> Result<Saved, CacheError> {
        let name = self.record_name(key);
        if self
            .read(&name)
            .await
            .map_err(CacheError::Objects)?
            .is_some()
        {
            return Ok(Saved::AlreadyThere);
        }
        let from: PathBuf = from.to_path_buf();
        let packed = tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::new();
            archive::pack(&from, &mut bytes).map(|()| bytes)
        })
        .await
        .map_err(|e| super::io_err("save the cache")(std::io::Error::other(e)))?;
        let bytes = packed.map_err(|e| match e {
            archive::ArchiveError::Unsafe(why) => CacheError::Unsafe(why),
            archive::ArchiveError::Io(e) => super::io_err("save the cache")(e),
        })?;
        let size = bytes.len() as u64;
        let blob = self
            .objects
            .put_blob(bytes)
            .await
            .map_err(CacheError::Objects)?;
        let record = Record {
            meta: Meta {
                key: key.to_string(),
                created: Utc::now(),
                run,
                job: job.to_string(),
            },
            blob,
            size,
        };
        let json = serde_json::to_vec(&record).expect("a cache record serializes");
        let parts: Vec<&str> = name.iter().map(String::as_str).collect();
        // Two agents saving one key at once both store a whole entry; the later record stays.
        self.objects
            .put_record(&parts, json)
            .await
            .map_err(CacheError::Objects)?;
        Ok(Saved::Stored { size })
    }

    /// Forgets this project's entry `key`, or all of them; returns how many. Their blobs stay:
    /// content-addressed, one may be named by another project's record or a run's artifacts.
    pub async fn clear(&self, key: Option<&str>) -> Result<usize, ObjectsError> {
        let doomed: Vec<Record> = self
            .list()
            .await?
            .into_iter()
            .filter(|r| key.is_none_or(|k| r.meta.key == k))
            .collect();
        for record in &doomed {
            self.forget(&record.meta.key).await?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(dir: &Path, name: &str, content: &str) -> PathBuf {
        let from = dir.join(name);
        std::fs::create_dir_all(from.join("deps")).unwrap();
        std::fs::write(from.join("deps/lib"), content).unwrap();
        from
    }

    #[tokio::test]
    async fn saves_finds_by_key_or_fallback_restores_and_forgets_a_damaged_blob() {
        let (store_dir, objects) = crate::objects::testing::store();
        let caches = SharedCaches::new(objects, "web".into());
        let dir = tempfile::tempdir().unwrap();
        assert!(caches.list().await.unwrap().is_empty());
        let saved = caches
            .save("deps-1", &kept(dir.path(), "a", "one"), 1, "build")
            .await;
        assert!(matches!(saved.unwrap(), Saved::Stored { .. }));
        let again = caches
            .save("deps-1", &kept(dir.path(), "b", "two"), 2, "build")
            .await;
        assert_eq!(again.unwrap(), Saved::AlreadyThere);
        assert!(caches.find("other", &[]).await.unwrap().is_none());
        let hit = caches
            .find("deps-9", &["nope-".into(), "deps-".into()])
            .await
            .unwrap();
        let hit = hit.unwrap();
        assert_eq!((hit.meta.key.as_str(), hit.meta.run), ("deps-1", 1));
        let into = dir.path().join("restored");
        caches.restore(&hit, &into).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(into.join("deps/lib")).unwrap(),
            "one"
        );

        let blob = store_dir
            .path()
            .join("sha256")
            .join(&hit.blob[..2])
            .join(&hit.blob);
        std::fs::write(&blob, b"not a tar").unwrap();
        let into = dir.path().join("again");
        let err = caches.restore(&hit, &into).await.unwrap_err();
        assert!(
            err.to_string().contains("does not hash to its name"),
            "{err}"
        );
        assert!(!into.exists());
        assert!(
            caches.find("deps-1", &[]).await.unwrap().is_none(),
            "forgotten"
        );
        let saved = caches
            .save("deps-1", &kept(dir.path(), "c", "three"), 3, "build")
            .await;
        assert!(
            matches!(saved.unwrap(), Saved::Stored { .. }),
            "saved afresh"
        );
        assert_eq!(caches.clear(Some("deps-1")).await.unwrap(), 1);
        assert!(caches.list().await.unwrap().is_empty());
    }
}
