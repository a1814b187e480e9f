//! Jobs in Docker containers, through the engine's API (bollard). The only file that imports
//! bollard.
//!
//! One container per job attempt, started without a TTY, with the workspace at `/workspace`.
//! The workspace is an overlay volume: the run's source snapshot and the needed artifacts as
//! read-only lower layers and a private upper layer, so no job copies the tree and no job sees
//! another's writes. Where the engine cannot mount overlays (rootless engines, a daemon in a VM)
//! the layers are copied into the job's scratch directory and bind-mounted instead.
//! Every container and volume carries labels naming the run, so `pipe clean` finds leftovers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, MountVolumeOptions,
    MountVolumeOptionsDriverConfig, NetworkCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateImageOptions, DownloadFromContainerOptions, KillContainerOptions,
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

mod services;

use super::{
    remove_dir, shell_script, Backend, BackendError, JobSpec, LogSink, Outcome, RunShape, Stop,
    Teardowns,
};
use crate::event::Stream;
use crate::owner::Owner;
use crate::pipeline::ArtifactPath;
use crate::workspace;

mod ahead;
mod build;
mod drift;
mod sandboxes;

use sandboxes::Sandboxes;

/// Where the job sees its workspace.
pub const WORKSPACE: &str = "/workspace";
/// Label on every Docker object pipe creates.
pub const LABEL_MANAGED: &str = "dev.pipe.managed";
pub const LABEL_RUN: &str = "dev.pipe.run";
pub const LABEL_JOB: &str = "dev.pipe.job";
/// The pid of the pipe process that owns the object, to find a run's objects by hand.
pub const LABEL_PID: &str = "dev.pipe.pid";
/// The owner as `PID@START` (see `owner`): `pipe clean` removes objects whose owner is gone.
pub const LABEL_OWNER: &str = "dev.pipe.owner";
/// The network every job and sandbox is on. Its bridge drops traffic between its containers
/// (inter-container communication off), so no job can reach another, of its run or any other,
/// while each still reaches the outside world. One network for all runs: creating and removing
/// one per run would cost about 0.4 s a run here, and the engine's address pools hold only
/// about 30 networks.
pub const NETWORK: &str = "pipe-jobs";
const ICC: &str = "com.docker.network.bridge.enable_icc";
/// The project's `owner::project_key`: run numbers are per project.
pub const LABEL_PROJECT: &str = "dev.pipe.project";

/// When to pull a job's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Never,
    Missing,
    Always,
}

pub struct DockerBackend {
    docker: Docker,
    pull: Pull,
    grace: Duration,
    /// Cleared the first time the engine cannot mount an overlay; later jobs copy instead.
    overlay: AtomicBool,
    /// Images that could not be had, with why: jobs on them error without trying.
    unavailable: Mutex<HashMap<String, String>>,
    teardowns: Teardowns,
    sandboxes: Arc<Sandboxes>,
    /// The id of the jobs' network, once `prepare` has found it.
    network: Mutex<String>,
    /// The `owner::project_key` that objects are labelled with.
    project: Option<String>,
    /// The sandboxes `prepare` planned (image, count, run id), started when the first job
    /// really runs: a run whose jobs are all reused never pays for them.
    planned_sandboxes: Mutex<Option<(String, usize, String)>>,
    /// Containers made ahead for attempts (by their scratch folder), not started yet.
    prepared: Mutex<HashMap<PathBuf, ahead::Prepared>>,
}

/// Connects to the engine named by DOCKER_HOST (or the default socket) and agrees on an API
/// version, so that older engines (20.10 speaks 1.41) are spoken to in their own version.
pub async fn connect() -> Result<Docker, BackendError> {
    let unavailable = |e: DockerError| {
        BackendError::Unavailable(format!(
            "no Docker engine is answering ({e}): start Docker, or run with `--backend local`"
        ))
    };
    let docker = Docker::connect_with_defaults().map_err(unavailable)?;
    // Negotiating asks the engine for its version: it fails when no engine answers.
    docker.negotiate_version().await.map_err(unavailable)
}

impl DockerBackend {
    pub fn new(docker: Docker, pull: Pull, grace: Duration) -> Self {
        DockerBackend {
            docker,
            pull,
            grace,
            overlay: AtomicBool::new(true),
            unavailable: Mutex::new(HashMap::new()),
            teardowns: Teardowns::default(),
            sandboxes: Arc::default(),
            network: Mutex::default(),
            project: None,
            planned_sandboxes: Mutex::default(),
            prepared: Mutex::default(),
        }
    }

    /// Off: workspaces are copied, for engines whose overlay mounts misbehave without failing
    /// outright.
    pub fn with_overlay(self, on: bool) -> Self {
        self.overlay.store(on, Ordering::Relaxed);
        self
    }

    /// Labels what it makes as the project's (its `owner::project_key`).
    pub fn in_project(self, project: String) -> Self {
        DockerBackend {
            project: Some(project),
            ..self
        }
    }

