//! Baselines: findings a team has accepted (or cannot fix yet), stored as a JSON file of
//! fingerprints so that a scan only fails on new findings.
//!
//! Fingerprints do not depend on line numbers, so a baseline survives unrelated edits. Rule
//! and path are stored next to each fingerprint only so that people can review the file.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Finding, ScanError};

/// Version of the file format, bumped on incompatible changes.
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Default)]
pub struct Baseline {
    fingerprints: HashSet<String>,
}

#[derive(Serialize, Deserialize)]
struct BaselineFile {
    version: u32,
    findings: Vec<Entry>,
}

#[derive(Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    path: String,
    rule_id: String,
    fingerprint: String,
}

impl Baseline {
    pub fn from_findings(findings: &[Finding]) -> Baseline {
        Baseline {
            fingerprints: findings.iter().map(|f| f.fingerprint.clone()).collect(),
        }
    }

    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

pub fn load(path: &Path) -> Result<Baseline, ScanError> {
    let text = std::fs::read_to_string(path).map_err(ScanError::io(path))?;
    let invalid = |source| ScanError::Baseline {
        path: path.to_path_buf(),
        source,
    };
    let file: BaselineFile = serde_json::from_str(&text).map_err(invalid)?;
    if file.version != FORMAT_VERSION {
        return Err(invalid(serde::de::Error::custom(format!(
            "unsupported baseline version {} (expected {FORMAT_VERSION})",
            file.version
        ))));
    }
    Ok(Baseline {
        fingerprints: file.findings.into_iter().map(|e| e.fingerprint).collect(),
    })
}

/// Writes every finding's fingerprint, sorted so that the file diffs well in review.
pub fn save(path: &Path, findings: &[Finding]) -> Result<(), ScanError> {
    let mut entries: Vec<Entry> = findings
        .iter()
        .map(|f| Entry {
            path: f.path.to_string_lossy().into_owned(),
            rule_id: f.rule_id.clone(),
            fingerprint: f.fingerprint.clone(),
        })
        .collect();
    entries.sort();
    entries.dedup();
    let file = BaselineFile {
        version: FORMAT_VERSION,
        findings: entries,
    };
    let mut text = serde_json::to_string_pretty(&file).expect("baseline serialises");
    text.push('\n');
    std::fs::write(path, text).map_err(ScanError::io(path))
}
