//! The run's network sandboxes: idle containers whose network namespaces jobs join, so that a
//! job's start does not pay for a network of its own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use bollard::models::{ContainerCreateBody, HostConfig};
use tokio::sync::{mpsc, watch};

use super::DockerBackend;
use crate::backend::Teardowns;

/// Network namespaces kept alive for the run's jobs to join. Setting up a container's network
/// is most of what starting it costs (on Docker 20.10 here: 258 ms with a network of its own,
/// 112 ms joining another container's), so each job borrows a namespace held by an idle
/// sandbox container and gives it back when it exits. A sandbox serves one job at a time, so
/// jobs running at once never share ports; jobs that run one after another in the same
/// sandbox see the same network, but nothing left over of each other (their processes end
/// with their containers). Sandboxes are made for the jobs after the first wave, while the
/// first wave runs; a job that finds none to take gets a network of its own, and so does every
/// job of the first wave: waiting for a sandbox just begun costs it more than its own network.
pub(super) struct Sandboxes {
    ready: mpsc::UnboundedSender<Option<String>>,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Option<String>>>,
    /// Sandboxes free or still starting, not claimed by a job.
    available: AtomicUsize,
    pub all: Mutex<Vec<String>>,
    pub creating: Teardowns,
    /// Set once a job has ended: jobs starting from then on are of a later wave.
    pub later_wave: AtomicBool,
    /// Set once every job of the run has started: a sandbox given back is removed then.
    closing: AtomicBool,
    /// Jobs that began running and have not yet taken a sandbox or gone without (by their
    /// scratch folder): the free sandboxes are kept for them when the run closes the pool.
    deciding: Mutex<HashSet<PathBuf>>,
    /// Set once a job's container has started (or a job ended, or the run is shutting down):
    /// sandboxes are started only then, not beside the first wave's starts, which they would
    /// slow (the fan-out bench's first job started 0.6 s after pipe did with them beside it).
    go: watch::Sender<bool>,
    /// Set once a job began running on this backend: until then, a job made ahead waits on
    /// needs that run elsewhere (a scan), which start no container here.
    began: AtomicBool,
}

impl Default for Sandboxes {
    fn default() -> Self {
        let (ready, queue) = mpsc::unbounded_channel();
        Sandboxes {
            ready,
            queue: tokio::sync::Mutex::new(queue),
            available: AtomicUsize::new(0),
            all: Mutex::default(),
            creating: Teardowns::default(),
            later_wave: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            deciding: Mutex::default(),
            go: watch::channel(false).0,
            began: AtomicBool::new(false),
        }
    }
}

impl Sandboxes {
    /// A free sandbox, waiting for one that is still starting rather than setting up a network
    /// of the job's own (which costs as much); `None` when there is none to wait for.
    pub async fn take(&self) -> Option<String> {
        let claimed = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !claimed {
            return None;
        }
        self.queue.lock().await.recv().await.flatten()
    }

    /// A job began running: it may still take a sandbox.
    pub fn deciding(&self, scratch: &Path) {
        self.began.store(true, Ordering::Release);
        self.deciding
            .lock()
            .expect("not poisoned")
            .insert(scratch.to_path_buf());
    }

    /// Lets the planned sandboxes start.
    pub fn go(&self) {
        self.go.send_replace(true);
    }

    /// A job is made ahead: it is about to wait for a sandbox, which would never come if no
    /// job here is on its way to start a container (its needs run on another backend).
    pub fn go_unless_begun(&self) {
        if !self.began.load(Ordering::Acquire) {
            self.go();
        }
    }

    fn give_back(&self, id: String) {
        self.available.fetch_add(1, Ordering::AcqRel);
        let _ = self.ready.send(Some(id));
    }

    /// Takes the free sandboxes out of the pool, for good. Each is claimed as `take` claims
    /// one, so a job already waiting for a sandbox still gets the one it counted on; one
    /// still starting stays (it goes at shutdown).
    fn drain(&self) -> Vec<String> {
        let mut free = Vec::new();
        let Ok(mut queue) = self.queue.try_lock() else {
            return free;
        };
        while self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            match queue.try_recv() {
                Ok(Some(id)) => free.push(id),
                Ok(None) => {}
                Err(_) => {
                    self.available.fetch_add(1, Ordering::AcqRel);
                    break;
                }
            }
        }
        free
    }
}

