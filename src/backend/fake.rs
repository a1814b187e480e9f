//! A scripted backend for scheduler tests: each script line is a step (`sleep 50`, `echo text`,
//! `exit 3`, `hang`, `stubborn`, `error why`, `broken why` for pipe's own failure, `panic why` for a bug in a backend, `keep`
//! to keep an (empty) artifact directory as a passed job would). It records when each job started and ended so tests can check ordering.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Backend, BackendError, JobSpec, LogSink, Outcome, RunShape, Stop};
use crate::event::Stream;

#[derive(Default)]
pub struct FakeBackend {
    /// Makes `prepare` take an hour, like pulling a large image on a slow link.
    pub slow_prepare: bool,
    /// (job, started, ended), in the order jobs ended.
    pub spans: Mutex<Vec<(String, Instant, Instant)>>,
    pub specs: Mutex<Vec<JobSpec>>,
    /// The specs `prepare_job` was given, with when.
    pub prepared: Mutex<Vec<(JobSpec, Instant)>>,
    /// `shutdown` was awaited.
    pub shut_down: AtomicBool,
}

impl Backend for FakeBackend {
    fn prepare<'a>(&'a self, _run: &'a RunShape) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            if self.slow_prepare {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok(())
        }
        .boxed()
    }

    fn identity<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, Result<String, BackendError>> {
        async move { Ok(format!("fake {:?}", spec.image)) }.boxed()
    }

    fn prepare_job<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, ()> {
        self.prepared
            .lock()
            .unwrap()
            .push((spec.clone(), Instant::now()));
        async {}.boxed()
    }

    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        mut stop: watch::Receiver<Stop>,
    ) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        async move {
            self.specs.lock().unwrap().push(spec.clone());
            let started = Instant::now();
            let mut exit_code = 0;
            for line in &spec.script {
                let (step, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                match step {
                    "sleep" | "hang" => {
                        let d = if step == "hang" {
                            Duration::from_secs(3600)
                        } else {
                            Duration::from_millis(arg.parse().unwrap())
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = stop.wait_for(|s| *s != Stop::No) => { exit_code = 143; break; }
                        }
                    }
                    // Ignores SIGTERM, like a script that traps it: only a kill stops it.
                    "stubborn" => {
                        let _ = stop.wait_for(|s| *s == Stop::Kill).await;
                        exit_code = 137;
                        break;
                    }
                    "echo" => log.line(Stream::Stdout, arg.to_string()),
                    "exit" => {
                        exit_code = arg.parse().unwrap();
                        break;
                    }
                    "error" => return Err(BackendError::Job(arg.to_string())),
                    "broken" => return Err(BackendError::Internal(arg.to_string())),
                    "panic" => panic!("{arg}"),
                    "keep" => std::fs::create_dir_all(&spec.artifacts_dest).unwrap(),
                    other => panic!("unknown fake step {other}"),
                }
            }
            self.spans
                .lock()
                .unwrap()
                .push((spec.job.clone(), started, Instant::now()));
            Ok(Outcome {
                exit_code,
                missing_artifacts: vec![],
                findings: None,
            })
        }
        .boxed()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.shut_down.store(true, Ordering::SeqCst);
        async {}.boxed()
    }
}
