//! SARIF 2.1.0 reports that a job's own tools wrote (`reports: {sarif: […]}`): checked for what
//! pipe reads of them, counted per severity as GitHub code scanning ranks them, and merged into
//! one document, so they stand beside the built-in scanners' findings.
//!
//! A result's severity: its `properties.security-severity` (or its rule's), a CVSS-like score
//! from 0 to 10 — 9.0 and over critical, 7.0 high, 4.0 medium, below low; without one, its SARIF
//! level — `error` high, `warning` medium, `note` low, `none` not counted. A result whose `kind`
//! says it is not a failure (`pass`, `notApplicable`, `informational`, `review`, `open`) is not
//! counted either.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::{json, Value};

use super::sarif::{SARIF_VERSION, SCHEMA_URI};
use super::{Counts, Severity};
use crate::pipeline::ArtifactPath;
use crate::workspace;

/// A report larger than this is refused rather than read into memory.
const MAX_REPORT_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report `{0}` was not produced")]
    Missing(String),
    #[error("report `{0}` is a symbolic link: pipe reads no link a job made")]
    Link(String),
    #[error("report `{0}` is a directory, not a SARIF file")]
    Directory(String),
    #[error("report `{path}` is not valid SARIF 2.1.0: {what}")]
    Invalid { path: String, what: String },
    #[error("report `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What a job's reports hold together.
#[derive(Debug, Clone)]
pub struct JobReports {
    /// One SARIF document holding every run of every report, in the order they were declared.
    pub sarif: Value,
    pub counts: Counts,
}

/// Reads each declared report from `kept`, the copy of what the job made (taken without
/// following any link: a link the job made is kept as a link, and refused here), checks it and
/// counts its results.
pub fn read(kept: &Path, reports: &[ArtifactPath]) -> Result<JobReports, ReportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    let entries = workspace::walk(kept).map_err(io(kept))?;
    let mut documents = Vec::new();
    let mut counts = Counts::default();
    for report in reports {
        // A glob selects files; a plain path names one, and anything beneath it means it is a
        // directory.
        let chosen: Vec<_> = entries
            .iter()
            .filter(|e| match report.is_glob() {
                true => report.matches(&e.path),
                false => e.path.starts_with(report.base()),
            })
            .collect();
        if chosen.is_empty() {
            return Err(ReportError::Missing(report.to_string()));
        }
        for entry in chosen {
            let name = entry.path.display().to_string();
            if entry.link.is_some() {
                return Err(ReportError::Link(name));
            }
            if !report.matches(&entry.path) {
                return Err(ReportError::Directory(report.to_string()));
            }
            if entry.size > MAX_REPORT_BYTES {
                return Err(ReportError::Invalid {
                    path: name,
                    what: format!("it has {} bytes, more than pipe reads", entry.size),
                });
            }
            let text = read_file(&kept.join(&entry.path)).map_err(io(&entry.path))?;
            let document = parse(&text).map_err(|what| ReportError::Invalid {
                path: name.clone(),
                what,
            })?;
            let found =
                count(&document).map_err(|what| ReportError::Invalid { path: name, what })?;
            for sev in Severity::ALL {
                *counts.slot(sev) += found.get(sev);
            }
            documents.push(document);
        }
    }
    Ok(JobReports {
        sarif: merge(documents),
        counts,
    })
}

fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One SARIF document holding the runs of all `documents`, in order.
pub fn merge(documents: impl IntoIterator<Item = Value>) -> Value {
    let runs: Vec<Value> = documents
        .into_iter()
        .flat_map(|mut d| match d["runs"].take() {
            Value::Array(runs) => runs,
            _ => Vec::new(),
        })
        .collect();
    json!({ "$schema": SCHEMA_URI, "version": SARIF_VERSION, "runs": runs })
}

