//! A job's services on the engine: a bridge network of the job's own, named for its run, job
//! and attempt and labelled like everything pipe makes, with each service on it under its name
//! (a network alias). The job's container joins that network, so two jobs with a service of
//! the same name each reach their own. The job's script starts once every service is ready;
//! the services, their log followers and the network go when the job's attempt ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig,
};
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::{job_error, short, DockerBackend};
use crate::backend::services::{self, Ready, Service, TAIL_LINES};
use crate::backend::{BackendError, JobSpec, LineSplitter, LogSink, Stop};
use crate::event::Stream as Output;

/// Names the service a container runs, beside the labels of the job it serves.
const LABEL_SERVICE: &str = "dev.pipe.service";

/// What a job's services are made of, for their teardown.
pub(super) struct Sidecars {
    /// The name of the job's network, which its container joins.
    pub(super) network: String,
    /// The services' containers, in the order of the job's list.
    containers: Vec<String>,
    followers: Vec<tokio::task::JoinHandle<()>>,
}

/// Why a job's script cannot start. Cloned to each place that waits for it.
#[derive(Clone)]
pub(super) enum NotReady {
    /// The job was stopped (cancelled, timed out) while its services came up.
    Stopped,
    /// A service failed; why, naming it.
    Failed(String),
}

/// Resolves once every service of the job is ready. Shared: the job's container is created and
/// started while the services come up, and its script waits for this before it runs.
pub(super) type Readiness<'a> = Shared<BoxFuture<'a, Result<(), NotReady>>>;

/// The services' side of the job's container: the network it joins, and what its script waits
/// for.
#[derive(Clone)]
pub(super) struct Joining<'a> {
    pub(super) network: &'a str,
    pub(super) ready: Readiness<'a>,
}

impl DockerBackend {
    /// Makes the job's network and starts its services on it; `None` for a job without any.
    /// When it fails, what it made is already handed to the teardown.
    pub(super) async fn start_services(
        &self,
        spec: &JobSpec,
        log: &LogSink,
    ) -> Result<Option<Sidecars>, BackendError> {
        if spec.services.list.is_empty() {
            return Ok(None);
        }
        let attempt = spec
            .scratch
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("1");
        let mut sidecars = Sidecars {
            network: format!(
                "pipe-{}-{}-{}-{attempt}",
                std::process::id(),
                spec.run_id,
                spec.slug
            ),
            containers: Vec::new(),
            followers: Vec::new(),
        };
        match self.bring_up(spec, log, &mut sidecars).await {
            Ok(()) => Ok(Some(sidecars)),
            Err(e) => {
                self.stop_services(Some(sidecars));
                Err(e)
            }
        }
    }

