//! SARIF output, validated against the published SARIF 2.1.0 JSON schema (draft-07).
//!
//! The schema is the published one, kept in `tests/fixtures/sarif/` (a copy of
//! `shared/data/sarif-schema-2.1.0.json`) so the tests run wherever the tree is copied, as in
//! pipe's own pipeline; PIPE_SARIF_SCHEMA points elsewhere. No JSON-schema crate is a dependency, so this file carries a small
//! validator for exactly the keywords that schema uses; it refuses any other keyword rather
//! than skip it, and negative tests prove it rejects broken documents.

use std::path::{Path, PathBuf};

use pipe::scan::{reports, sarif, scan_secrets, Finding, SecretsOptions, Severity};
use regex::Regex;
use serde_json::{json, Map, Value};

fn schema() -> Value {
    let path = std::env::var_os("PIPE_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sarif/sarif-schema-2.1.0.json")
        });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "SARIF schema not found at {} ({e}); set PIPE_SARIF_SCHEMA",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// Draft-07 validation restricted to the keywords of the SARIF schema.
struct Validator<'s> {
    root: &'s Value,
}

impl Validator<'_> {
    fn validate(&self, instance: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(self.root, instance, "$", &mut errors);
        errors
    }

    fn resolve(&self, reference: &str) -> &Value {
        let name = reference
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        &self.root["definitions"][name]
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else {
            // `true`/`false` schemas.
            if schema == &Value::Bool(false) {
                errors.push(format!("{at}: not allowed"));
            }
            return;
        };
        for (keyword, arg) in schema {
            match keyword.as_str() {
                "$schema" | "$id" | "title" | "description" | "default" | "definitions" => {}
                "$ref" => self.check(self.resolve(arg.as_str().unwrap()), value, at, errors),
                "type" => {
                    let types: Vec<&str> = match arg {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                        _ => panic!("bad type keyword"),
                    };
                    if !types.iter().any(|t| has_type(value, t)) {
                        errors.push(format!("{at}: expected {types:?}, got {value}"));
                    }
                }
                "enum" => {
                    if !arg.as_array().unwrap().contains(value) {
                        errors.push(format!("{at}: {value} not in {arg}"));
                    }
                }
                "required" => {
                    if let Some(obj) = value.as_object() {
                        for name in arg.as_array().unwrap() {
                            if !obj.contains_key(name.as_str().unwrap()) {
                                errors.push(format!("{at}: missing required {name}"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(obj) = value.as_object() {
                        for (name, sub) in arg.as_object().unwrap() {
                            if let Some(v) = obj.get(name) {
                                self.check(sub, v, &format!("{at}.{name}"), errors);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(obj) = value.as_object() {
                        let declared = schema.get("properties").and_then(Value::as_object);
                        for (name, v) in obj {
                            if !declared.is_some_and(|d| d.contains_key(name)) {
                                self.check(arg, v, &format!("{at}.{name}"), errors);
                            }
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            self.check(arg, item, &format!("{at}[{i}]"), errors);
                        }
                    }
                }
                "minItems" => {
                    if let Some(items) = value.as_array() {
                        if (items.len() as u64) < arg.as_u64().unwrap() {
                            errors.push(format!("{at}: fewer than {arg} items"));
                        }
                    }
                }
                "uniqueItems" => {
                    if let (Some(items), true) = (value.as_array(), arg == &Value::Bool(true)) {
                        for (i, item) in items.iter().enumerate() {
                            if items[..i].contains(item) {
                                errors.push(format!("{at}[{i}]: duplicate item"));
                            }
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let Some(n) = value.as_f64() {
                        let bound = arg.as_f64().unwrap();
                        let ok = if keyword == "minimum" {
                            n >= bound
                        } else {
                            n <= bound
                        };
                        if !ok {
                            errors.push(format!("{at}: {n} violates {keyword} {bound}"));
                        }
                    }
                }
                "pattern" => {
                    if let Some(s) = value.as_str() {
                        // JSON-schema patterns are unanchored searches, like `is_match`.
                        if !Regex::new(arg.as_str().unwrap()).unwrap().is_match(s) {
                            errors.push(format!("{at}: {s:?} does not match {arg}"));
                        }
                    }
                }
                "format" => {
                    if let Some(s) = value.as_str() {
                        if !format_ok(arg.as_str().unwrap(), s) {
                            errors.push(format!("{at}: {s:?} is not a valid {arg}"));
                        }
                    }
                }
                "anyOf" | "oneOf" => {
                    let passing = arg
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|sub| {
                            let mut sub_errors = Vec::new();
                            self.check(sub, value, at, &mut sub_errors);
                            sub_errors.is_empty()
                        })
                        .count();
                    let ok = if keyword == "anyOf" {
                        passing >= 1
                    } else {
                        passing == 1
                    };
                    if !ok {
                        errors.push(format!("{at}: {passing} branches of {keyword} match"));
                    }
                }
                other => {
                    panic!("schema keyword {other:?} at {at} is not supported by this validator")
                }
            }
        }
    }
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        other => panic!("unknown type {other}"),
    }
}

/// RFC 3986 / 3339 shapes, checked loosely: the characters and the overall structure.
fn format_ok(format: &str, s: &str) -> bool {
    let uri_chars = |s: &str| {
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex = [bytes.next(), bytes.next()];
                if !hex.iter().all(|h| h.is_some_and(|h| h.is_ascii_hexdigit())) {
                    return false;
                }
            } else if !(b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)) {
                return false;
            }
        }
        true
    };
    match format {
        "uri" => {
            Regex::new(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
                .unwrap()
                .is_match(s)
                && uri_chars(s)
        }
        "uri-reference" => uri_chars(s),
        "date-time" => Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+\-]\d\d:\d\d)$")
            .unwrap()
            .is_match(s),
        other => panic!("unknown format {other}"),
    }
}

fn corpus_findings() -> Vec<Finding> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/secrets/fake-corpus");
    scan_secrets(&corpus, &SecretsOptions::default()).unwrap()
}

fn pipeline_finding() -> Finding {
    Finding {
        scanner: "pipeline",
        rule_id: "unpinned-image".to_string(),
        severity: Severity::Low,
        path: PathBuf::from("pipelines/my build.yaml"),
        line: 3,
        column: 12,
        message: "The job image is not pinned to a digest.".to_string(),
        fix: "Pin the image by digest (image@sha256:…).".to_string(),
        fingerprint: "0".repeat(64),
        preview: "image: alpine:latest".to_string(),
    }
}

#[test]
fn output_and_job_reports_validate_against_the_sarif_schema() {
    let schema = schema();
    let validator = Validator { root: &schema };
    let mut findings = corpus_findings();
    findings.push(pipeline_finding());
    // Job reports as tools write them (the fixtures jobs in tests/cli/reports.rs hand on), and
    // a run's SARIF: the scan stage's report with the job reports' runs appended.
    let reports: Vec<Value> = ["trivy-critical.sarif", "semgrep-clean.sarif"]
        .iter()
        .map(|name| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sarif/reports")
                .join(name);
            reports::parse(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect();
    let scanned = sarif::to_sarif(&findings, "0.1.0");
    let merged = reports::merge([scanned.clone()].into_iter().chain(reports.iter().cloned()));
    assert_eq!(reports::tools(&merged), ["pipe", "Trivy", "Semgrep OSS"]);
    for doc in [scanned, sarif::to_sarif(&[], "0.1.0"), merged]
        .into_iter()
        .chain(reports)
    {
        let errors = validator.validate(&doc);
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }
}

#[test]
fn validator_rejects_invalid_documents() {
    let schema = schema();
    let validator = Validator { root: &schema };
    let valid = sarif::to_sarif(&corpus_findings(), "0.1.0");
    assert!(validator.validate(&valid).is_empty());

    type Breakage = fn(&mut Value);
    let breakages: &[(&str, Breakage)] = &[
        ("wrong version", |d| d["version"] = json!("2.0.0")),
        ("runs missing", |d| {
            d.as_object_mut().unwrap().remove("runs");
        }),
        ("unknown top-level property", |d| d["extra"] = json!(1)),
        ("level outside the enum", |d| {
            d["runs"][0]["results"][0]["level"] = json!("critical")
        }),
        ("line 0", |d| {
            d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
                json!(0)
        }),
        ("fractional column", |d| {
            d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
                ["startColumn"] = json!(1.5)
        }),
        ("rule index below -1", |d| {
            d["runs"][0]["results"][0]["ruleIndex"] = json!(-2)
        }),
        ("message with neither text nor id", |d| {
            d["runs"][0]["results"][0]["message"] = json!({ "markdown": "x" })
        }),
        ("unknown property in a result", |d| {
            d["runs"][0]["results"][0]["severity"] = json!("high")
        }),
        ("non-string fingerprint", |d| {
            d["runs"][0]["results"][0]["partialFingerprints"]["pipe/v1"] = json!(7)
        }),
        ("rule without id", |d| {
            d["runs"][0]["tool"]["driver"]["rules"][0]
                .as_object_mut()
                .unwrap()
                .remove("id");
        }),
        ("driver without name", |d| {
            d["runs"][0]["tool"]["driver"]
                .as_object_mut()
                .unwrap()
                .remove("name");
        }),
        ("$schema not a URI", |d| {
            d["$schema"] = json!("sarif schema")
        }),
        ("URI with a space", |d| {
            d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
                ["uri"] = json!("a b.rs")
        }),
        ("columnKind outside the enum", |d| {
            d["runs"][0]["columnKind"] = json!("bytes")
        }),
    ];
    for (what, breakage) in breakages {
        let mut doc = valid.clone();
        breakage(&mut doc);
        assert!(
            !validator.validate(&doc).is_empty(),
            "validator accepted a document with {what}"
        );
    }
}

#[test]
fn results_reference_rules_and_carry_the_finding() {
    let mut findings = corpus_findings();
    findings.push(pipeline_finding());
    let doc = sarif::to_sarif(&findings, "1.2.3");
    assert_eq!(doc["version"], "2.1.0");
    assert!(doc["$schema"]
        .as_str()
        .unwrap()
        .ends_with("sarif-schema-2.1.0.json"));
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "pipe");
    assert_eq!(run["tool"]["driver"]["version"], "1.2.3");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());

    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "one descriptor per rule");

    for (finding, result) in findings.iter().zip(results) {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(result["ruleId"], finding.rule_id.as_str());
        assert_eq!(rules[index]["id"], finding.rule_id.as_str());
        let level = match finding.severity {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low => "note",
        };
        assert_eq!(result["level"], level);
        assert_eq!(result["message"]["text"], finding.message.as_str());
        assert_eq!(
            result["properties"]["severity"],
            finding.severity.to_string()
        );
        assert_eq!(
            result["partialFingerprints"]["pipe/v1"],
            finding.fingerprint.as_str()
        );
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(location["region"]["startLine"], finding.line);
        assert_eq!(location["region"]["startColumn"], finding.column);
        let uri = location["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains('\\'));
    }

    // A secrets rule is described from the rule table, with the fix as help text.
    let github = rules.iter().find(|r| r["id"] == "github-token").unwrap();
    assert_eq!(github["shortDescription"]["text"], "GitHub token");
    assert_eq!(github["defaultConfiguration"]["level"], "error");
    let fix = pipe::scan::secrets::rule_info("github-token").unwrap().fix;
    assert_eq!(github["help"]["text"], fix);
    // Other scanners' rules are described by their first finding; paths are URI-escaped.
    let pipeline = rules.iter().find(|r| r["id"] == "unpinned-image").unwrap();
    assert_eq!(pipeline["defaultConfiguration"]["level"], "note");
    let last = results.last().unwrap();
    assert_eq!(
        last["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "pipelines/my%20build.yaml"
    );
}

#[test]
fn empty_run_still_names_the_tool() {
    let doc = sarif::to_sarif(&[], "0.1.0");
    let run = &doc["runs"][0];
    assert_eq!(run["results"], json!([]));
    assert_eq!(run["tool"]["driver"]["rules"], json!([]));
    assert_eq!(
        run["tool"]["driver"].as_object().map(Map::len),
        Some(3),
        "name, version, rules"
    );
}
