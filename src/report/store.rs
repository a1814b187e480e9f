//! Records what happens to each job in the run store, as it happens, so that a run killed at
//! any moment is recorded up to that moment.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use super::Reporter;
use crate::event::{Event, EventKind, JobStatus};
use crate::store::{JobRecord, Phase, RunId, Store};

pub struct StoreSink {
    pub store: Box<dyn Store>,
    pub run: RunId,
    pub phase: Phase,
    /// Per job: its stage, log path and declared artifacts.
    pub jobs: HashMap<String, (String, String, Vec<String>)>,
    /// Where finished jobs' records go instead of the store, when set: a job claimed from a
    /// fleet's queue is recorded only once its claim is known to still hold.
    pub held: Option<HeldRecords>,
}

/// Records of finished jobs, held back from the store (see [`StoreSink::held`]).
pub type HeldRecords = Arc<Mutex<Vec<JobRecord>>>;

impl Reporter for StoreSink {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let result = match &event.kind {
            EventKind::JobStarted { job, attempt } => {
                let log = self.jobs.get(job).map(|j| j.1.clone()).unwrap_or_default();
                self.store.job_started(self.run, job, *attempt, &log)
            }
            EventKind::JobFinished {
                job,
                status,
                exit_code,
                duration,
                attempts,
                allowed,
                message,
                findings,
                reused_from,
            } => {
                let status = if *allowed {
                    "allowed_failure"
                } else {
                    status_name(*status)
                };
                // A reused job never started: its (restored) log is recorded here.
                let started = match reused_from {
                    Some(_) => {
                        let log = self.jobs.get(job).map(|j| j.1.clone()).unwrap_or_default();
                        self.store.job_started(self.run, job, 0, &log)
                    }
                    None => Ok(()),
                };
                let note = reused_from
                    .map(crate::style::reused)
                    .or_else(|| message.clone());
                let mut record = self.record(
                    job,
                    status,
                    *attempts,
                    *exit_code,
                    Some(duration.as_millis() as u64),
                    note,
                );
                record.findings = *findings;
                match &self.held {
                    Some(held) => {
                        held.lock().unwrap_or_else(|p| p.into_inner()).push(record);
                        started
                    }
                    None => started.and_then(|()| self.store.job_finished(self.run, &record)),
                }
            }
            EventKind::ImageBuilt { job, image } | EventKind::ImagePushed { job, image } => {
                self.store.job_built(self.run, job, image)
            }
            EventKind::JobDrift { job, drift } => self.store.job_drift(self.run, job, drift),
            EventKind::JobSkipped { job, reason } => {
                let record = self.record(job, "skipped", 0, None, None, Some(reason.clone()));
                self.store.job_finished(self.run, &record)
            }
            // Recorded as the job's state until it starts: the run's page and the API show why
            // it has not.
            EventKind::JobWaiting { job, reason, .. } => {
                let record = self.record(job, "waiting", 0, None, None, Some(reason.clone()));
                self.store.job_finished(self.run, &record)
            }
            EventKind::JobLeftOut { job, stage, reason } => {
                let mut record = self.record(job, "left_out", 0, None, None, Some(reason.clone()));
                record.stage = stage.clone();
                self.store.job_finished(self.run, &record)
            }
            _ => Ok(()),
        };
        result.map_err(|e| io::Error::other(format!("cannot record the run: {e}")))
    }
}

impl StoreSink {
    fn record(
        &self,
        job: &str,
        status: &str,
        attempts: u32,
        exit_code: Option<i64>,
        duration_ms: Option<u64>,
        note: Option<String>,
    ) -> JobRecord {
        let (stage, log, artifacts) = self.jobs.get(job).cloned().unwrap_or_default();
        JobRecord {
            name: job.to_string(),
            stage,
            phase: self.phase,
            environment: None,
            status: status.to_string(),
            attempts,
            exit_code,
            duration_ms,
            note,
            log,
            artifacts: if status == "passed" {
                artifacts
            } else {
                Vec::new()
            },
            findings: None,
            image: None,
            drift: None,
            epoch: crate::store::UNCLAIMED,
        }
    }
}

fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Passed => "passed",
        JobStatus::Failed => "failed",
        JobStatus::TimedOut => "timed_out",
        JobStatus::Cancelled => "cancelled",
        JobStatus::Errored => "errored",
    }
}
