//! `pipe scan [PATH]`: the security-scan stage's scanners by hand or from a hook.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{exit, CliError, Internal};
use crate::scan::{self, baseline, Counts, SecretsOptions, Severity};

#[derive(clap::Args)]
pub struct Args {
    /// The tree (or one file) to scan
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Which scanners (repeatable) [default: both]
    #[arg(long = "scanner", value_enum)]
    scanners: Vec<Which>,
    /// Write the findings as SARIF 2.1.0 to this file
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// Leave out findings whose fingerprints are in this baseline file
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Write the current findings' fingerprints to this file, as a baseline for later scans
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Fail (exit 1) when a finding is at or above this severity
    #[arg(long, default_value = "high", value_parser = parse_severity)]
    fail_on: Severity,
    /// How to print the findings: for people, or one JSON object per line for programs
    #[arg(long, value_enum, default_value = "human")]
    output: super::Output,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    /// Credentials committed to the tree
    Secrets,
    /// Dangerous settings in pipeline files
    Pipeline,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
        .map_err(|_| "expected one of low, medium, high, critical".to_string())
}

pub fn run(args: Args) -> Result<u8, CliError> {
    if !args.path.exists() {
        return Err(CliError::Invalid(format!(
            "{} does not exist",
            args.path.display()
        )));
    }
    let scan_error = |e: scan::ScanError| CliError::Internal(e.into());
    // A baseline that cannot be read is a bad argument, not a finding (exit 2, not 1).
    let base = args
        .baseline
        .as_deref()
        .map(baseline::load)
        .transpose()
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    // Findings name files as seen from here (`src/a.env` for `pipe scan src`), so a baseline
    // written at the top still matches a scan of a part of the tree.
    let here = super::exec::current_dir()?;
    let shown: PathBuf = args
        .path
        .strip_prefix(&here)
        .unwrap_or(&args.path)
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    let shown_as = (!shown.as_os_str().is_empty()).then_some(shown);
    let which = if args.scanners.is_empty() {
        vec![Which::Secrets, Which::Pipeline]
    } else {
        args.scanners.clone()
    };
    let mut findings = Vec::new();
    if which.contains(&Which::Secrets) {
        findings.extend(
            scan::scan_secrets(
                &args.path,
                &SecretsOptions {
                    baseline: base.clone(),
                    threads: 0,
                    parent_ignores: true,
                    shown_as: shown_as.clone(),
                },
            )
            .map_err(scan_error)?,
        );
    }
    if which.contains(&Which::Pipeline) {
        let found =
            scan::pipeline::scan_pipelines(&args.path, shown_as.as_deref()).map_err(scan_error)?;
        findings.extend(
            found
                .into_iter()
                .filter(|f| !base.as_ref().is_some_and(|b| b.contains(&f.fingerprint))),
        );
    }
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    if let Some(path) = &args.sarif {
        let sarif = scan::sarif::to_sarif(&findings, env!("CARGO_PKG_VERSION"));
        std::fs::write(path, serde_json::to_vec_pretty(&sarif).unwrap_or_default())
            .map_err(Internal::io(format!("write {}", path.display())))?;
    }
    if let Some(path) = &args.write_baseline {
        baseline::save(path, &findings).map_err(scan_error)?;
    }
    let mut out = io::stdout().lock();
    let written = match args.output {
        super::Output::Human => {
            scan::report::human(&findings, &mut out, super::color_on(&io::stdout()))
        }
        super::Output::Json => scan::report::json_lines(&findings, &mut out),
    };
    match written.and_then(|_| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(Internal::io("write output")(e))
        }
        _ => {}
    }
    let failing = Counts::from_findings(&findings).at_or_above(args.fail_on);
    Ok(if failing > 0 {
        exit::JOB_FAILED
    } else {
        exit::OK
    })
}
