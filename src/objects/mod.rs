//! Artifacts, logs and reuse records where every agent of a fleet reaches them: an object store
//! (a folder, S3, GCS or Azure) beside the shared PostgreSQL run store.
//!
//! - Files are stored once by the sha256 of their bytes (`sha256/AB/ABCD…`) and checked
//!   against it whenever they are read, so a reuse key found on one machine restores the same
//!   bytes on another, and a damaged object is refused rather than handed to a job.
//! - A job's artifacts are a manifest (paths, hashes, links as links) whose paths are checked
//!   before anything is laid, and laid without following links.
//! - A log is appended in chunks named by their byte offset and closed by an end record with
//!   its length and hash: a lost, repeated or reordered chunk is found when it is read.

mod bucket;
mod error;
mod log;
mod tree;

use sha2::{Digest, Sha256};

use bucket::Bucket;
pub use error::ObjectsError;
pub use log::LogWriter;
pub use tree::{Entry, Kind, Tree};

/// An object store, opened.
#[derive(Clone)]
pub struct Objects {
    bucket: Bucket,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.bucket.shown())
    }
}

impl Objects {
    /// The store at `url` (see [`Bucket::open`]), with the cloud credentials in `env`.
    pub fn open(url: &str, env: &[(String, String)]) -> Result<Objects, ObjectsError> {
        Ok(Objects {
            bucket: Bucket::open(url, env)?,
        })
    }

    /// Stores `bytes` once, by their hash; returns the hash (hex).
    pub async fn put_blob(&self, bytes: Vec<u8>) -> Result<String, ObjectsError> {
        let hash = sha256(&bytes);
        let name = blob_name(&hash);
        // Stored once: another agent may have stored the same bytes already.
        if !self.bucket.exists(&name.each()).await? {
            self.bucket.put(&name.each(), bytes).await?;
        }
        Ok(hash)
    }

    /// The bytes stored under `hash`, refused unless they hash to it.
    pub async fn get_blob(&self, hash: &str) -> Result<Vec<u8>, ObjectsError> {
        let name = blob_name(hash);
        let bytes = self
            .bucket
            .get(&name.each())
            .await?
            .ok_or_else(|| ObjectsError::Missing {
                bucket: self.bucket.shown().to_string(),
                name: name.joined(),
            })?;
        let got = sha256(&bytes);
        if got != hash {
            return Err(ObjectsError::Corrupt {
                bucket: self.bucket.shown().to_string(),
                name: name.joined(),
                got,
            });
        }
        Ok(bytes)
    }

    /// A small record (JSON) under a name of pipe's own.
    pub async fn put_record(&self, name: &[&str], bytes: Vec<u8>) -> Result<(), ObjectsError> {
        self.bucket.put(name, bytes).await
    }

    /// The record under `name`; `None` when there is none.
    pub async fn get_record(&self, name: &[&str]) -> Result<Option<Vec<u8>>, ObjectsError> {
        self.bucket.get(name).await
    }

    /// Removes every object named under `prefix` (a name of pipe's own, never a blob: blobs
    /// are shared by whatever has the same bytes); returns how many there were.
    pub async fn remove_under(&self, prefix: &[&str]) -> Result<usize, ObjectsError> {
        self.bucket.delete_under(prefix).await
    }

    /// The last part of the name of each record under `prefix`, with its size.
    pub async fn list_records(&self, prefix: &[&str]) -> Result<Vec<(String, u64)>, ObjectsError> {
        self.bucket.list(prefix).await
    }

    /// Removes the record under `name` (a blob is never removed: another record may name it).
    pub async fn delete_record(&self, name: &[&str]) -> Result<(), ObjectsError> {
        self.bucket.delete(name).await
    }

    /// As messages name the store.
    pub fn shown(&self) -> &str {
        self.bucket.shown()
    }
}

/// A blob's name: `sha256/AB/ABCD…` (a hash that is not plain hex names no blob of pipe's).
struct BlobName(Vec<String>);

fn blob_name(hash: &str) -> BlobName {
    let hash = if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        hash.to_ascii_lowercase()
    } else {
        "not-a-hash".to_string()
    };
    BlobName(vec!["sha256".into(), hash[..2].to_string(), hash])
}

impl BlobName {
    fn each(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    fn joined(&self) -> String {
        self.0.join("/")
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    crate::reuse::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
pub(crate) mod testing {
    /// A store in a fresh folder.
    pub fn store() -> (tempfile::TempDir, super::Objects) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let objects = super::Objects::open(&url, &[]).unwrap();
        (dir, objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_is_stored_once_by_its_hash_and_refused_when_its_bytes_change() {
        let (dir, objects) = testing::store();
        let hash = objects.put_blob(b"built".to_vec()).await.unwrap();
        assert_eq!(hash, sha256(b"built"));
        assert_eq!(objects.put_blob(b"built".to_vec()).await.unwrap(), hash);
        assert_eq!(objects.get_blob(&hash).await.unwrap(), b"built");
        let file = dir.path().join("sha256").join(&hash[..2]).join(&hash);
        std::fs::write(&file, b"tampered").unwrap();
        let refused = objects.get_blob(&hash).await.unwrap_err();
        assert!(
            refused.to_string().contains("does not hash to its name"),
            "{refused}"
        );
        let missing = objects.get_blob(&sha256(b"other")).await.unwrap_err();
        assert!(matches!(missing, ObjectsError::Missing { .. }), "{missing}");
    }

    #[tokio::test]
    async fn removing_under_a_name_removes_what_is_below_it_and_nothing_beside_it() {
        let (_dir, objects) = testing::store();
        for name in [
            &["r", "1", "log"][..],
            &["r", "1", "a", "b"],
            &["r", "10", "log"],
        ] {
            objects.put_record(name, b"x".to_vec()).await.unwrap();
        }
        assert_eq!(objects.remove_under(&["r", "1"]).await.unwrap(), 2);
        assert_eq!(objects.get_record(&["r", "1", "log"]).await.unwrap(), None);
        assert_eq!(
            objects.get_record(&["r", "1", "a", "b"]).await.unwrap(),
            None
        );
        let beside = objects.get_record(&["r", "10", "log"]).await.unwrap();
        assert_eq!(beside.as_deref(), Some(&b"x"[..]));
        assert_eq!(objects.remove_under(&["r", "1"]).await.unwrap(), 0);
    }

    #[test]
    fn a_store_url_pipe_does_not_know_is_refused() {
        let err = |url: &str| Objects::open(url, &[]).err().unwrap().to_string();
        assert!(err("ftp://host/x").contains("not an object store pipe knows"));
        assert!(err("/plain/path").contains("not a URL"));
        assert!(err("file://host/x").contains("file:///path"));
        assert!(err("file:///no/such/folder/at/all").contains("file:///no/such"));
    }
}