    async fn ensure_image(&self, image: &str) -> Result<(), String> {
        let present = self.docker.inspect_image(image).await.is_ok();
        match (self.pull, present) {
            (Pull::Never, false) => {
                return Err(format!(
                    "image `{image}` is not on this engine and `--pull never` forbids pulling it"
                ))
            }
            (Pull::Missing, true) | (Pull::Never, true) => return Ok(()),
            _ => {}
        }
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                return Err(format!("cannot pull image `{image}`: {}", short(&e)));
            }
        }
        Ok(())
    }

    /// Whether the engine still answers.
    async fn answers(&self) -> bool {
        let ping = tokio::time::timeout(Duration::from_secs(5), self.docker.ping());
        matches!(ping.await, Ok(Ok(_)))
    }

    /// Finds or makes the jobs' network and checks that it isolates its containers; its id.
    /// Engines before API 1.44 let two pipes starting at once both create one of the same name:
    /// then the oldest is the network, which every pipe picks alike (whoever saw one before saw
    /// that one), and a younger one made here is removed.
    async fn ensure_network(&self) -> Result<String, BackendError> {
        let refused = |e: DockerError| {
            BackendError::Unavailable(format!(
                "the Docker engine cannot make pipe's job network `{NETWORK}`: {}",
                short(&e)
            ))
        };
        let mut made: Option<String> = None;
        for _ in 0..3 {
            let filters = HashMap::from([("name".to_string(), vec![NETWORK.to_string()])]);
            let mut found: Vec<_> = self
                .docker
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filters),
                }))
                .await
                .map_err(refused)?
                .into_iter()
                .filter(|n| n.name.as_deref() == Some(NETWORK))
                .filter_map(|n| {
                    let created =
                        chrono::DateTime::parse_from_rfc3339(n.created.as_deref()?).ok()?;
                    Some((created, n.id?, n.options))
                })
                .collect();
            found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            if let Some((_, id, options)) = found.first() {
                if let Some(mine) = made.as_ref().filter(|m| *m != id) {
                    let _ = self.docker.remove_network(mine).await;
                }
                let isolated = options
                    .as_ref()
                    .and_then(|o| o.get(ICC))
                    .is_some_and(|v| v == "false");
                if !isolated {
                    return Err(BackendError::Unavailable(format!(
                        "the Docker network `{NETWORK}` lets its containers reach each other, so \
                         jobs would not be isolated: remove it (`docker network rm {NETWORK}`) \
                         and pipe makes it anew"
                    )));
                }
                return Ok(id.clone());
            }
            let request = NetworkCreateRequest {
                name: NETWORK.into(),
                driver: Some("bridge".into()),
                options: Some(HashMap::from([(ICC.to_string(), "false".to_string())])),
                labels: Some(HashMap::from([(
                    LABEL_MANAGED.to_string(),
                    "true".to_string(),
                )])),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(created) => made = Some(created.id),
                // A newer engine refuses a second network of the name: look again.
                Err(DockerError::DockerResponseServerError {
                    status_code: 409, ..
                }) => {}
                Err(e) => return Err(refused(e)),
            }
        }
        Err(BackendError::Unavailable(format!(
            "the Docker network `{NETWORK}` could not be made or found"
        )))
    }

    fn labels(&self, run_id: &str, job: &str) -> HashMap<String, String> {
        let owner = Owner::me();
        let mut labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_RUN.to_string(), run_id.to_string()),
            (LABEL_JOB.to_string(), job.to_string()),
            (LABEL_PID.to_string(), owner.pid.to_string()),
            (LABEL_OWNER.to_string(), owner.to_string()),
        ]);
        if let Some(project) = &self.project {
            labels.insert(LABEL_PROJECT.to_string(), project.clone());
        }
        labels
    }

    /// The workspace mount as an overlay volume, or `None` when overlays are off or the paths
    /// cannot be written in mount options. The engine creates the volume together with the
    /// container, which saves a round trip on every job's critical path.
    async fn overlay_mount(&self, spec: &JobSpec) -> Result<Option<(String, Mount)>, BackendError> {
        if !self.overlay.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (upper, work) = (spec.scratch.join("upper"), spec.scratch.join("work"));
        for dir in [&upper, &work] {
            std::fs::create_dir_all(dir).map_err(|e| {
                BackendError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let Some(mut options) = overlay_options(&spec.layers, &upper, &work)? else {
            return Ok(None);
        };
        if options.len() > MAX_MOUNT_OPTIONS || spec.layers.len() > MAX_LOWER_LAYERS {
            // More layers than one mount takes: the artifacts are laid into one layer above the
            // snapshot (the large one, which stays as it is).
            let merged = spec.scratch.join("merged");
            let (artifacts, dest) = (spec.layers[1..].to_vec(), merged.clone());
            tokio::task::spawn_blocking(move || workspace::lay_layers(&artifacts, &dest))
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?
                .map_err(io_error("cannot merge the artifacts of the needed jobs"))?;
            let layers = [spec.layers[0].clone(), merged];
            let Some(merged) = overlay_options(&layers, &upper, &work)? else {
                return Ok(None);
            };
            options = merged;
        }
        let name = format!(
            "pipe-{}-{}-{}",
            std::process::id(),
            spec.run_id,
            spec.scratch
                .file_name()
                .and_then(|n| n.to_str())
                .map(|a| format!("{}-{a}", spec.slug))
                .unwrap_or_else(|| spec.slug.clone())
        );
        let mount = Mount {
            target: Some(WORKSPACE.into()),
            source: Some(name.clone()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(self.labels(&spec.run_id, &spec.job)),
                driver_config: Some(MountVolumeOptionsDriverConfig {
                    name: Some("local".into()),
                    options: Some(HashMap::from([
                        ("type".to_string(), "overlay".to_string()),
                        ("device".to_string(), "overlay".to_string()),
                        ("o".to_string(), options),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Some((name, mount)))
    }

    /// The fallback workspace: the layers copied into the job's scratch directory.
    async fn copied_workspace(&self, spec: &JobSpec) -> Result<PathBuf, BackendError> {
        let dir = spec.scratch.join("workspace");
        let layers = spec.layers.clone();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || workspace::lay_layers(&layers, &target))
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(|e| BackendError::Internal(format!("cannot prepare the workspace: {e}")))?;
        Ok(dir)
    }

    async fn create(
        &self,
        spec: &JobSpec,
        mount: Mount,
        sandbox: Option<&str>,
        network: Option<&str>,
    ) -> Result<String, BackendError> {
        // Secrets come on stdin, which the shell reads first: the container's recorded
        // configuration (`docker inspect`) never holds them, unlike its Env. A job with
        // services reads its stdin too, which pipe closes once they are ready: its container
        // starts while they come up, and its script right when they are.
        let secrets = !spec.secrets.is_empty() || !spec.services.list.is_empty();
        let script = if secrets {
            format!("{}\n{}", super::READ_SECRETS, shell_script(&spec.script))
        } else {
            shell_script(&spec.script)
        };
        let body = ContainerCreateBody {
            image: spec.image.clone(),
            cmd: Some(vec!["sh".into(), "-ec".into(), script]),
            env: Some(
                spec.env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain([format!("PIPE_WORKSPACE={WORKSPACE}")])
                    .collect(),
            ),
            working_dir: Some(WORKSPACE.into()),
            labels: Some(self.labels(&spec.run_id, &spec.job)),
            tty: Some(false),
            open_stdin: Some(secrets),
            // The script's stdin ends once the secrets are read, as it is empty otherwise.
            stdin_once: Some(secrets),
            attach_stdin: Some(secrets),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(
                    std::iter::once(mount)
                        .chain(spec.binds.iter().map(bind_mount))
                        .collect(),
                ),
                // An init as PID 1 forwards SIGTERM to the script: a shell as PID 1 ignores it,
                // and every graceful stop would wait out the grace period.
                init: Some(true),
                // Only ever true when the user passed --allow-privileged.
                privileged: Some(spec.privileged),
                log_config: Some(no_engine_log()),
                network_mode: Some(match (sandbox, network) {
                    // No interface but loopback, which also spares setting a network up.
                    _ if !spec.network => "none".into(),
                    (_, Some(network)) => network.into(),
                    (Some(id), None) => format!("container:{id}"),
                    (None, None) => self.network.lock().expect("not poisoned").clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(None, body)
            .await
            .map_err(job_error("cannot create the container"))?;
        Ok(created.id)
    }

    async fn remove_container(docker: &Docker, id: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let _ = docker.remove_container(id, Some(options)).await;
    }

    async fn remove_volume(docker: &Docker, name: &str) {
        let _ = docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await;
    }

    /// Removes an attempt's container, then its volume (which the container held), then its
    /// scratch space (the volume's upper layer), in the background.
    fn tear_down(&self, container: Option<String>, volume: Option<String>, scratch: PathBuf) {
        let docker = self.docker.clone();
        self.teardowns.spawn(async move {
            if let Some(id) = container {
                Self::remove_container(&docker, &id).await;
            }
            if let Some(name) = volume {
                Self::remove_volume(&docker, &name).await;
            }
            if !scratch.as_os_str().is_empty() {
                remove_dir(scratch).await;
            }
        });
    }

    /// Runs the job with its services, and removes them after it.
    async fn run_job(
        &self,
        spec: &JobSpec,
        log: &LogSink,
        stop: watch::Receiver<Stop>,
    ) -> Result<Outcome, BackendError> {
        // A build, a push or services come before any container of the job starts, and may
        // take long: the sandboxes need not wait for them.
        if spec.build.is_some() || spec.push.is_some() || !spec.services.list.is_empty() {
            self.sandboxes.go();
        }
        if let Some(build) = &spec.build {
            let result = match build {
                Ok(build) => self.build(spec, build, log, stop).await,
                Err(why) => Err(BackendError::Job(why.clone())),
            };
            self.tear_down(None, None, spec.scratch.clone());
            return result;
        }
        if let Some(push) = &spec.push {
            return match push {
                Ok(push) => self.push(spec, push, log, stop).await,
                Err(why) => Err(BackendError::Job(why.clone())),
            };
        }
        let sidecars = match self.start_services(spec, log).await {
            Ok(sidecars) => sidecars,
            Err(e) => {
                self.tear_down(None, None, spec.scratch.clone());
                return Err(e);
            }
        };
        let joining = sidecars.as_ref().map(|s| services::Joining {
            network: &s.network,
            ready: self.services_ready(spec, log, s, stop.clone()),
        });
        let result = self.run_job_on(spec, log, stop, joining).await;
        self.stop_services(sidecars);
        result
    }

    /// Runs the job's container, on its services' network when it has some.
    async fn run_job_on(
        &self,
        spec: &JobSpec,
        log: &LogSink,
        stop: watch::Receiver<Stop>,
        joining: Option<services::Joining<'_>>,
    ) -> Result<Outcome, BackendError> {
        if spec.image.is_none() {
            return Err(BackendError::Job(format!(
                "job `{}` has no image: set `image:` on the job or at the top of the pipeline",
                spec.job
            )));
        }
        if let Some(why) = spec.image.as_ref().and_then(|i| {
            self.unavailable
                .lock()
                .expect("not poisoned")
                .get(i)
                .cloned()
        }) {
            return Err(BackendError::Job(why));
        }
        // Overlay first; if the engine cannot mount it, fall back to a copy for good.
        match self.overlay_mount(spec).await {
            Ok(Some((volume, mount))) => {
                let prepared = self.take_prepared(spec).await;
                let (container, result) = self
                    .run_container(spec, mount, log, stop.clone(), joining.clone(), prepared)
                    .await;
                match result {
                    Err(Attempt::NotStarted(e)) if is_mount_error(&e) => {
                        self.overlay.store(false, Ordering::Relaxed);
                        tracing::info!(
                            "overlay workspaces unavailable ({e}); copying workspaces instead"
                        );
                        // Synchronously: the copy below reuses the scratch directory.
                        if let Some(id) = container {
                            Self::remove_container(&self.docker, &id).await;
                        }
                        Self::remove_volume(&self.docker, &volume).await;
                        remove_dir(spec.scratch.clone()).await;
                    }
                    other => {
                        self.tear_down(container, Some(volume), spec.scratch.clone());
                        return other.map_err(Attempt::into_error);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.tear_down(None, None, spec.scratch.clone());
                return Err(e);
            }
        }
        match self
            .copied_workspace(spec)
            .await
            .and_then(|dir| absolute(&dir))
        {
            Ok(dir) => {
                let mount = Mount {
                    target: Some(WORKSPACE.into()),
                    source: Some(dir),
                    typ: Some(MountType::BIND),
                    ..Default::default()
                };
                let (container, result) = self
                    .run_container(spec, mount, log, stop, joining, None)
                    .await;
                self.tear_down(container, None, spec.scratch.clone());
                result.map_err(Attempt::into_error)
            }
            Err(e) => {
                self.tear_down(None, None, spec.scratch.clone());
                Err(e)
            }
        }
    }

    /// Creates (unless it was prepared) and runs one container; returns its id (if created) for
    /// the teardown.
    async fn run_container(
        &self,
        spec: &JobSpec,
        mount: Mount,
        log: &LogSink,
        stop: watch::Receiver<Stop>,
        joining: Option<services::Joining<'_>>,
        prepared: Option<ahead::Prepared>,
    ) -> (Option<String>, Result<Outcome, Attempt>) {
        let network = joining.as_ref().map(|j| j.network);
        let (id, sandbox) = match prepared {
            Some(prepared) => {
                self.decided(&spec.scratch);
                (prepared.id, prepared.sandbox)
            }
            None => {
                // A job without a network has no use for a sandbox's, nor has one on its
                // services' network: leave it to a job that has.
                let later_wave = self.sandboxes.later_wave.load(Ordering::Acquire);
                let sandbox = match (spec.network && later_wave, network) {
                    (true, None) => self.sandboxes.take().await,
                    _ => None,
                };
                self.decided(&spec.scratch);
                match self
                    .create(spec, mount.clone(), sandbox.as_deref(), network)
                    .await
                {
                    Ok(id) => (id, sandbox),
                    Err(e) => {
                        if let Some(sandbox) = sandbox {
                            self.give_back_sandbox(sandbox);
                        }
                        return (None, Err(Attempt::Failed(e)));
                    }
                }
            }
        };
        let ready = joining.map(|j| j.ready);
        let result = self
            .attach_and_wait(&id, spec, log, stop.clone(), ready.clone())
            .await;
        match (result, sandbox) {
            // The sandbox is gone (stopped behind pipe's back): run with a network of its own.
            (Err(Attempt::NotStarted(_)), Some(_)) => {
                Self::remove_container(&self.docker, &id).await;
                match self.create(spec, mount, None, network).await {
                    Ok(id) => {
                        let result = self.attach_and_wait(&id, spec, log, stop, ready).await;
                        (Some(id), result)
                    }
                    Err(e) => (None, Err(Attempt::Failed(e))),
                }
            }
            (result, sandbox) => {
                // The job's container has exited, so its network namespace is free again.
                if let Some(sandbox) = sandbox {
                    self.give_back_sandbox(sandbox);
                }
                (Some(id), result)
            }
        }
    }

    async fn attach_and_wait(
        &self,
        id: &str,
        spec: &JobSpec,
        log: &LogSink,
        mut stop: watch::Receiver<Stop>,
        ready: Option<services::Readiness<'_>>,
    ) -> Result<Outcome, Attempt> {
        // Attach before starting so that no early output is lost.
        let secrets = !spec.secrets.is_empty() || ready.is_some();
        let attach = AttachContainerOptions {
            stream: true,
            stdin: secrets,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let attached = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(|e| Attempt::Failed(job_error("cannot attach")(e)))?;
        let (mut output, mut input) = (attached.output, attached.input);
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| Attempt::NotStarted(short(&e)))?;
        self.sandboxes.go();
        if let Some(ready) = ready {
            match ready.await {
                Ok(()) => {}
                // Stopped before its script ran, as a killed container would be.
                Err(services::NotReady::Stopped) => {
                    return Ok(Outcome {
                        exit_code: 137,
                        missing_artifacts: Vec::new(),
                        findings: None,
                    })
                }
                Err(services::NotReady::Failed(why)) => {
                    return Err(Attempt::Failed(BackendError::Job(why)))
                }
            }
        }
        if secrets {
            // Closing our side ends the script's stdin (`stdin_once`) after the exports.
            let exports = super::shell_exports(&spec.secrets);
            let sent = match input.write_all(exports.as_bytes()).await {
                Ok(()) => input.shutdown().await,
                Err(e) => Err(e),
            };
            sent.map_err(|e| {
                Attempt::Failed(BackendError::Job(format!(
                    "cannot hand the job its secrets: {e}"
                )))
            })?;
        }
        drop(input);

        let (mut out, mut err) = (log.output(Stream::Stdout), log.output(Stream::Stderr));
        let mut stopping: Option<tokio::task::JoinHandle<()>> = None;
        let mut stop_open = true;
        // The output ends when the job's process has exited, unless the connection failed.
        let mut exited = false;
        loop {
            tokio::select! {
                chunk = async { log.room().await; output.next().await } => match chunk {
                    Some(Ok(bollard::container::LogOutput::StdOut { message })) => out.push(&message),
                    Some(Ok(bollard::container::LogOutput::StdErr { message })) => err.push(&message),
                    Some(Ok(_)) => {}
                    None => { exited = true; break }
                    Some(Err(_)) => break,
                },
                changed = stop.changed(), if stop_open => {
                    let level = if changed.is_err() { stop_open = false; Stop::Kill } else { *stop.borrow_and_update() };
                    // Stopping is done on the side: the output keeps flowing until the container is gone.
                    let (docker, id) = (self.docker.clone(), id.to_string());
                    match level {
                        Stop::No => {}
                        Stop::Graceful => {
                            let t = self.grace.as_secs().max(1) as i32;
                            stopping.get_or_insert_with(|| tokio::spawn(async move {
                                let _ = docker.stop_container(&id, Some(StopContainerOptions { t: Some(t), signal: None })).await;
                            }));
                        }
                        Stop::Kill => {
                            let _ = docker.kill_container(&id, Some(KillContainerOptions { signal: "SIGKILL".into() })).await;
                        }
                    }
                }
            }
        }
        out.finish();
        err.finish();
        // Once the process has exited nothing more changes in the container: its diff (the
        // drift) is asked for beside the wait, which saves a round trip to the engine on every
        // job's path.
        let mut wait = self.docker.wait_container(id, None);
        let waited = wait.next();
        let (waited, changes) = if exited {
            tokio::join!(waited, self.docker.container_changes(id))
        } else {
            let waited = waited.await;
            (waited, self.docker.container_changes(id).await)
        };
        let exit_code = match waited {
            Some(Ok(response)) => response.status_code,
            // bollard reports a non-zero exit as an error carrying the code: that is a result.
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => {
                return Err(Attempt::Failed(job_error(
                    "waiting for the container failed",
                )(e)))
            }
            None => {
                return Err(Attempt::Failed(BackendError::Job(
                    "the engine did not report the exit code".into(),
                )))
            }
        };
        if let Some(handle) = stopping {
            let _ = handle.await;
        }
        let exit_code = Self::drift(changes, spec, log, exit_code);
        let missing_artifacts = if exit_code == 0 {
            self.download(id, spec, &spec.artifacts, &spec.artifacts_dest)
                .await
                .map_err(Attempt::Failed)?
        } else {
            Vec::new()
        };
        if let (0, Some(cache)) = (exit_code, &spec.cache) {
            self.download(id, spec, &cache.paths, &cache.dest)
                .await
                .map_err(Attempt::Failed)?;
        }
        Ok(Outcome {
            exit_code,
            missing_artifacts,
            findings: None,
        })
    }

    /// Copies workspace paths (the declared artifacts, or the cached paths) out of the stopped
    /// container (its volumes are still there) into `into`. Returns the paths not found.
    async fn download(
        &self,
        id: &str,
        spec: &JobSpec,
        paths: &[ArtifactPath],
        into: &Path,
    ) -> Result<Vec<String>, BackendError> {
        let mut missing = Vec::new();
        for artifact in paths {
            let base = artifact.base();
            let options = DownloadFromContainerOptions {
                path: Path::new(WORKSPACE).join(base).display().to_string(),
            };
            let mut stream = self.docker.download_from_container(id, Some(options));
            let tar_path = spec.scratch.join("artifact.tar");
            let mut file = tokio::fs::File::create(&tar_path)
                .await
                .map_err(io_error("cannot write the artifact"))?;
            let mut found = true;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => file
                        .write_all(&bytes)
                        .await
                        .map_err(io_error("cannot write the artifact"))?,
                    Err(DockerError::DockerResponseServerError {
                        status_code: 404, ..
                    }) => {
                        found = false;
                        break;
                    }
                    Err(e) => return Err(job_error("cannot copy the artifact out")(e)),
                }
            }
            file.flush()
                .await
                .map_err(io_error("cannot write the artifact"))?;
            drop(file);
            if !found {
                missing.push(artifact.to_string());
                continue;
            }
            // The archive's root is the last component of what was fetched (`workspace` for the
            // whole of it). A plain path is unpacked beside its parent under the artifacts; a
            // glob's base is unpacked into a staging copy of the workspace, and what the glob
            // selects is taken from there.
            let staging = spec.scratch.join("artifact-staging");
            let (unpack_into, glob_root) = match (artifact.is_glob(), base.parent()) {
                (false, parent) => (into.join(parent.unwrap_or(Path::new(""))), None),
                (true, Some(parent)) => (staging.join(parent), Some(staging.clone())),
                (true, None) => (staging.clone(), Some(staging.join("workspace"))),
            };
            let (selected, dest) = (artifact.clone(), into.to_path_buf());
            let matched = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
                std::fs::create_dir_all(&unpack_into)?;
                let mut archive = tar::Archive::new(std::fs::File::open(&tar_path)?);
                archive.set_preserve_permissions(true);
                archive.unpack(&unpack_into)?;
                std::fs::remove_file(&tar_path)?;
                let Some(root) = glob_root else {
                    return Ok(true);
                };
                let missing = workspace::collect_artifacts(&root, &[selected], &dest)?;
                workspace::remove(&staging)?;
                Ok(missing.is_empty())
            })
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(io_error("cannot unpack the artifact"))?;
            if !matched {
                missing.push(artifact.to_string());
            }
        }
        Ok(missing)
    }

    /// Removes the containers of run `run` of the project `project` (its `owner::project_key`)
    /// whose pipe process is gone, and so stops their jobs, before another process takes the run
    /// over. Returns how many.
    pub async fn stop_orphans(&self, project: &str, run: &str) -> Result<usize, BackendError> {
        let scope = [
            format!("{LABEL_PROJECT}={project}"),
            format!("{LABEL_RUN}={run}"),
        ];
        Ok(self.sweep(&scope).await?.0)
    }

    /// Removes the containers and volumes of runs whose pipe process is gone: those of the
    /// project `project` (its `owner::project_key`), or of every project when `None`. Returns
    /// how many.
    pub async fn clean(&self, project: Option<&str>) -> Result<(usize, usize), BackendError> {
        let scope: Vec<String> = project
            .map(|p| format!("{LABEL_PROJECT}={p}"))
            .into_iter()
            .collect();
        self.sweep(&scope).await
    }

    /// Removes the containers, then the volumes, that carry every label of `scope` and whose
    /// pipe process is gone. Returns how many of each.
    async fn sweep(&self, scope: &[String]) -> Result<(usize, usize), BackendError> {
        Self::sweep_on(&self.docker, scope, true).await
    }

    /// As `sweep`, or when `only_dead` is false, whoever owns them.
    async fn sweep_on(
        docker: &Docker,
        scope: &[String],
        only_dead: bool,
    ) -> Result<(usize, usize), BackendError> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        labels.extend_from_slice(scope);
        let filters = HashMap::from([("label".to_string(), labels)]);
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(job_error("cannot list containers"))?;
        let dead = |labels: Option<&HashMap<String, String>>| {
            !only_dead
                || !labels
                    .and_then(|l| l.get(LABEL_OWNER))
                    .and_then(|o| Owner::parse(o))
                    .is_some_and(|o| o.is_alive())
        };
        let mut removed = (0, 0);
        for c in containers {
            let Some(id) = c.id.filter(|_| dead(c.labels.as_ref())) else {
                continue;
            };
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match docker.remove_container(&id, Some(options)).await {
                // Gone already: what was wanted.
                Ok(())
                | Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => removed.0 += 1,
                Err(e) => return Err(job_error("cannot remove a container")(e)),
            }
        }
        // Their workspaces, which nothing uses any more.
        let volumes = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .map_err(job_error("cannot list volumes"))?;
        for v in volumes.volumes.unwrap_or_default() {
            if dead(Some(&v.labels)) {
                Self::remove_volume(docker, &v.name).await;
                removed.1 += 1;
            }
        }
        // The networks of jobs' services, which nothing is on any more (never the jobs'
        // network, which is no run's).
        let mut filters = filters;
        filters
            .entry("label".into())
            .or_default()
            .push(LABEL_RUN.into());
        let networks = docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(job_error("cannot list networks"))?;
        for n in networks {
            let name = n
                .name
                .filter(|name| name != NETWORK && dead(n.labels.as_ref()));
            if let Some(name) = name {
                services::remove_network(docker, &name).await;
            }
        }
        Ok(removed)
    }
}

impl Backend for DockerBackend {
    /// The image's id, never its tag: an image rebuilt under the same tag is another image.
    fn identity<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, Result<String, BackendError>> {
        async move {
            let image = spec
                .image
                .as_deref()
                .ok_or_else(|| BackendError::Job("the job has no image".into()))?;
            let found = self.docker.inspect_image(image).await.map_err(|e| {
                BackendError::Job(format!("cannot inspect image `{image}`: {}", short(&e)))
            })?;
            found
                .id
                .ok_or_else(|| BackendError::Job(format!("image `{image}` has no id")))
        }
        .boxed()
    }

    fn prepare<'a>(&'a self, run: &'a RunShape) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            // An image the run builds is not pulled: it is made before the jobs that use it.
            let built: Vec<&String> = run.jobs.iter().flat_map(|j| &j.builds).collect();
            let mut images: Vec<String> = run
                .jobs
                .iter()
                .filter_map(|j| j.image.clone())
                .filter(|i| !built.contains(&i))
                .collect();
            images.sort();
            images.dedup();
            // Network sandboxes for the later waves; starting more of them than there are
            // cores slows the first wave they start beside (bench/run.sh: fan-out 1.01x the
            // docker CLI with one per job of the widest level, 0.91x with one per core).
            // A job made ahead holds one while the job it needs runs in another: twice as many
            // serve a chain.
            let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
            let parallel = (2 * run.widest_later_level)
                .min(run.concurrency.max(1))
                .min(cpus);
            let checks = images
                .iter()
                .map(|image| async move { (image, self.ensure_image(image).await) });
            // What a dead run of this project left on the engine (it was killed, or the engine
            // went away under it) goes now, beside the checks, as GitHub's runner sweeps by label.
            let sweep = async {
                if let Some(project) = &self.project {
                    let scope = [format!("{LABEL_PROJECT}={project}")];
                    if let Err(e) = self.sweep(&scope).await {
                        tracing::warn!("cannot remove what dead runs left: {e}");
                    }
                }
            };
            let (network, checked, ()) = futures_util::future::join3(
                self.ensure_network(),
                futures_util::future::join_all(checks),
                sweep,
            )
            .await;
            let network = network?;
            *self.network.lock().expect("not poisoned") = network;
            for (image, result) in checked {
                if let Err(why) = result {
                    self.unavailable
                        .lock()
                        .expect("not poisoned")
                        .insert(image.clone(), why);
                }
            }
            let usable = images.iter().find(|i| {
                !self
                    .unavailable
                    .lock()
                    .expect("not poisoned")
                    .contains_key(*i)
            });
            if let Some(image) = usable.filter(|_| parallel > 0) {
                *self.planned_sandboxes.lock().expect("not poisoned") =
                    Some((image.clone(), parallel, run.run_id.clone()));
            }
            Ok(())
        }
        .boxed()
    }

    fn prepare_job<'a>(&'a self, spec: &'a JobSpec) -> BoxFuture<'a, ()> {
        async move {
            // The job is then created when it runs, as it would be anyway.
            if let Err(e) = self.prepare_container(spec).await {
                tracing::info!("cannot prepare job `{}` ahead: {e}", spec.job);
            }
        }
        .boxed()
    }

    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        stop: watch::Receiver<Stop>,
    ) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        async move {
            self.start_planned_sandboxes();
            self.sandboxes.deciding(&spec.scratch);
            let mut unfinished = Unfinished {
                backend: self,
                spec,
                armed: true,
            };
            let result = match self.run_job(spec, log, stop).await {
                // A job that could not run because the engine is gone is no job's fault.
                Err(BackendError::Job(why)) if !self.answers().await => {
                    Err(BackendError::Unavailable(format!(
                        "the Docker engine stopped answering during the run ({why})"
                    )))
                }
                other => other,
            };
            unfinished.armed = false;
            self.decided(&spec.scratch);
            self.sandboxes.go();
            self.sandboxes.later_wave.store(true, Ordering::Release);
            super::keep_artifacts(spec, log, result).await
        }
        .boxed()
    }

    fn all_started(&self) {
        self.close_sandboxes();
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        async move {
            // Before the sandboxes, which prepared containers may have joined.
            self.discard_prepared();
            self.stop_sandboxes();
            self.sandboxes.creating.wait().await;
            let sandboxes = std::mem::take(&mut *self.sandboxes.all.lock().expect("not poisoned"));
            for id in sandboxes {
                self.tear_down(Some(id), None, PathBuf::new());
            }
            self.teardowns.wait().await
        }
        .boxed()
    }
}

/// An attempt whose future ends before it has handed what it made to the teardown (a bug in
/// pipe panicked in it): its container and volume, found by their labels, and its scratch
/// space are torn down with the rest of the run.
struct Unfinished<'a> {
    backend: &'a DockerBackend,
    spec: &'a JobSpec,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let docker = self.backend.docker.clone();
        let mut scope = vec![
            format!("{LABEL_RUN}={}", self.spec.run_id),
            format!("{LABEL_JOB}={}", self.spec.job),
            format!("{LABEL_OWNER}={}", Owner::me()),
        ];
        scope.extend(
            (self.backend.project.iter()).map(|project| format!("{LABEL_PROJECT}={project}")),
        );
        let scratch = self.spec.scratch.clone();
        self.backend.teardowns.spawn(async move {
            if let Err(e) = DockerBackend::sweep_on(&docker, &scope, false).await {
                tracing::warn!("cannot remove what an unfinished job left: {e}");
            }
            remove_dir(scratch).await;
        });
    }
}

/// How an attempt to run a container went wrong.
enum Attempt {
    /// The engine refused to start it (a mount it cannot make, say): nothing ran.
    NotStarted(String),
    Failed(BackendError),
}

impl Attempt {
    fn into_error(self) -> BackendError {
        match self {
            Attempt::NotStarted(why) => {
                BackendError::Job(format!("cannot start the container: {why}"))
            }
            Attempt::Failed(e) => e,
        }
    }
}

/// pipe keeps a job's log itself, from the attached streams: the engine's own copy (json-file
/// by default) would write every line to disk a second time, and a sandbox has nothing to say.
fn no_engine_log() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("none".into()),
        config: None,
    }
}

