//! The one file that imports `object_store`: a bucket (or a folder) of objects named by lists
//! of parts, on the local filesystem, S3, GCS or Azure as its URL says.

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, PutPayload};

use super::ObjectsError;

/// Objects under a root: every name is the root's parts and then the caller's, each part
/// encoded on its own, so a part such as `..` or `a/b` stays one part.
#[derive(Clone)]
pub(super) struct Bucket {
    store: Arc<dyn ObjectStore>,
    root: Vec<String>,
    /// As messages name it.
    shown: String,
}

impl Bucket {
    /// The bucket of `url`: `file:///path` (the folder must exist), `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `az://container/prefix`. Credentials come from `env`
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as each cloud's tools name them).
    pub fn open(url: &str, env: &[(String, String)]) -> Result<Bucket, ObjectsError> {
        let bad = |why: String| ObjectsError::Open {
            url: url.to_string(),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a URL (file:///…, s3://…, gs://…, az://…)".into()))?;
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let root = prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let config = |prefix: &'static str| {
            env.iter()
                .filter(move |(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        };
        let store: Arc<dyn ObjectStore> = match scheme {
            "file" if host.is_empty() => {
                let local = LocalFileSystem::new_with_prefix(format!("/{prefix}"))
                    .map_err(|e| bad(e.to_string()))?;
                return Ok(Bucket {
                    store: Arc::new(local),
                    root: Vec::new(),
                    shown: url.to_string(),
                });
            }
            "file" => return Err(bad("a file URL names a local folder: file:///path".into())),
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::new();
                for (k, v) in config("AWS_") {
                    if let Ok(key) = k.parse() {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(
                    b.with_url(format!("s3://{host}"))
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::new();
                for (k, v) in config("GOOGLE_") {
                    if let Ok(key) = k.parse() {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(
                    b.with_url(format!("gs://{host}"))
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            "az" | "azure" | "abfs" => {
                let mut b = MicrosoftAzureBuilder::new();
                for (k, v) in config("AZURE_") {
                    if let Ok(key) = k.parse() {
                        b = b.with_config(key, v);
                    }
                }
                Arc::new(
                    b.with_url(format!("{scheme}://{host}"))
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                )
            }
            other => {
                return Err(bad(format!(
                    "`{other}` is not an object store pipe knows: file, s3, gs or az"
                )))
            }
        };
        Ok(Bucket {
            store,
            root,
            shown: url.to_string(),
        })
    }

    /// As messages name the bucket.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn path(&self, name: &[&str]) -> Path {
        let root = self.root.iter().map(|p| PathPart::from(p.as_str()));
        Path::from_iter(root.chain(name.iter().map(|p| PathPart::from(*p))))
    }

    fn failed(&self, name: &[&str], e: object_store::Error) -> ObjectsError {
        ObjectsError::Failed {
            bucket: self.shown.clone(),
            name: name.join("/"),
            why: e.to_string(),
        }
    }

    /// Writes an object whole (readers never see part of it).
    pub async fn put(&self, name: &[&str], bytes: Vec<u8>) -> Result<(), ObjectsError> {
        self.store
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.failed(name, e))
    }

    /// The object's bytes; `None` when there is no such object.
    pub async fn get(&self, name: &[&str]) -> Result<Option<Vec<u8>>, ObjectsError> {
        let got = match self.store.get(&self.path(name)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(name, e)),
        };
        let bytes = got.bytes().await.map_err(|e| self.failed(name, e))?;
        Ok(Some(bytes.to_vec()))
    }

    pub async fn exists(&self, name: &[&str]) -> Result<bool, ObjectsError> {
        match self.store.head(&self.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(name, e)),
        }
    }

    /// The last part of the name of every object under `prefix`, with its size (pipe lists
    /// only names it made: plain ones, stored as they are).
    pub async fn list(&self, prefix: &[&str]) -> Result<Vec<(String, u64)>, ObjectsError> {
        let at = self.path(prefix);
        let metas: Vec<_> = self
            .store
            .list(Some(&at))
            .try_collect()
            .await
            .map_err(|e| self.failed(prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| Some((m.location.filename()?.to_string(), m.size)))
            .collect())
    }

    /// Removes an object; one that is not there is no error.
    pub async fn delete(&self, name: &[&str]) -> Result<(), ObjectsError> {
        self.store
            .delete(&self.path(name))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(e),
            })
            .map_err(|e| self.failed(name, e))
    }

    /// Removes every object under `prefix`; returns how many there were.
    pub async fn delete_under(&self, prefix: &[&str]) -> Result<usize, ObjectsError> {
        let metas: Vec<_> = self
            .store
            .list(Some(&self.path(prefix)))
            .try_collect()
            .await
            .map_err(|e| self.failed(prefix, e))?;
        for meta in &metas {
            match self.store.delete(&meta.location).await {
                // Removed meanwhile by another: what was asked for holds.
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed(prefix, e)),
            }
        }
        Ok(metas.len())
    }
}
