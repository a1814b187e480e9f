//! SARIF 2.1.0 output, the format code-scanning services (GitHub, GitLab, Azure DevOps) ingest.

use serde_json::{json, Value};

use super::{secrets, Finding, RuleInfo, Severity};

pub const SARIF_VERSION: &str = "2.1.0";
/// The `$id` of the OASIS schema, which consumers use to recognise the format.
pub const SCHEMA_URI: &str =
    "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json";
/// Key of the fingerprint in `partialFingerprints`; versioned so the scheme can change.
pub const FINGERPRINT_KEY: &str = "pipe/v1";

/// SARIF has three result levels; critical and high both fail a build, so both are errors.
pub fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub code scanning ranks security alerts by this 0–10 score.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

/// One run of tool "pipe" holding all findings, with a `rules[]` entry for every rule that
/// produced at least one of them (in order of first appearance).
pub fn to_sarif(findings: &[Finding], tool_version: &str) -> Value {
    let mut rule_ids: Vec<&str> = Vec::new();
    let mut rules = Vec::new();
    let mut results = Vec::with_capacity(findings.len());
    for finding in findings {
        let index = match rule_ids.iter().position(|&id| id == finding.rule_id) {
            Some(index) => index,
            None => {
                rule_ids.push(&finding.rule_id);
                rules.push(rule_descriptor(finding));
                rule_ids.len() - 1
            }
        };
        results.push(json!({
            "ruleId": finding.rule_id,
            "ruleIndex": index,
            "level": level(finding.severity),
            "message": { "text": finding.message },
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": { "uri": path_to_uri(&finding.path.to_string_lossy()) },
                    "region": { "startLine": finding.line, "startColumn": finding.column },
                },
            }],
            "partialFingerprints": { FINGERPRINT_KEY: finding.fingerprint },
            "properties": { "severity": finding.severity, "scanner": finding.scanner },
        }));
    }
    json!({
        "$schema": SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {
                "driver": {
                    "name": "pipe",
                    "version": tool_version,
                    "rules": rules,
                },
            },
            // Finding columns count characters, not the UTF-16 units SARIF assumes by default.
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

fn rule_descriptor(first: &Finding) -> Value {
    // Rules of other scanners are described by their first finding.
    let info = match first.scanner {
        secrets::SCANNER => secrets::rule_info(&first.rule_id),
        _ => None,
    };
    let (title, fix, severity) = match info {
        Some(RuleInfo {
            title,
            fix,
            severity,
            ..
        }) => (title, fix, severity),
        None => (first.message.as_str(), first.fix.as_str(), first.severity),
    };
    json!({
        "id": first.rule_id,
        "shortDescription": { "text": title },
        "help": { "text": fix },
        "defaultConfiguration": { "level": level(severity) },
        "properties": {
            "tags": ["security", first.scanner],
            "security-severity": security_severity(severity),
        },
    })
}

/// A relative URI reference for a '/'-separated relative path: every byte outside the
/// unreserved set is percent-encoded (so spaces, `#`, `?` and a `:` that would read as a
/// scheme cannot change its meaning).
fn path_to_uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_what_would_change_meaning() {
        assert_eq!(path_to_uri("src/a b#c.rs"), "src/a%20b%23c.rs");
        assert_eq!(path_to_uri("c:x/é"), "c%3Ax/%C3%A9");
    }
}