fn bind_mount(bind: &super::Bind) -> Mount {
    Mount {
        target: Some(bind.container.clone()),
        source: Some(bind.host.clone()),
        typ: Some(MountType::BIND),
        read_only: Some(bind.read_only),
        ..Default::default()
    }
}

/// The longest mount options the kernel takes are one page; a little is kept spare.
const MAX_MOUNT_OPTIONS: usize = 4000;
/// Overlayfs stacks at most 500 lower layers.
const MAX_LOWER_LAYERS: usize = 500;

/// Overlay mount options for `layers` (bottom first), or `None` when a path holds a character
/// that mount options cannot carry.
fn overlay_options(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<Option<String>, BackendError> {
    let lowers = layers
        .iter()
        .rev()
        .map(|dir| absolute(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let paths = [absolute(upper)?, absolute(work)?];
    if lowers.iter().chain(&paths).any(|p| p.contains([',', ':'])) {
        return Ok(None);
    }
    Ok(Some(format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        paths[0],
        paths[1]
    )))
}

fn is_mount_error(message: &str) -> bool {
    ["overlay", "mount", "invalid argument", "no such file"]
        .iter()
        .any(|w| message.to_lowercase().contains(w))
}

/// The engine's own message, without bollard's wrapping.
fn short(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn job_error(what: &'static str) -> impl Fn(DockerError) -> BackendError {
    move |e| BackendError::Job(format!("{what}: {}", short(&e)))
}

/// pipe's own files failed (the artifacts, a full disk): no fault of the job.
fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> BackendError {
    move |e| BackendError::Internal(format!("{what}: {e}"))
}

fn absolute(path: &Path) -> Result<String, BackendError> {
    std::path::absolute(path)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| BackendError::Job(format!("cannot resolve {}: {e}", path.display())))
}
