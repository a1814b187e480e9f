//! Drift on the engine: the container diff of a job's exited container, summarised in its log,
//! sent as an event, and kept in the run's folder for the scan job's report.

use bollard::errors::Error as DockerError;
use bollard::models::{ChangeType, FilesystemChange};

use super::DockerBackend;
use crate::backend::JobSpec;
use crate::backend::LogSink;
use crate::drift::{Change, Drift};
use crate::event::{EventKind, Stream};

impl DockerBackend {
    /// The job's exit code once its drift (`changes`, the engine's diff of its container) is
    /// told: with `drift: fail`, a job that passed but wrote into system paths fails. A diff
    /// the engine cannot give is said, never fatal.
    pub(super) fn drift(
        changes: Result<Option<Vec<FilesystemChange>>, DockerError>,
        spec: &JobSpec,
        log: &LogSink,
        code: i64,
    ) -> i64 {
        let changes = match changes {
            Ok(changes) => changes.unwrap_or_default(),
            Err(e) => {
                log.line(
                    Stream::Stderr,
                    format!("pipe: cannot tell the job's drift: {}", super::short(&e)),
                );
                return code;
            }
        };
        let changes: Vec<(Change, String)> = changes
            .into_iter()
            .map(|c| {
                let kind = match c.kind {
                    ChangeType::_0 => Change::Changed,
                    ChangeType::_1 => Change::Added,
                    ChangeType::_2 => Change::Deleted,
                };
                (kind, c.path)
            })
            .collect();
        let mounts: Vec<String> = spec.binds.iter().map(|b| b.container.clone()).collect();
        let drift = Drift::of(&changes, &mounts);
        if drift.is_empty() {
            return code;
        }
        for line in drift.lines() {
            log.line(Stream::Stderr, line);
        }
        if let Some(file) = &spec.drift.record {
            let record = serde_json::json!({ "job": spec.job, "drift": drift });
            let written = file
                .parent()
                .map_or(Ok(()), crate::workspace::private::dir)
                .and_then(|()| crate::workspace::private::write(file, record.to_string()));
            if let Err(e) = written {
                tracing::warn!("cannot keep the drift of job `{}`: {e}", spec.job);
            }
        }
        let fails = spec.drift.fail && drift.system.count > 0 && code == 0;
        log.event(EventKind::JobDrift {
            job: spec.job.clone(),
            drift,
        });
        if fails {
            log.line(
                Stream::Stderr,
                "pipe: the job wrote into system paths and has `drift: fail`: it fails".into(),
            );
            return 1;
        }
        code
    }
}
