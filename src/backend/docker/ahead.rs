//! Containers made ahead: a job's container (with its workspace volume and its network) is
//! created while the jobs it needs still run, so that starting it is all that is left on the
//! run's critical path when they finish.
//!
//! The workspace volume is an overlay whose lower layers are the needed jobs' artifact folders;
//! the engine mounts it only when the container starts. Those folders are made (empty) now, and
//! the artifacts copied into them later are in the workspace when it is mounted.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::{overlay_options, DockerBackend, MAX_LOWER_LAYERS, MAX_MOUNT_OPTIONS};
use crate::backend::{BackendError, JobSpec};

/// A container created for an attempt and not started yet.
pub(super) struct Prepared {
    pub id: String,
    pub volume: String,
    /// The network sandbox it joins, claimed for it.
    pub sandbox: Option<String>,
    /// The workspace layers it was made with.
    layers: Vec<PathBuf>,
}

impl DockerBackend {
    /// Creates the container of the attempt `spec`, if what it will run on can be known now.
    pub(super) async fn prepare_container(&self, spec: &JobSpec) -> Result<(), BackendError> {
        if !self.preparable(spec)? {
            return Ok(());
        }
        self.start_planned_sandboxes();
        // Waiting for a sandbox that is still starting costs nothing here: the needs run. With
        // none to claim the job is made when it starts, as before: on a network of its own it
        // would start 146 ms slower than in a sandbox a finished job gives back by then.
        let sandbox = match spec.network {
            true => {
                self.sandboxes.go_unless_begun();
                match self.sandboxes.take().await {
                    Some(sandbox) => Some(sandbox),
                    None => return Ok(()),
                }
            }
            false => None,
        };
        let created = self.create_ahead(spec, sandbox.as_deref()).await;
        let (id, volume) = match created {
            Ok(Some(made)) => made,
            unused => {
                if let Some(sandbox) = sandbox {
                    self.give_back_sandbox(sandbox);
                }
                return unused.map(|_| ());
            }
        };
        let prepared = Prepared {
            id,
            volume,
            sandbox,
            layers: spec.layers.clone(),
        };
        self.prepared
            .lock()
            .expect("not poisoned")
            .insert(spec.scratch.clone(), prepared);
        Ok(())
    }

    /// The container and workspace volume of `spec`, made now, with the layers that do not
    /// exist yet made empty; `None` when the workspace cannot be an overlay.
    async fn create_ahead(
        &self,
        spec: &JobSpec,
        sandbox: Option<&str>,
    ) -> Result<Option<(String, String)>, BackendError> {
        for layer in &spec.layers {
            std::fs::create_dir_all(layer).map_err(|e| {
                BackendError::Internal(format!("cannot create {}: {e}", layer.display()))
            })?;
        }
        let Some((volume, mount)) = self.overlay_mount(spec).await? else {
            return Ok(None);
        };
        let id = self.create(spec, mount, sandbox, None).await?;
        Ok(Some((id, volume)))
    }

    /// Whether the container of `spec` can be made before its needs end: not for jobs the
    /// engine carries out otherwise (builds, pushes), nor for jobs with services (their
    /// network is made when they start), nor when the workspace is not one overlay mount over
    /// the layers as they are (a copy, or the artifacts merged into one layer, are made from
    /// what the needs leave).
    fn preparable(&self, spec: &JobSpec) -> Result<bool, BackendError> {
        let usable_image = spec.image.as_ref().is_some_and(|image| {
            !self
                .unavailable
                .lock()
                .expect("not poisoned")
                .contains_key(image)
        });
        if !usable_image
            || spec.build.is_some()
            || spec.push.is_some()
            || spec.scan.is_some()
            || !spec.services.list.is_empty()
            || !self.overlay.load(Ordering::Relaxed)
            || spec.layers.len() > MAX_LOWER_LAYERS
        {
            return Ok(false);
        }
        let (upper, work) = (spec.scratch.join("upper"), spec.scratch.join("work"));
        let options = overlay_options(&spec.layers, &upper, &work)?;
        Ok(options.is_some_and(|o| o.len() <= MAX_MOUNT_OPTIONS))
    }

    /// The container prepared for the attempt `spec`, if it was made for the workspace the
    /// attempt has. One made for other layers (a needed job left no artifacts after all, a
    /// cache was restored on top) is removed before the attempt makes its own under the same
    /// names.
    pub(super) async fn take_prepared(&self, spec: &JobSpec) -> Option<Prepared> {
        let prepared = self
            .prepared
            .lock()
            .expect("not poisoned")
            .remove(&spec.scratch)?;
        if prepared.layers == spec.layers {
            return Some(prepared);
        }
        Self::remove_container(&self.docker, &prepared.id).await;
        Self::remove_volume(&self.docker, &prepared.volume).await;
        if let Some(sandbox) = prepared.sandbox {
            self.give_back_sandbox(sandbox);
        }
        None
    }

    /// Tears down the containers prepared for attempts that never ran.
    pub(super) fn discard_prepared(&self) {
        let left = std::mem::take(&mut *self.prepared.lock().expect("not poisoned"));
        for (scratch, prepared) in left {
            self.tear_down(Some(prepared.id), Some(prepared.volume), scratch);
        }
    }
}