/// The names of the tools whose runs a document holds, each once, in order.
pub fn tools(document: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in document["runs"].as_array().into_iter().flatten() {
        if let Some(name) = run["tool"]["driver"]["name"].as_str() {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The document, if it has the shape pipe reads: `version` 2.1.0 and `runs`, each naming its
/// tool. Anything else SARIF allows is kept as it is, unread.
pub fn parse(text: &[u8]) -> Result<Value, String> {
    let document: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let version = &document["version"];
    if version.as_str() != Some(SARIF_VERSION) {
        return Err(match version {
            Value::Null => "`version` is missing".to_string(),
            other => format!("`version` is {other}, not \"{SARIF_VERSION}\""),
        });
    }
    let Some(runs) = document["runs"].as_array() else {
        return Err("`runs` must be a list".into());
    };
    for (i, run) in runs.iter().enumerate() {
        match run["tool"]["driver"]["name"].as_str() {
            Some(name) if !name.trim().is_empty() => {}
            _ => return Err(format!("`runs[{i}].tool.driver.name` is missing")),
        }
        let results = &run["results"];
        if !(results.is_null() || results.is_array()) {
            return Err(format!("`runs[{i}].results` must be a list"));
        }
    }
    Ok(document)
}

/// The document's results per severity; `Err` names the first result pipe cannot read.
pub fn count(document: &Value) -> Result<Counts, String> {
    let mut counts = Counts::default();
    for (i, run) in document["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let rules = run["tool"]["driver"]["rules"].as_array();
        for (j, result) in run["results"].as_array().into_iter().flatten().enumerate() {
            let at = format!("runs[{i}].results[{j}]");
            if let Some(sev) = severity(result, rules).map_err(|e| format!("`{at}`: {e}"))? {
                *counts.slot(sev) += 1;
            }
        }
    }
    Ok(counts)
}

/// A result's severity, `None` when it does not count as a finding.
fn severity(result: &Value, rules: Option<&Vec<Value>>) -> Result<Option<Severity>, String> {
    let Some(rule_id) = result["ruleId"].as_str() else {
        return Err("`ruleId` is missing".into());
    };
    let locations = &result["locations"];
    if !(locations.is_null() || locations.is_array()) {
        return Err("`locations` must be a list".into());
    }
    if !matches!(result["kind"].as_str(), None | Some("fail")) {
        return Ok(None);
    }
    // The rule by index where given, else by id.
    let rule = rules.and_then(|rules| match result["ruleIndex"].as_u64() {
        Some(index) => rules.get(index as usize),
        None => rules.iter().find(|r| r["id"] == rule_id),
    });
    let score = Some(&result["properties"]["security-severity"])
        .filter(|v| !v.is_null())
        .or_else(|| {
            rule.map(|r| &r["properties"]["security-severity"])
                .filter(|v| !v.is_null())
        });
    if let Some(score) = score {
        return by_score(score).map(Some);
    }
    let level = match &result["level"] {
        Value::Null => rule
            .and_then(|r| r["defaultConfiguration"]["level"].as_str())
            .unwrap_or("warning"),
        Value::String(level) => level.as_str(),
        other => return Err(format!("`level` is {other}, not a string")),
    };
    match level {
        "error" => Ok(Some(Severity::High)),
        "warning" => Ok(Some(Severity::Medium)),
        "note" => Ok(Some(Severity::Low)),
        "none" => Ok(None),
        other => Err(format!(
            "`level` is \"{other}\", not one of error, warning, note, none"
        )),
    }
}

/// GitHub's reading of `security-severity`: a score from 0 to 10, written as a string or a
/// number.
fn by_score(score: &Value) -> Result<Severity, String> {
    let value = match score {
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match value {
        Some(v) if (0.0..=10.0).contains(&v) => Ok(if v >= 9.0 {
            Severity::Critical
        } else if v >= 7.0 {
            Severity::High
        } else if v >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }),
        _ => Err(format!(
            "`security-severity` is {score}, not a score from 0 to 10"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal report of `tool` with one result per `(rule, level, security-severity)`; for
    /// tests of code that reads reports.
    fn sample(tool: &str, results: &[(&str, &str, Option<&str>)]) -> Value {
        let results: Vec<Value> = results
            .iter()
            .map(|(rule, level, score)| {
                let mut result =
                    json!({ "ruleId": rule, "level": level, "message": { "text": "found" } });
                if let Some(score) = score {
                    result["properties"] = json!({ "security-severity": score });
                }
                result
            })
            .collect();
        json!({
            "version": SARIF_VERSION,
            "runs": [{ "tool": { "driver": { "name": tool } }, "results": results }],
        })
    }

    #[test]
    fn scores_rank_as_github_ranks_them_and_levels_stand_in_without_one() {
        let doc = sample(
            "trivy",
            &[
                ("CVE-1", "error", Some("9.8")),
                ("CVE-2", "warning", Some("9.0")),
                ("CVE-3", "error", Some("7.5")),
                ("CVE-4", "note", Some("4.0")),
                ("CVE-5", "error", Some("3.9")),
                ("lint-1", "error", None),
                ("lint-2", "warning", None),
                ("lint-3", "note", None),
                ("lint-4", "none", None),
            ],
        );
        let counts = count(&parse(doc.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(
            counts,
            Counts {
                critical: 2,
                high: 2,
                medium: 2,
                low: 2,
            }
        );
    }

    #[test]
    fn a_rules_score_and_default_level_count_and_passes_do_not() {
        let doc = json!({
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": { "name": "grype", "rules": [
                    { "id": "CVE-9", "properties": { "security-severity": 9.1 } },
                    { "id": "style", "defaultConfiguration": { "level": "note" } },
                ] } },
                "results": [
                    { "ruleId": "CVE-9", "message": { "text": "x" } },
                    { "ruleId": "style", "ruleIndex": 1, "message": { "text": "x" } },
                    { "ruleId": "other", "message": { "text": "x" } },
                    { "ruleId": "CVE-9", "kind": "pass", "message": { "text": "x" } },
                ],
            }],
        });
        assert_eq!(
            count(&doc).unwrap(),
            Counts {
                critical: 1,
                high: 0,
                medium: 1,
                low: 1,
            }
        );
    }

    #[test]
    fn what_pipe_cannot_read_is_named() {
        let bad = [
            (json!({ "runs": [] }).to_string(), "`version` is missing"),
            ("{".to_string(), "not JSON"),
            (
                json!({ "version": "2.0.0", "runs": [] }).to_string(),
                "`version` is \"2.0.0\"",
            ),
            (
                json!({ "version": "2.1.0" }).to_string(),
                "`runs` must be a list",
            ),
            (
                json!({ "version": "2.1.0", "runs": [{ "tool": {} }] }).to_string(),
                "`runs[0].tool.driver.name` is missing",
            ),
        ];
        for (text, says) in bad {
            let err = parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(says), "{err} should say {says}");
        }
        let no_rule = json!({ "version": "2.1.0", "runs": [{ "tool": { "driver": { "name": "t" } }, "results": [{ "level": "error" }] }] });
        assert_eq!(
            count(&no_rule).unwrap_err(),
            "`runs[0].results[0]`: `ruleId` is missing"
        );
        let bad_level = sample("t", &[("r", "fatal", None)]);
        assert!(count(&bad_level)
            .unwrap_err()
            .contains("`level` is \"fatal\""));
        let bad_score = sample("t", &[("r", "error", Some("high"))]);
        assert!(count(&bad_score)
            .unwrap_err()
            .contains("`security-severity` is \"high\""));
    }

    #[test]
    fn reports_are_read_by_path_or_glob_and_links_are_refused() {
        let kept = tempfile::tempdir().unwrap();
        let k = kept.path();
        std::fs::create_dir_all(k.join("scans")).unwrap();
        let write = |rel: &str, doc: Value| std::fs::write(k.join(rel), doc.to_string()).unwrap();
        write(
            "trivy.sarif",
            sample("trivy", &[("CVE-1", "error", Some("9.8"))]),
        );
        write(
            "scans/a.sarif",
            sample("semgrep", &[("r1", "warning", None)]),
        );
        write(
            "scans/b.sarif",
            sample("grype", &[("CVE-2", "error", Some("7.0"))]),
        );
        let paths = |ps: &[&str]| -> Vec<ArtifactPath> {
            ps.iter().map(|p| ArtifactPath::parse(p).unwrap()).collect()
        };
        let read_all = read(k, &paths(&["trivy.sarif", "scans/*.sarif"])).unwrap();
        assert_eq!(
            (
                read_all.counts.critical,
                read_all.counts.high,
                read_all.counts.medium
            ),
            (1, 1, 1)
        );
        assert_eq!(tools(&read_all.sarif), ["trivy", "semgrep", "grype"]);

        let err = read(k, &paths(&["missing.sarif"])).unwrap_err();
        assert_eq!(err.to_string(), "report `missing.sarif` was not produced");
        let err = read(k, &paths(&["nothing/*.sarif"])).unwrap_err();
        assert!(matches!(err, ReportError::Missing(_)), "{err}");
        let err = read(k, &paths(&["scans"])).unwrap_err();
        assert!(matches!(err, ReportError::Directory(_)), "{err}");

        std::os::unix::fs::symlink("/etc/passwd", k.join("link.sarif")).unwrap();
        let err = read(k, &paths(&["link.sarif"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report `link.sarif` is a symbolic link: pipe reads no link a job made"
        );
        std::fs::write(k.join("broken.sarif"), "{\"version\": \"2.1.0\"}").unwrap();
        let err = read(k, &paths(&["broken.sarif"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report `broken.sarif` is not valid SARIF 2.1.0: `runs` must be a list"
        );
    }

    #[test]
    fn merging_appends_every_run() {
        let merged = merge([
            sample("trivy", &[("CVE-1", "error", None)]),
            sample("semgrep", &[]),
        ]);
        assert_eq!(merged["version"], "2.1.0");
        assert_eq!(tools(&merged), ["trivy", "semgrep"]);
    }
}
