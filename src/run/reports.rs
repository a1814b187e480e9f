//! A job's `reports:`, read when it passes. The backend keeps them with the job's artifacts,
//! copied out of its workspace without following links (and so restored when the job is
//! reused); here each is checked as SARIF 2.1.0, their findings become the job's, and their
//! runs are kept as the job's SARIF report, where a scan job keeps its own. A report that is
//! missing or unreadable fails the job, naming the file; a job that failed is not read.

use std::path::PathBuf;

use crate::backend::LogSink;
use crate::event::Stream;
use crate::pipeline::{ArtifactPath, Job};
use crate::scan::reports::{self, JobReports};
use crate::scan::Counts;
use crate::workspace::{private, RunDir};

pub(super) struct Reports {
    paths: Vec<ArtifactPath>,
    /// The job's kept artifacts, where the backend copied the reports.
    kept: PathBuf,
    sarif: PathBuf,
}

/// What reading a passed job's reports came to.
pub(super) enum Judged {
    Counted(Counts),
    /// The job fails: why, naming the report.
    Refused(String),
}

impl Reports {
    pub(super) fn of(job: &Job, run: &RunDir, slug: &str) -> Option<Reports> {
        (!job.reports.is_empty()).then(|| Reports {
            paths: job.reports.clone(),
            kept: run.artifacts(slug),
            sarif: run.sarif(slug),
        })
    }

    /// Whether `path`, as the backend names an artifact it did not find, is a report: told
    /// once, as the job's failure, rather than also as a missing artifact.
    pub(super) fn declares(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p.as_str() == path)
    }

    /// Reads the reports; `Err` when pipe could not keep them (a full disk).
    pub(super) async fn judge(&self, log: &LogSink) -> Result<Judged, String> {
        let (kept, paths) = (self.kept.clone(), self.paths.clone());
        let read = tokio::task::spawn_blocking(move || reports::read(&kept, &paths))
            .await
            .map_err(|e| e.to_string())?;
        let JobReports { sarif, counts } = match read {
            Ok(read) => read,
            Err(e) => {
                let why = e.to_string();
                log.line(Stream::Stderr, format!("pipe: {why}"));
                return Ok(Judged::Refused(why));
            }
        };
        let bytes = log
            .masked(&serde_json::to_vec_pretty(&sarif).unwrap_or_default())
            .into_owned();
        let path = self.sarif.clone();
        tokio::task::spawn_blocking(move || {
            path.parent().map_or(Ok(()), private::dir)?;
            private::write(&path, bytes)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot keep the job's SARIF reports: {e}"))?;
        log.line(
            Stream::Stderr,
            format!(
                "pipe: SARIF reports of {}: {}",
                reports::tools(&sarif).join(", "),
                crate::scan::report::summary(&counts)
            ),
        );
        Ok(Judged::Counted(counts))
    }
}
