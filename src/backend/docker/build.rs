//! `build_image:` jobs on the engine: the context tarred from the job's workspace and built
//! through the engine's build API, then tagged. pipe holds the socket; the job never does.
//!
//! A build or a push asked to stop (Ctrl-C, a timeout, fail-fast) ends at once: neither has a
//! graceful way to end, so pipe drops the engine's stream, which makes the engine cancel the
//! request, and removes the container of the `RUN` step under way itself, so that none is left
//! when the job is reported stopped.

use std::collections::HashMap;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions, TagImageOptions};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{io_error, short, DockerBackend};
use crate::backend::{BackendError, JobSpec, LogSink, Outcome, Stop};
use crate::event::{EventKind, Stream};
use crate::image::{BuildSpec, BuiltImage, PushSpec};
use crate::workspace;

impl DockerBackend {
    /// Builds the job's image; a build that fails (a bad Dockerfile, a failing `RUN`) fails
    /// the job with the engine's output in its log.
    pub(super) async fn build(
        &self,
        spec: &JobSpec,
        build: &BuildSpec,
        log: &LogSink,
        mut stop: watch::Receiver<Stop>,
    ) -> Result<Outcome, BackendError> {
        let (layers, dir, context) = (
            spec.layers.clone(),
            spec.scratch.join("context"),
            build.context.clone(),
        );
        let tar = tokio::task::spawn_blocking(move || {
            workspace::lay_layers(&layers, &dir)?;
            let tar = crate::image::context_tar(&dir, &context);
            workspace::remove(&dir)?;
            tar
        })
        .await
        .map_err(|e| BackendError::Internal(e.to_string()))?;
        let tar = match tar {
            Ok(tar) => tar,
            // The job's own context is wrong (a link, not a folder): its failure, not pipe's.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                log.line(Stream::Stderr, format!("pipe: {e}"));
                return Ok(failed());
            }
            Err(e) => return Err(io_error("cannot lay the build context")(e)),
        };
        if *stop.borrow() != Stop::No {
            return Ok(stopped(log, "the build was stopped before it began"));
        }
        let first = build.tags.first().cloned().unwrap_or_default();
        let options = BuildImageOptions {
            dockerfile: build.dockerfile.clone(),
            t: Some(first.clone()),
            target: build.target.clone().unwrap_or_default(),
            buildargs: Some(build.args.iter().cloned().collect::<HashMap<_, _>>()),
            // No labels: the classic builder adds them as one more step, a container created
            // and committed, which cost 1 to 1.5 s a build here (bench/images.sh). The run
            // store says which run and job built which image.
            rm: true,
            forcerm: true,
            networkmode: Some(if spec.network { "default" } else { "none" }.into()),
            ..Default::default()
        };
        let mut steps =
            self.docker
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        let (mut out, mut err) = (log.output(Stream::Stdout), log.output(Stream::Stderr));
        let mut failure = None;
        // The classic builder's container for the `RUN` step under way, as its output names it.
        let mut running = None;
        let asked_to_stop = loop {
            let step = tokio::select! {
                step = steps.next() => step,
                () = stop_asked(&mut stop) => break true,
            };
            match step {
                None => break false,
                Some(Ok(info)) => {
                    if let Some(text) = info.stream {
                        if let Some(id) = running_in(&text) {
                            running = Some(id.to_string());
                        }
                        out.push(text.as_bytes());
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        failure = Some(detail);
                    }
                }
                Some(Err(bollard::errors::Error::DockerStreamError { error })) => {
                    failure = Some(error)
                }
                Some(Err(e)) => {
                    failure = Some(short(&e));
                    break false;
                }
            }
        };
        if asked_to_stop {
            // Closing the connection cancels the build on the engine's side; the step's
            // container goes now rather than when the engine gets to it.
            drop(steps);
            if let Some(id) = running {
                Self::remove_container(&self.docker, &id).await;
            }
            out.finish();
            err.finish();
            return Ok(stopped(log, "the image build was stopped"));
        }
        out.finish();
        if let Some(why) = failure {
            err.push(format!("pipe: the image build failed: {why}\n").as_bytes());
            err.finish();
            return Ok(failed());
        }
        err.finish();
        let id = self
            .docker
            .inspect_image(&first)
            .await
            .ok()
            .and_then(|i| i.id)
            .ok_or_else(|| BackendError::Job(format!("the built image `{first}` is not there")))?;
        for tag in &build.tags[1..] {
            let (repo, name) = split_tag(tag);
            let options = TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(name.to_string()),
            };
            self.docker
                .tag_image(&id, Some(options))
                .await
                .map_err(|e| {
                    BackendError::Job(format!("cannot tag the image `{tag}`: {}", short(&e)))
                })?;
        }
        log.line(
            Stream::Stdout,
            format!("pipe: built image {id} as {}", build.tags.join(", ")),
        );
        let image = BuiltImage {
            id,
            tags: build.tags.clone(),
        };
        if let Some(record) = &build.record {
            record
                .parent()
                .map_or(Ok(()), workspace::private::dir)
                .and_then(|()| {
                    workspace::private::write(
                        record,
                        serde_json::to_vec(&image).unwrap_or_default(),
                    )
                })
                .map_err(io_error("cannot record the built image"))?;
        }
        log.event(EventKind::ImageBuilt {
            job: spec.job.clone(),
            image,
        });
        Ok(Outcome {
            exit_code: 0,
            missing_artifacts: Vec::new(),
            findings: None,
        })
    }
}