impl DockerBackend {
    /// Starts the sandboxes `prepare` planned, the first time a job runs or is prepared.
    /// Under the plan's lock until all are counted as available: a job prepared while the
    /// first job starts them would otherwise find none to take, and not be prepared.
    pub(super) fn start_planned_sandboxes(&self) {
        let mut planned = self.planned_sandboxes.lock().expect("not poisoned");
        if let Some((image, count, run_id)) = planned.take() {
            self.start_sandboxes(&image, count, &run_id);
        }
    }

    /// Starts `count` sandboxes on `image` in the background; jobs use them as they come up.
    fn start_sandboxes(&self, image: &str, count: usize, run_id: &str) {
        for _ in 0..count {
            let (docker, sandboxes, image) = (
                self.docker.clone(),
                self.sandboxes.clone(),
                image.to_string(),
            );
            let labels = self.labels(run_id, "(network sandbox)");
            let network = self.network.lock().expect("not poisoned").clone();
            self.sandboxes.available.fetch_add(1, Ordering::AcqRel);
            self.sandboxes.creating.spawn(async move {
                let mut go = sandboxes.go.subscribe();
                let _ = go.wait_for(|go| *go).await;
                if sandboxes.closing.load(Ordering::Acquire) {
                    let _ = sandboxes.ready.send(None);
                    return;
                }
                let body = ContainerCreateBody {
                    image: Some(image),
                    // Waits on an open stdin that never gets data: needs nothing but `sh`, which
                    // every job image has.
                    cmd: Some(vec!["sh".into(), "-c".into(), "read _".into()]),
                    open_stdin: Some(true),
                    labels: Some(labels),
                    host_config: Some(HostConfig {
                        init: Some(true),
                        network_mode: Some(network),
                        log_config: Some(super::no_engine_log()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                // A job waiting for this sandbox gets `None` if it cannot be had, and goes on
                // with a network of its own.
                let Ok(created) = docker.create_container(None, body).await else {
                    let _ = sandboxes.ready.send(None);
                    return;
                };
                sandboxes
                    .all
                    .lock()
                    .expect("not poisoned")
                    .push(created.id.clone());
                let started = docker.start_container(&created.id, None).await.is_ok();
                let _ = sandboxes.ready.send(started.then_some(created.id));
            });
        }
    }

    /// Gives a sandbox a job has done with back to the pool, or removes it when no job is
    /// left to start that could take it.
    pub(super) fn give_back_sandbox(&self, id: String) {
        if !self.sandboxes.closing.load(Ordering::Acquire) {
            self.sandboxes.give_back(id);
            return;
        }
        self.remove_sandbox(id);
    }

    /// Every job of the run has started: the free sandboxes go now, while the last jobs run,
    /// rather than after them, and so does each one given back from now on. When a job that
    /// began has not yet chosen, they go once it has: it may take one.
    pub(super) fn close_sandboxes(&self) {
        self.sandboxes.closing.store(true, Ordering::Release);
        if self
            .sandboxes
            .deciding
            .lock()
            .expect("not poisoned")
            .is_empty()
        {
            for id in self.sandboxes.drain() {
                self.remove_sandbox(id);
            }
        }
    }

    /// The job with scratch folder `scratch` has its sandbox, or runs without one.
    pub(super) fn decided(&self, scratch: &Path) {
        let mut deciding = self.sandboxes.deciding.lock().expect("not poisoned");
        if deciding.remove(scratch) && deciding.is_empty() {
            drop(deciding);
            if self.sandboxes.closing.load(Ordering::Acquire) {
                self.close_sandboxes();
            }
        }
    }

    /// The run is ending: sandboxes not started yet never will be.
    pub(super) fn stop_sandboxes(&self) {
        self.sandboxes.closing.store(true, Ordering::Release);
        self.sandboxes.go();
    }

    fn remove_sandbox(&self, id: String) {
        self.sandboxes
            .all
            .lock()
            .expect("not poisoned")
            .retain(|s| *s != id);
        self.tear_down(Some(id), None, PathBuf::new());
    }
}
