//! Logs in the object store: appended in chunks, each an object named by the byte offset it
//! starts at, closed by an end record with the log's length and hash. Reading checks that the
//! chunks follow each other byte for byte, end where the record says, and hash to it, so a lost,
//! repeated or reordered chunk is an error, never a silently shorter log.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Objects, ObjectsError};

/// Offsets are written with this many digits, so names sort as numbers do.
const DIGITS: usize = 20;

#[derive(Serialize, Deserialize)]
struct End {
    length: u64,
    sha256: String,
}

/// Appends one log.
pub struct LogWriter {
    objects: Objects,
    name: Vec<String>,
    offset: u64,
    hash: Sha256,
}

impl LogWriter {
    /// A new log under `name` (a name of pipe's own: project, run, job).
    pub fn new(objects: &Objects, name: &[&str]) -> LogWriter {
        LogWriter {
            objects: objects.clone(),
            name: name.iter().map(|p| p.to_string()).collect(),
            offset: 0,
            hash: Sha256::new(),
        }
    }

    fn at<'a>(&'a self, last: &'a str) -> Vec<&'a str> {
        let mut name: Vec<&str> = self.name.iter().map(String::as_str).collect();
        name.push(last);
        name
    }

    /// Appends `bytes` as the chunk at the log's current length.
    pub async fn append(&mut self, bytes: &[u8]) -> Result<(), ObjectsError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let chunk = format!("{:0DIGITS$}", self.offset);
        self.objects
            .bucket
            .put(&self.at(&chunk), bytes.to_vec())
            .await?;
        self.offset += bytes.len() as u64;
        self.hash.update(bytes);
        Ok(())
    }

    /// Closes the log with its length and hash.
    pub async fn finish(self) -> Result<(), ObjectsError> {
        let end = End {
            length: self.offset,
            sha256: crate::reuse::hex(&self.hash.clone().finalize()),
        };
        let json = serde_json::to_vec(&end).expect("an end record serializes");
        self.objects.bucket.put(&self.at("end"), json).await
    }
}

impl Objects {
    /// The whole log under `name`, checked chunk by chunk against its end record.
    pub async fn read_log(&self, name: &[&str]) -> Result<Vec<u8>, ObjectsError> {
        let shown = name.join("/");
        let with = |last: &'static str| {
            let mut n = name.to_vec();
            n.push(last);
            n
        };
        let end = self
            .bucket
            .get(&with("end"))
            .await?
            .ok_or_else(|| ObjectsError::LogOpen { log: shown.clone() })?;
        let end: End = serde_json::from_slice(&end).map_err(|e| ObjectsError::Record {
            name: format!("{shown}/end"),
            why: e.to_string(),
        })?;
        let mut chunks: Vec<(u64, String)> = self
            .bucket
            .list(name)
            .await?
            .into_iter()
            .filter(|(n, _)| n != "end")
            .filter_map(|(n, _)| Some((n.parse().ok()?, n)))
            .collect();
        chunks.sort();
        let mut log = Vec::new();
        for (at, chunk) in chunks {
            let have = log.len() as u64;
            if at > have {
                return Err(ObjectsError::LogGap {
                    log: shown,
                    from: have,
                    to: at,
                });
            }
            if at < have {
                return Err(ObjectsError::LogOverlap {
                    log: shown,
                    at,
                    end: have,
                });
            }
            let mut n = name.to_vec();
            n.push(&chunk);
            // Listed a moment ago: gone since means lost.
            let bytes = self.bucket.get(&n).await?.ok_or(ObjectsError::LogGap {
                log: shown.clone(),
                from: have,
                to: end.length.max(have + 1),
            })?;
            log.extend_from_slice(&bytes);
        }
        if log.len() as u64 != end.length {
            return Err(ObjectsError::LogLength {
                log: shown,
                expected: end.length,
                got: log.len() as u64,
            });
        }
        if super::sha256(&log) != end.sha256 {
            return Err(ObjectsError::LogHash { log: shown });
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;

    async fn written(objects: &Objects, chunks: &[&str]) {
        let mut log = LogWriter::new(objects, &["p", "runs", "1", "build", "log"]);
        for chunk in chunks {
            log.append(chunk.as_bytes()).await.unwrap();
        }
        log.finish().await.unwrap();
    }

    const NAME: &[&str] = &["p", "runs", "1", "build", "log"];

    fn chunk_file(dir: &std::path::Path, at: u64) -> std::path::PathBuf {
        dir.join("p/runs/1/build/log").join(format!("{at:020}"))
    }

    #[tokio::test]
    async fn a_log_reads_back_whole_from_its_chunks() {
        let (_dir, objects) = testing::store();
        written(&objects, &["one\n", "two\n", "", "three\n"]).await;
        assert_eq!(objects.read_log(NAME).await.unwrap(), b"one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn a_lost_chunk_is_an_error_naming_the_missing_bytes() {
        let (dir, objects) = testing::store();
        written(&objects, &["one\n", "two\n", "three\n"]).await;
        std::fs::remove_file(chunk_file(dir.path(), 4)).unwrap();
        let err = objects.read_log(NAME).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "log p/runs/1/build/log has lost bytes 4..8: a chunk is missing"
        );
    }

    #[tokio::test]
    async fn a_lost_last_chunk_a_reordered_one_and_a_log_without_its_end_are_errors() {
        let (dir, objects) = testing::store();
        written(&objects, &["one\n", "two\n", "three\n"]).await;
        std::fs::remove_file(chunk_file(dir.path(), 8)).unwrap();
        let err = objects.read_log(NAME).await.unwrap_err();
        assert!(
            matches!(
                err,
                ObjectsError::LogLength {
                    expected: 14,
                    got: 8,
                    ..
                }
            ),
            "{err}"
        );

        let (dir, objects) = testing::store();
        written(&objects, &["one\n", "two\n", "three\n"]).await;
        // The second chunk written again as if it began a byte earlier.
        std::fs::rename(chunk_file(dir.path(), 4), chunk_file(dir.path(), 3)).unwrap();
        let err = objects.read_log(NAME).await.unwrap_err();
        assert!(
            matches!(err, ObjectsError::LogOverlap { at: 3, end: 4, .. }),
            "{err}"
        );

        let (dir, objects) = testing::store();
        written(&objects, &["one\n", "two\n"]).await;
        std::fs::write(chunk_file(dir.path(), 4), "TWO\n").unwrap();
        let err = objects.read_log(NAME).await.unwrap_err();
        assert!(matches!(err, ObjectsError::LogHash { .. }), "{err}");
        objects
            .bucket
            .delete(&[NAME, &["end"]].concat())
            .await
            .unwrap();
        let err = objects.read_log(NAME).await.unwrap_err();
        assert!(matches!(err, ObjectsError::LogOpen { .. }), "{err}");
    }
}
