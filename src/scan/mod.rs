//! Built-in security scanners (secrets in a tree, dangerous pipeline settings) and SARIF output.
//!
//! Every scanner produces [`Finding`]s; the renderers ([`report`], [`sarif`]) and the
//! [`baseline`] only depend on that shared shape, so a new scanner plugs in without touching them.

pub mod baseline;
pub mod pipeline;
pub mod report;
pub mod reports;
pub mod sarif;
pub mod secrets;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use crate::severity::{ParseSeverityError, Severity};
pub use baseline::Baseline;
pub use secrets::{scan_secrets, SecretsOptions};

/// One problem found by a scanner, located in a file relative to the scanned root.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// `"secrets"` or `"pipeline"`.
    pub scanner: &'static str,
    pub rule_id: String,
    pub severity: Severity,
    /// Relative to the scanned root, with `/` separators on every platform.
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, counted in characters (Unicode scalar values), not bytes.
    pub column: usize,
    pub message: String,
    pub fix: String,
    /// Hex sha256 over rule, path and the secret: survives the line moving, so baselines and
    /// SARIF consumers keep recognising the same finding after unrelated edits.
    pub fingerprint: String,
    /// The line with the secret cut to its first 4 characters + `…` (`****` if short).
    pub preview: String,
}

/// Static description of a rule, for SARIF `rules[]` and documentation.
#[derive(Clone, Copy, Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    /// Short noun phrase, e.g. "GitHub token".
    pub title: &'static str,
    pub fix: &'static str,
}

/// Findings per severity, for summaries and exit codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    pub critical: usize,
}

impl Counts {
    pub fn from_findings(findings: &[Finding]) -> Counts {
        let mut counts = Counts::default();
        for finding in findings {
            *counts.slot(finding.severity) += 1;
        }
        counts
    }

    fn slot(&mut self, severity: Severity) -> &mut usize {
        match severity {
            Severity::Low => &mut self.low,
            Severity::Medium => &mut self.medium,
            Severity::High => &mut self.high,
            Severity::Critical => &mut self.critical,
        }
    }

    pub fn get(&self, severity: Severity) -> usize {
        match severity {
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => self.critical,
        }
    }

    /// Number of findings of `threshold` or worse (what `--fail-on` compares against).
    pub fn at_or_above(&self, threshold: Severity) -> usize {
        Severity::ALL
            .into_iter()
            .filter(|&sev| sev >= threshold)
            .map(|sev| self.get(sev))
            .sum()
    }

    pub fn total(&self) -> usize {
        self.at_or_above(Severity::Low)
    }
}

/// Stable identity of a finding: hex sha256 over rule, path and the evidence (for secrets, the
/// secret itself). Line numbers stay out, so moving the text within its file keeps baseline
/// entries and code-scanning alerts attached to it.
pub fn fingerprint(rule_id: &str, path: &str, evidence: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [rule_id, path, evidence] {
        hasher.update(part.as_bytes());
        // Separator so ("ab", "c") and ("a", "bc") differ.
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("walking the tree: {0}")]
    Walk(#[from] ignore::Error),
    #[error("{}: not a valid baseline file: {source}", path.display())]
    Baseline {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl ScanError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ScanError {
        let path = path.into();
        move |source| ScanError::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_round_trips_and_orders() {
        for sev in Severity::ALL {
            assert_eq!(sev.to_string().parse::<Severity>().unwrap(), sev);
        }
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
    }

    #[test]
    fn counts_at_or_above() {
        let counts = Counts {
            low: 1,
            medium: 2,
            high: 3,
            critical: 4,
        };
        assert_eq!(counts.at_or_above(Severity::Low), 10);
        assert_eq!(counts.at_or_above(Severity::High), 7);
        assert_eq!(counts.at_or_above(Severity::Critical), 4);
        assert_eq!(counts.total(), 10);
    }
}
