//! Picking where each job of a run runs: scan jobs go to pipe's in-process scanners, every
//! other job to the backend the user chose. The caller builds the router, so the scheduler
//! knows no concrete backend.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::watch;

use super::{Backend, BackendError, JobSpec, LogSink, Outcome, RunShape, Stop};

pub struct ScanRouter {
    scans: Arc<dyn Backend>,
    jobs: Arc<dyn Backend>,
}

impl ScanRouter {
    /// Scan jobs to `scans`, the rest to `jobs`.
    pub fn new(scans: Arc<dyn Backend>, jobs: Arc<dyn Backend>) -> Self {
        ScanRouter { scans, jobs }
    }

    fn pick(&self, spec: &JobSpec) -> &dyn Backend {
        if spec.scan.is_some() {
            self.scans.as_ref()
        } else {
            self.jobs.as_ref()
        }
    }
}

impl Backend for ScanRouter {
    fn prepare<'a>(&'a self, run: &'a RunShape) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            // Each backend hears only of its own jobs: a scan job needs no image pulled even
            // when the pipeline gives every job one.
            let (scans, jobs): (Vec<_>, Vec<_>) = run.jobs.iter().cloned().partition(|j| j.scan);
            let scans = RunShape {
                jobs: scans,
                ..run.clone()
            };
            let jobs = RunShape {
                jobs,
                ..run.clone()
            };
            let (a, b) =
                futures_util::future::join(self.scans.prepare(&scans), self.jobs.prepare(&jobs))
                    .await;
            a.and(b)
        }
        .boxed()
    }

    fn prepare_job<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, ()> {
        self.pick(spec).prepare_job(spec)
    }

    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        stop: watch::Receiver<Stop>,
    ) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        self.pick(spec).run(spec, log, stop)
    }

    fn identity<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, Result<String, BackendError>> {
        self.pick(spec).identity(spec)
    }

    fn all_started(&self) {
        self.scans.all_started();
        self.jobs.all_started();
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        async move {
            futures_util::future::join(self.scans.shutdown(), self.jobs.shutdown()).await;
        }
        .boxed()
    }
}