    async fn bring_up(
        &self,
        spec: &JobSpec,
        log: &LogSink,
        sidecars: &mut Sidecars,
    ) -> Result<(), BackendError> {
        for service in &spec.services.list {
            self.ensure_image(&service.image)
                .await
                .map_err(|why| BackendError::Job(format!("service `{}`: {why}", service.name)))?;
        }
        let request = NetworkCreateRequest {
            name: sidecars.network.clone(),
            driver: Some("bridge".into()),
            labels: Some(self.labels(&spec.run_id, &spec.job)),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(job_error("cannot make the network of the job's services"))?;
        let logs = spec.services.logs.clone();
        tokio::fs::create_dir_all(&logs).await.map_err(|e| {
            BackendError::Internal(format!("cannot create {}: {e}", logs.display()))
        })?;
        for service in &spec.services.list {
            self.start_service(spec, log, service, sidecars).await?;
        }
        Ok(())
    }

    /// What the job's script waits for: each service ready, or the job stopped.
    pub(super) fn services_ready<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        sidecars: &Sidecars,
        mut stop: watch::Receiver<Stop>,
    ) -> Readiness<'a> {
        let (network, ids) = (sidecars.network.clone(), sidecars.containers.clone());
        async move {
            let started = std::time::Instant::now();
            let waiting: Vec<String> = (spec.services.list.iter())
                .map(|s| format!("{} ({})", s.name, services::describe(s.ready.as_ref())))
                .collect();
            log.line(
                Output::Stderr,
                format!("pipe: waiting for services: {}", waiting.join(", ")),
            );
            let waits = (spec.services.list.iter())
                .zip(&ids)
                .map(|(service, id)| self.wait_ready(service, id, &network, log));
            tokio::select! {
                ready = futures_util::future::try_join_all(waits) => {
                    ready.map_err(|e| NotReady::Failed(e.to_string()))?
                }
                () = stopped(&mut stop) => return Err(NotReady::Stopped),
            };
            let names: Vec<&str> = spec.services.list.iter().map(|s| s.name.as_str()).collect();
            log.line(
                Output::Stderr,
                format!(
                    "pipe: services ready after {} ms: {}",
                    started.elapsed().as_millis(),
                    names.join(", ")
                ),
            );
            Ok(())
        }
        .boxed()
        .shared()
    }

    /// Creates and starts one service on the job's network, its log followed into its file.
    async fn start_service(
        &self,
        spec: &JobSpec,
        log: &LogSink,
        service: &Service,
        sidecars: &mut Sidecars,
    ) -> Result<(), BackendError> {
        let mut labels = self.labels(&spec.run_id, &spec.job);
        labels.insert(LABEL_SERVICE.into(), service.name.clone());
        let body = ContainerCreateBody {
            image: Some(service.image.clone()),
            cmd: service.command.clone(),
            env: Some(
                service
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(labels),
            host_config: Some(HostConfig {
                // Stops as fast as the job's own container, whatever runs as PID 1.
                init: Some(true),
                network_mode: Some(sidecars.network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    sidecars.network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![service.name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let cannot = |what: &str, e| {
            BackendError::Job(format!(
                "cannot {what} service `{}`: {}",
                service.name,
                short(&e)
            ))
        };
        let id = self
            .docker
            .create_container(None, body)
            .await
            .map_err(|e| cannot("create", e))?
            .id;
        sidecars.containers.push(id.clone());
        self.docker
            .start_container(&id, None)
            .await
            .map_err(|e| cannot("start", e))?;
        let follow = self.docker.logs(
            &id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let path = spec.services.log(&service.name);
        sidecars
            .followers
            .push(tokio::spawn(keep_log(follow, path, log.clone())));
        Ok(())
    }

    /// Waits until `service` is ready; an error names it and shows the end of its log in the
    /// job's.
    async fn wait_ready(
        &self,
        service: &Service,
        id: &str,
        network: &str,
        log: &LogSink,
    ) -> Result<(), BackendError> {
        let exited = async {
            match self.docker.wait_container(id, None).next().await {
                Some(Ok(r)) => format!("exited with code {}", r.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    format!("exited with code {code}")
                }
                _ => "stopped".to_string(),
            }
        };
        let probe = async {
            match &service.ready {
                None => Ok(()),
                Some(Ready::Tcp(port)) => {
                    // A service without an address has exited already (or is gone): its exit,
                    // or the timeout, is what is reported.
                    let Some(address) = self.address(id, network, *port).await else {
                        return std::future::pending().await;
                    };
                    while !connects(address).await {
                        tokio::time::sleep(services::TCP_POLL).await;
                    }
                    Ok(())
                }
                Some(Ready::Command(command)) => {
                    while !self.succeeds(id, command).await? {
                        tokio::time::sleep(services::COMMAND_POLL).await;
                    }
                    Ok(())
                }
            }
        };
        let why = tokio::select! {
            ready = probe => return ready,
            why = exited => why,
            () = tokio::time::sleep(service.timeout) => format!(
                "was not ready ({}) after {}",
                services::describe(service.ready.as_ref()),
                humantime::format_duration(service.timeout)
            ),
        };
        let tail = self.tail(id).await;
        log.line(
            Output::Stderr,
            format!(
                "pipe: service `{}` {why}; the end of its log:",
                service.name
            ),
        );
        for line in &tail {
            log.line(Output::Stderr, format!("[{}] {line}", service.name));
        }
        Err(BackendError::Job(format!(
            "service `{}` {why} (the end of its log is in the job's log)",
            service.name
        )))
    }

    /// Where pipe reaches `port` of the service's container: its address on the job's network.
    async fn address(&self, id: &str, network: &str, port: u16) -> Option<SocketAddr> {
        let found = self.docker.inspect_container(id, None).await.ok()?;
        let ip = found
            .network_settings?
            .networks?
            .remove(network)?
            .ip_address?;
        Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port))
    }

    /// Whether `command` exits 0 in the service's container.
    async fn succeeds(&self, id: &str, command: &str) -> Result<bool, BackendError> {
        let config = ExecConfig {
            cmd: Some(vec!["sh".into(), "-c".into(), command.into()]),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let Ok(exec) = self.docker.create_exec(id, config).await else {
            // The container is stopping: its exit is reported by the wait beside this.
            return Ok(false);
        };
        let options = StartExecOptions {
            detach: false,
            ..Default::default()
        };
        if let Ok(StartExecResults::Attached { mut output, .. }) =
            self.docker.start_exec(&exec.id, Some(options)).await
        {
            while output.next().await.is_some() {}
        }
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(job_error("cannot read a readiness check's result"))?;
        Ok(inspected.exit_code == Some(0))
    }

    /// The last lines of a service's log, masked.
    async fn tail(&self, id: &str) -> Vec<String> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: TAIL_LINES.to_string(),
            ..Default::default()
        };
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        let mut stream = self.docker.logs(id, Some(options));
        while let Some(Ok(chunk)) = stream.next().await {
            splitter.push(&chunk.into_bytes(), |l| lines.push(l));
        }
        splitter.finish(|l| lines.push(l));
        lines
    }

    /// Removes the services, then their network, once their logs are written; in the
    /// background, awaited before the run ends.
    pub(super) fn stop_services(&self, sidecars: Option<Sidecars>) {
        let Some(sidecars) = sidecars else {
            return;
        };
        let docker = self.docker.clone();
        self.teardowns.spawn(async move {
            for id in &sidecars.containers {
                Self::remove_container(&docker, id).await;
            }
            // A follower ends with its container's log.
            for follower in sidecars.followers {
                let _ = follower.await;
            }
            remove_network(&docker, &sidecars.network).await;
        });
    }
}

/// Removes a job's network, first cutting off the job's container should its own teardown
/// not have removed it yet.
pub(super) async fn remove_network(docker: &Docker, network: &str) {
    for _ in 0..50 {
        if let Ok(found) = docker.inspect_network(network, None).await {
            for container in found.containers.unwrap_or_default().into_keys() {
                let request = NetworkDisconnectRequest {
                    container,
                    force: Some(true),
                };
                let _ = docker.disconnect_network(network, request).await;
            }
        }
        match docker.remove_network(network).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            // A container still leaving it: look again in a moment.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    tracing::warn!("cannot remove the network `{network}`: `pipe clean` removes it later");
}

/// Whether a TCP connection to `address` is accepted.
async fn connects(address: SocketAddr) -> bool {
    tokio::task::spawn_blocking(move || {
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
    })
    .await
    .unwrap_or(false)
}

/// Resolves once the job is asked to stop.
async fn stopped(stop: &mut watch::Receiver<Stop>) {
    loop {
        if *stop.borrow_and_update() != Stop::No {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Writes a service's log, masked, to its file until the service is gone.
async fn keep_log(
    mut follow: impl Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
        + Unpin,
    path: std::path::PathBuf,
    log: LogSink,
) {
    let Ok(mut file) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
    else {
        tracing::warn!("cannot write {}", path.display());
        return;
    };
    let mut splitter = LineSplitter::default();
    while let Some(Ok(chunk)) = follow.next().await {
        let mut text = Vec::new();
        splitter.push(&chunk.into_bytes(), |line| {
            text.extend_from_slice(&log.masked(line.as_bytes()));
            text.push(b'\n');
        });
        if file.write_all(&text).await.is_err() {
            return;
        }
    }
    let mut text = Vec::new();
    splitter.finish(|line| {
        text.extend_from_slice(&log.masked(line.as_bytes()));
        text.push(b'\n');
    });
    let _ = file.write_all(&text).await;
    let _ = file.flush().await;
}
