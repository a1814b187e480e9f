//! The checked pipeline: values that cannot be wrong, with positions kept for later errors.

use std::time::Duration;

use super::artifact::ArtifactPath;
use super::cache::Cache;
use super::check::services::Service;
use super::gate::Gate;
use super::only::Only;
use super::secrets::{Provider, SecretName};
use super::Pos;
use crate::severity::Severity;

pub const DEFAULT_STAGES: &[&str] = &["build", "test", "security-scan", "deploy", "release"];
/// The stage a hook never runs (with the release stage and jobs that name an `environment`).
pub const DEPLOY_STAGE: &str = "deploy";
/// The gated stage: its jobs never run in the same invocation as the rest.
pub const RELEASE_STAGE: &str = "release";

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub stages: Vec<String>,
    /// Matrix jobs are already expanded, in file order.
    pub jobs: Vec<Job>,
    /// Commands that print secrets' values (the top-level `secrets:`).
    pub secrets: Vec<Provider>,
}

impl Pipeline {
    /// Each release job with its own gate, in file order (a release job without `gate:` has no
    /// conditions of its own). Empty when the pipeline has no release stage. Gates are never
    /// combined: a release runs every release job, so each one's conditions must hold.
    pub fn gates(&self) -> Vec<(&str, Gate)> {
        self.jobs
            .iter()
            .filter(|j| j.gated)
            .map(|j| (j.name.as_str(), j.gate.clone().unwrap_or_default()))
            .collect()
    }

    /// The steps of the pipeline's progressive release: those of the release job that declares
    /// them (the checker lets only one), else none.
    pub fn steps(&self) -> &[super::check::steps::Step] {
        self.jobs
            .iter()
            .find(|j| j.gated && !j.steps.is_empty())
            .map_or(&[][..], |j| j.steps.as_slice())
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    /// Unique: `unit` or, for a matrix expansion, `unit [TARGET=x86_64]`.
    pub name: String,
    /// The name as written under `jobs:`; shared by all expansions of a matrix.
    pub base: String,
    /// Where the job's key stands in the file.
    pub pos: Pos,
    pub stage: String,
    pub stage_index: usize,
    /// `None`: wait for every job of every earlier stage. `Some`: exactly these jobs.
    pub needs: Option<Vec<Need>>,
    pub image: Option<String>,
    pub script: Vec<String>,
    /// Pipeline env, then job env, then matrix values: later entries win.
    pub env: Vec<(String, String)>,
    pub matrix: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub retry: u32,
    pub allow_failure: bool,
    /// Paths or globs relative to the workspace, handed to the jobs that need this one.
    pub artifacts: Vec<ArtifactPath>,
    /// SARIF files the job's tools write (`reports: {sarif: […]}`), read when it passes.
    pub reports: Vec<ArtifactPath>,
    /// Where the job deploys to (`staging`, `production`), recorded with the run.
    pub environment: Option<String>,
    /// When the job is part of a run at all (`None`: always).
    pub only: Option<Only>,
    /// Set on jobs of the release stage (and after it): they wait for the gate.
    pub gated: bool,
    /// The job's own release conditions, if it wrote a `gate:`.
    pub gate: Option<Gate>,
    /// Runs the container privileged: refused unless the user allows it.
    pub privileged: bool,
    /// Host paths mounted into the container: refused unless the user allows it.
    pub volumes: Vec<Volume>,
    /// The job gets a network (`network: false`: none at all, not even the engine's bridge).
    pub network: bool,
    /// Built-in scanners this job runs in-process instead of a script (empty: a script job).
    pub scan: Vec<Scanner>,
    /// Findings at or above this fail a scan job.
    pub fail_on: Severity,
    /// The secrets the job receives, as environment variables; no other job sees them.
    pub secrets: Vec<SecretName>,
    /// Workspace paths kept between runs under a key, restored before the script.
    pub cache: Option<Cache>,
    /// Globs of the project's files the job reads (`inputs:`): only these count for its reuse
    /// key. Empty: every file of the tree.
    pub inputs: Vec<super::glob::Glob>,
    /// `reuse: false`: the job always runs, even when an earlier run passed with the same key.
    pub reuse: bool,
    /// Containers started beside the job on a network private to it (see docs/services.md).
    pub services: Vec<Service>,
    /// Set for a job that pipe carries out by building an image (`build_image:`).
    pub build: Option<super::build::BuildImage>,
    /// Set for a job that pushes the image a `build_image` job built (`push:`).
    pub push: Option<super::build::PushImage>,
    /// What a job that changed files outside its workspace comes to (`drift:`).
    pub drift: super::build::DriftPolicy,
    /// `concurrency:`: of the jobs of this group in the project, one runs at a time.
    pub concurrency: Option<String>,
    /// `labels:`: a fleet's agent claims the job only if it offers all of these (`gpu`,
    /// `arm64`); a run on one machine (`pipe run`) does not look at them.
    pub labels: Vec<String>,
    /// A release job's progressive release (`steps:`), in order; empty: released at once.
    pub steps: Vec<super::check::steps::Step>,
    /// A release job's `rollback:` script, run by `pipe release RUN --rollback`.
    pub rollback: Vec<String>,
    /// Where the job's settings were written, for findings about them.
    pub spans: Spans,
}

impl Job {
    /// A job that deploys or releases: of the deploy stage, gated, or with an `environment`.
    pub fn deploys(&self) -> bool {
        self.gated || self.stage == DEPLOY_STAGE || self.environment.is_some()
    }
}

/// `HOST:CONTAINER[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: String,
    pub container: String,
    pub read_only: bool,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scanner {
    /// Credentials committed to the tree.
    Secrets,
    /// Dangerous settings in pipeline files.
    Pipeline,
}

/// Positions of a job's settings (the job's own key where a setting was inherited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    pub image: Option<Pos>,
    pub privileged: Option<Pos>,
    /// Where `network: false` is written (the job's own key where it was inherited).
    pub network: Option<Pos>,
    pub gate: Option<Pos>,
    /// Each `env` value of the job (and the pipeline's), by name.
    pub env: Vec<(String, Pos)>,
    /// Each script line.
    pub script: Vec<Pos>,
}

/// A `needs` entry: a job's base name, where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    pub pos: Pos,
}
