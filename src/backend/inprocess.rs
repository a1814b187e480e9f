//! Scan jobs: pipe's built-in scanners run in-process over the job's workspace layers (the
//! run's snapshot and the artifacts it needs), so the security-scan stage needs no image and
//! works offline. Findings go to the job's log, a SARIF file, and the job's result.

use std::collections::HashSet;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::watch;

use super::{Backend, BackendError, JobSpec, LogSink, Outcome, Stop};
use crate::event::Stream;
use crate::pipeline::Scanner;
use crate::scan::{self, Counts, Finding, SecretsOptions, Severity};

/// What a scan job runs and how its findings are judged.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub scanners: Vec<Scanner>,
    pub fail_on: Severity,
    /// Where the SARIF report is written.
    pub sarif: PathBuf,
    /// The run's own pipeline: the run's copy of it, and its name in reports. The `pipeline`
    /// scanner audits it even when it is not among the names it looks for in the workspace.
    pub pipeline: (PathBuf, PathBuf),
    /// Where the run's Docker jobs keep their drift, listed beside the findings.
    pub drift: PathBuf,
}

pub struct InProcess;

impl Backend for InProcess {
    /// The scanners are pipe's own: this version of pipe is what they run on.
    fn identity<'a>(&'a self, _spec: &'a JobSpec) -> BoxFuture<'a, Result<String, BackendError>> {
        async { Ok(format!("pipe {} scanners", env!("CARGO_PKG_VERSION"))) }.boxed()
    }

    fn run<'a>(
        &'a self,
        spec: &'a JobSpec,
        log: &'a LogSink,
        _stop: watch::Receiver<Stop>,
    ) -> BoxFuture<'a, Result<Outcome, BackendError>> {
        async move {
            let scan_spec = spec
                .scan
                .clone()
                .ok_or_else(|| BackendError::Job("not a scan job".into()))?;
            let layers = spec.layers.clone();
            let scanners = scan_spec.scanners.clone();
            let own = scan_spec.pipeline.clone();
            let findings = tokio::task::spawn_blocking(move || {
                let mut found = scan_layers(&layers, &scanners)?;
                // The pipeline being run, under whatever name it has (`deploy/prod.yml`).
                let (copy, name) = own;
                let name = name.strip_prefix(".").unwrap_or(&name).to_path_buf();
                if scanners.contains(&Scanner::Pipeline)
                    && !scan::pipeline::pipeline_files(&layers[0])
                        .iter()
                        .any(|p| p.strip_prefix(&layers[0]).is_ok_and(|rel| rel == name))
                {
                    found.extend(scan::pipeline::scan_pipeline_as(&copy, &name)?);
                }
                Ok::<_, scan::ScanError>(found)
            })
            .await
            .map_err(|e| BackendError::Job(e.to_string()))?
            .map_err(|e| BackendError::Job(format!("the scan failed: {e}")))?;
            let mut text = Vec::new();
            let _ = scan::report::human(&findings, &mut text, false);
            for line in String::from_utf8_lossy(&text).lines() {
                log.line(Stream::Stdout, line.to_string());
            }
            let sarif = scan::sarif::to_sarif(&findings, env!("CARGO_PKG_VERSION"));
            scan_spec
                .sarif
                .parent()
                .map_or(Ok(()), crate::workspace::private::dir)
                .and_then(|_| {
                    crate::workspace::private::write(
                        &scan_spec.sarif,
                        log.masked(&serde_json::to_vec_pretty(&sarif).unwrap_or_default()),
                    )
                })
                .map_err(|e| {
                    BackendError::Internal(format!("cannot write the SARIF report: {e}"))
                })?;
            for line in drift_report(&scan_spec.drift) {
                log.line(Stream::Stdout, line);
            }
            log.line(
                Stream::Stdout,
                format!("SARIF report: {}", scan_spec.sarif.display()),
            );
            let counts = Counts::from_findings(&findings);
            let failing = counts.at_or_above(scan_spec.fail_on);
            if failing > 0 {
                log.line(
                    Stream::Stderr,
                    format!(
                        "{failing} finding(s) at or above {}: the job fails",
                        scan_spec.fail_on
                    ),
                );
            }
            Ok(Outcome {
                exit_code: i64::from(failing > 0),
                missing_artifacts: Vec::new(),
                findings: Some(counts),
            })
        }
        .boxed()
    }
}

/// Scans each layer; where layers hold the same file, the topmost layer's findings count.
fn scan_layers(layers: &[PathBuf], scanners: &[Scanner]) -> Result<Vec<Finding>, scan::ScanError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for layer in layers.iter().rev() {
        let mut found = Vec::new();
        for scanner in scanners {
            found.extend(match scanner {
                Scanner::Secrets => scan::scan_secrets(
                    layer,
                    &SecretsOptions {
                        baseline: None,
                        threads: 0,
                        parent_ignores: false,
                        shown_as: None,
                    },
                )?,
                Scanner::Pipeline => scan::pipeline::scan_pipelines(layer, None)?,
            });
        }
        let files: HashSet<PathBuf> = found.iter().map(|f| f.path.clone()).collect();
        out.extend(found.into_iter().filter(|f| !seen.contains(&f.path)));
        seen.extend(files);
    }
    out.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    Ok(out)
}

/// Each earlier job's drift, as its Docker backend kept it in the run's folder: a line per
/// job, sorted by name; nothing when no job changed anything outside its workspace.
fn drift_report(dir: &std::path::Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Kept {
        job: String,
        drift: crate::drift::Drift,
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut kept: Vec<Kept> = entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    if kept.is_empty() {
        return Vec::new();
    }
    kept.sort_by(|a, b| a.job.cmp(&b.job));
    let mut lines = vec!["drift (what jobs changed outside /workspace and /tmp):".to_string()];
    for k in kept {
        lines.push(format!("  {}: {}", k.job, k.drift.summary()));
        for path in &k.drift.system.paths {
            lines.push(format!("    system: {path}"));
        }
    }
    lines
}
