//! Reuse across the agents of a fleet: a job's outputs recorded in the object store under its
//! key, so that an agent on another machine restores them (each file checked against its hash)
//! instead of running the job again. The key is the same on every machine that runs the same
//! inputs on the same image: it names no path of the machine's.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{as_ran, Hit, Reuse};
use crate::backend::JobSpec;
use crate::objects::{Objects, ObjectsError, Tree};
use crate::store::{RunId, UNCLAIMED};
use crate::workspace::{self, private};

/// The object store a fleet shares, and the project's name in it (as in the shared run store).
#[derive(Clone)]
pub struct SharedOutputs {
    pub objects: Objects,
    pub project: String,
}

impl SharedOutputs {
    /// Where run `run` keeps the outputs of job `slug` that claim `epoch` of the fleet's queue
    /// published ([`crate::store::UNCLAIMED`] outside the queue): each claim apart, so that an agent that
    /// lost its claim never replaces what the one that took it over published.
    pub fn outputs_name(&self, run: RunId, slug: &str, epoch: i64) -> [String; 5] {
        let p = self.project.clone();
        [
            p,
            "runs".into(),
            run.to_string(),
            slug.into(),
            epoch.to_string(),
        ]
    }

    /// Where the log of job `slug` of run `run` at claim `epoch` is kept.
    pub fn log_name(&self, run: RunId, slug: &str, epoch: i64) -> Vec<String> {
        let mut name = self.outputs_name(run, slug, epoch).to_vec();
        name.push("log".into());
        name
    }

    /// Where the manifest of the artifacts of job `slug` of run `run` at claim `epoch` is kept.
    pub fn artifacts_name(&self, run: RunId, slug: &str, epoch: i64) -> Vec<String> {
        let mut name = self.outputs_name(run, slug, epoch).to_vec();
        name.push("artifacts".into());
        name
    }

    fn key_name(&self, key: &str) -> [String; 3] {
        [self.project.clone(), "reuse".into(), key.into()]
    }
}

/// What the object store keeps under a job's key.
#[derive(Serialize, Deserialize)]
struct Recorded {
    origin: RunId,
    /// The run whose log is the job's (published when that run ends).
    run: RunId,
    slug: String,
    artifacts: Tree,
    /// A scan job's SARIF report, by hash.
    sarif: Option<String>,
    findings: Option<crate::scan::Counts>,
}

fn refs(name: &[String]) -> Vec<&str> {
    name.iter().map(String::as_str).collect()
}

impl Reuse {
    /// Records in the object store that the job with `key` passed in this run.
    pub(super) async fn record_shared(
        &self,
        to: &SharedOutputs,
        key: &str,
        spec: &JobSpec,
        findings: Option<crate::scan::Counts>,
    ) -> Result<(), ObjectsError> {
        let artifacts = to.objects.put_tree(&spec.artifacts_dest).await?;
        let sarif = match &spec.scan {
            Some(scan) => Some(to.objects.put_blob(std::fs::read(&scan.sarif)?).await?),
            None => None,
        };
        let recorded = Recorded {
            origin: self.run.id,
            run: self.run.id,
            slug: spec.slug.clone(),
            artifacts,
            sarif,
            findings,
        };
        let json = serde_json::to_vec(&recorded).expect("a reuse record serializes");
        to.objects.put_record(&refs(&to.key_name(key)), json).await
    }

    /// The outputs of the job with `key` from the object store, laid into this run; `None`
    /// when no agent recorded them, or when the run that did has not published its log yet.
    pub(super) async fn restore_shared(
        &self,
        from: &SharedOutputs,
        key: &str,
        spec: &JobSpec,
    ) -> Result<Option<Hit>, ObjectsError> {
        let name = from.key_name(key);
        let Some(json) = from.objects.get_record(&refs(&name)).await? else {
            return Ok(None);
        };
        let found: Recorded = serde_json::from_slice(&json).map_err(|e| ObjectsError::Record {
            name: name.join("/"),
            why: e.to_string(),
        })?;
        let log = match from
            .objects
            // A run that reuses is never run from the queue: its outputs are unclaimed ones.
            .read_log(&refs(&from.log_name(found.run, &found.slug, UNCLAIMED)))
            .await
        {
            Ok(log) => log,
            Err(ObjectsError::LogOpen { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let sarif = match (&found.sarif, &spec.scan) {
            (Some(hash), Some(_)) => Some(from.objects.get_blob(hash).await?),
            (None, Some(_)) => return Ok(None),
            _ => None,
        };
        workspace::remove(&spec.artifacts_dest)?;
        let scratch = self.run.scratch(&spec.slug).join("reused");
        from.objects
            .get_tree(&found.artifacts, &spec.artifacts_dest, &scratch)
            .await?;
        write_new(&self.run.log(&spec.slug), as_ran(&log))?;
        if let (Some(bytes), Some(scan)) = (sarif, &spec.scan) {
            write_new(&scan.sarif, bytes)?;
        }
        Ok(Some(Hit {
            origin: found.origin,
            findings: found.findings,
        }))
    }
}

fn write_new(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        private::dir(dir)?;
    }
    private::write(path, bytes)
}