impl DockerBackend {
    /// Pushes the image the named `build_image` job built in this run, by its id: what is
    /// released is the very image that was built and tested, even if its tag moved since.
    pub(super) async fn push(
        &self,
        spec: &JobSpec,
        push: &PushSpec,
        log: &LogSink,
        mut stop: watch::Receiver<Stop>,
    ) -> Result<Outcome, BackendError> {
        let built: BuiltImage = match std::fs::read(&push.record) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BackendError::Internal(format!("the built image's record is unreadable: {e}"))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackendError::Job(format!(
                    "job `{}` built no image in this run: nothing to push",
                    push.job
                )))
            }
            Err(e) => return Err(io_error("cannot read the built image's record")(e)),
        };
        if self.docker.inspect_image(&built.id).await.is_err() {
            return Err(BackendError::Job(format!(
                "the image {} that job `{}` built is no longer on the engine",
                built.id, push.job
            )));
        }
        let credentials = push
            .login
            .as_ref()
            .map(|(user, password)| DockerCredentials {
                username: Some(user.clone()).filter(|u| !u.is_empty()),
                password: Some(password.clone()),
                ..Default::default()
            });
        for target in &push.to {
            let (repo, tag) = split_tag(target);
            let options = TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            };
            self.docker
                .tag_image(&built.id, Some(options))
                .await
                .map_err(|e| {
                    BackendError::Job(format!("cannot tag the image `{target}`: {}", short(&e)))
                })?;
            let options = PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            };
            let mut steps = self
                .docker
                .push_image(repo, Some(options), credentials.clone());
            let mut failure = None;
            loop {
                let step = tokio::select! {
                    step = steps.next() => step,
                    // Dropping the stream makes the engine give the push up.
                    () = stop_asked(&mut stop) => {
                        return Ok(stopped(log, &format!("the push of `{target}` was stopped")));
                    }
                };
                match step {
                    None => break,
                    Some(Ok(info)) => {
                        if let Some(why) = info.error_detail.and_then(|d| d.message) {
                            failure = Some(why);
                        }
                    }
                    Some(Err(e)) => {
                        failure = Some(short(&e));
                        break;
                    }
                }
            }
            if let Some(why) = failure {
                log.line(
                    Stream::Stderr,
                    format!("pipe: cannot push `{target}`: {why}"),
                );
                return Ok(failed());
            }
            log.line(
                Stream::Stdout,
                format!("pipe: pushed {} as {target}", built.id),
            );
        }
        log.event(EventKind::ImagePushed {
            job: spec.job.clone(),
            image: BuiltImage {
                id: built.id,
                tags: push.to.clone(),
            },
        });
        Ok(Outcome {
            exit_code: 0,
            missing_artifacts: Vec::new(),
            findings: None,
        })
    }
}

fn failed() -> Outcome {
    Outcome {
        exit_code: 1,
        missing_artifacts: Vec::new(),
        findings: None,
    }
}

/// What a build or push asked to stop ends as: killed, as a stopped container would be.
fn stopped(log: &LogSink, why: &str) -> Outcome {
    log.line(Stream::Stderr, format!("pipe: {why}"));
    Outcome {
        exit_code: 137,
        missing_artifacts: Vec::new(),
        findings: None,
    }
}

/// Resolves once the scheduler asks the job to stop, at whatever level: a closed channel means
/// the attempt is being given up, which is as good as a kill.
async fn stop_asked(stop: &mut watch::Receiver<Stop>) {
    let _ = stop.wait_for(|s| *s != Stop::No).await;
}

/// The container id in the classic builder's ` ---> Running in 0123456789ab` line.
fn running_in(text: &str) -> Option<&str> {
    let id = text.trim().strip_prefix("---> Running in ")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// `registry:5000/app:v1` → (`registry:5000/app`, `v1`); no tag means `latest`.
fn split_tag(tag: &str) -> (&str, &str) {
    match tag.rsplit_once(':') {
        Some((repo, name)) if !name.contains('/') => (repo, name),
        _ => (tag, "latest"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tag_splits_after_the_registry_port() {
        assert_eq!(
            super::split_tag("127.0.0.1:5000/app:v1"),
            ("127.0.0.1:5000/app", "v1")
        );
        assert_eq!(
            super::split_tag("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", "latest")
        );
        assert_eq!(super::split_tag("app"), ("app", "latest"));
    }

    #[test]
    fn the_running_step_container_is_read_from_the_builders_output() {
        assert_eq!(
            super::running_in(" ---> Running in 47a3aade43c4\n"),
            Some("47a3aade43c4")
        );
        assert_eq!(super::running_in(" ---> 249e858fc145\n"), None);
        assert_eq!(
            super::running_in("Running in a shell; echo ---> Running in x"),
            None
        );
    }
}
