//! `reports: {sarif: […]}`: SARIF files a job's own tools write, read when the job passes,
//! counted with the built-in scanners' findings (the findings gate, `pipe show`, the run's
//! SARIF) and restored when the job is reused.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{assert_no_leftovers, docker_image, Project, Ran, IMAGE};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sarif/reports")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sarif_schema() -> jsonschema::Validator {
    let path = std::env::var_os("PIPE_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sarif/sarif-schema-2.1.0.json")
        });
    let text = std::fs::read_to_string(&path).unwrap();
    // The published schema's `language` pattern has a lone `]`, which ECMAScript reads as a
    // literal and Rust's regex refuses: escaped here, to the same meaning.
    let text = text.replace(
        r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#,
        r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$""#,
    );
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options().build(&schema).unwrap()
}

fn show_json(project: &Project, run: &str) -> Value {
    let shown = project.pipe(&["show", run, "--output", "json"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    serde_json::from_str(shown.stdout.trim()).unwrap()
}

fn job<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {shown}"))
}

/// A project whose `scan` job, in a container, writes the scanner output `report` where its
/// `reports:` say, and whose release is gated on no critical finding.
fn scanned_in_a_container(report: &str) -> Project {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  scan:
    stage: test
    script:
      - mkdir -p reports
      - cp scanner-output.json reports/trivy.sarif
    reports: {{sarif: ['reports/*.sarif']}}
  publish:
    stage: release
    gate: {{findings: {{critical: 0}}}}
    script: [echo publishing]
"
    ));
    project.write("scanner-output.json", report);
    project
}

fn release_on_docker(project: &Project) -> Ran {
    let released = project.pipe(&["release", "1", "--pull", "never"]);
    assert_no_leftovers(released.pid);
    released
}

#[test]
fn a_critical_finding_in_a_jobs_report_holds_the_release_and_a_clean_report_does_not() {
    docker_image();
    let flagged = scanned_in_a_container(&fixture("trivy-critical.sarif"));
    let ran = flagged.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let refused = release_on_docker(&flagged);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("the run's scans found 1 critical (at most 0): see pipe show 1"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("publishing"), "{}", refused.all());

    // `pipe show` names the tool beside the counts, in the table and in JSON.
    let shown = flagged.pipe(&["show", "1"]);
    assert!(
        shown
            .stdout
            .contains("Trivy: 2 findings: 1 critical, 0 high, 1 medium, 0 low"),
        "{}",
        shown.stdout
    );
    let doc = show_json(&flagged, "1");
    crate::schemas::assert_fit("show.v2.json", std::slice::from_ref(&doc));
    let scan = job(&doc, "scan");
    assert_eq!(scan["tools"], serde_json::json!(["Trivy"]), "{scan}");
    assert_eq!(scan["findings"]["critical"], 1, "{scan}");

    // The run's SARIF holds the report's run, and is SARIF 2.1.0 by the published schema.
    let sarif = flagged.pipe(&["show", "1", "--sarif"]);
    assert_eq!(sarif.code, 0, "{}", sarif.all());
    let merged: Value = serde_json::from_str(&sarif.stdout).unwrap();
    let errors: Vec<String> = sarif_schema()
        .iter_errors(&merged)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(merged["runs"][0]["tool"]["driver"]["name"], "Trivy");
    assert_eq!(merged["runs"][0]["results"][0]["ruleId"], "CVE-2099-0001");

    let clean = scanned_in_a_container(&fixture("semgrep-clean.sarif"));
    let ran = clean.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let released = release_on_docker(&clean);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(released.stdout.contains("publishing"), "{}", released.all());
    assert_eq!(
        job(&show_json(&clean, "1"), "scan")["findings"]["medium"],
        1
    );
}

#[test]
fn a_report_that_is_missing_invalid_or_a_link_fails_its_job_naming_it() {
    let project = Project::new(
        "jobs:
  invalid:
    script: [\"echo '{\\\"version\\\": \\\"2.1.0\\\"}' > out.sarif\"]
    reports: {sarif: [out.sarif]}
  missing:
    script: [echo]
    reports: {sarif: [out.sarif]}
  link:
    script: [ln -s /etc/passwd out.sarif]
    reports: {sarif: [out.sarif]}
  failed:
    script: [exit 3]
    reports: {sarif: [out.sarif]}
",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    for (job, says) in [
        (
            "invalid",
            "pipe: report `out.sarif` is not valid SARIF 2.1.0: `runs` must be a list",
        ),
        ("missing", "pipe: report `out.sarif` was not produced"),
        (
            "link",
            "pipe: report `out.sarif` is a symbolic link: pipe reads no link a job made",
        ),
    ] {
        let log = project.log("1", job);
        assert!(log.contains(says), "job {job}: {log}");
        assert!(ran.row(job).contains("failed"), "{}", ran.all());
    }
    // A missing report is said once: not also as a missing artifact.
    assert!(!project.log("1", "missing").contains("artifact"));
    // A job that failed anyway is not read: its exit code says why.
    let failed = project.log("1", "failed");
    assert!(!failed.contains("report"), "{failed}");
    assert!(ran.row("failed").contains("exit code 3"), "{}", ran.all());
}

#[test]
fn a_reused_job_restores_its_reports_and_findings() {
    let project = Project::new(
        "jobs:
  scan:
    script: [cp scanner-output.json trivy.sarif]
    reports: {sarif: [trivy.sarif]}
",
    );
    project.write("scanner-output.json", &fixture("trivy-critical.sarif"));
    let first = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let second = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(second.all().contains("reused"), "{}", second.all());
    let kept = |run: &str| {
        std::fs::read(
            project
                .path()
                .join(format!(".pipe/runs/{run}/scan/scan.sarif")),
        )
        .unwrap_or_else(|e| panic!("run {run}'s SARIF report: {e}"))
    };
    assert_eq!(kept("2"), kept("1"));
    let (one, two) = (show_json(&project, "1"), show_json(&project, "2"));
    assert_eq!(job(&two, "scan")["findings"], job(&one, "scan")["findings"]);
    assert_eq!(job(&two, "scan")["tools"], serde_json::json!(["Trivy"]));

    // Without the report it would restore, the job runs again.
    std::fs::remove_file(project.path().join(".pipe/runs/2/scan/scan.sarif")).unwrap();
    let third = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(third.code, 0, "{}", third.all());
    assert_eq!(kept("3"), kept("1"));
    assert_eq!(
        job(&show_json(&project, "3"), "scan")["findings"]["critical"],
        1
    );
}

#[test]
fn bad_reports_settings_are_named_where_they_are_written() {
    let ran = Project::new(
        "jobs:
  a:
    script: [echo]
    reports: {sarif: [../out.sarif, '/etc/x.sarif'], html: [a.html]}
  b:
    script: [echo]
    reports: [b.sarif]
  c:
    scan: [secrets]
    reports: {sarif: [c.sarif]}
",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    for (at, says) in [
        (
            "4:23",
            "report `../out.sarif` must stay inside the workspace",
        ),
        (
            "4:37",
            "report `/etc/x.sarif` must stay inside the workspace",
        ),
        ("4:54", "unknown key `html` in `reports`"),
        ("7:14", "`reports` must be a mapping, found a list"),
        ("10:5", "`reports` has no effect on a scan job"),
    ] {
        assert!(
            ran.stderr.contains(&format!("[pipe.yml:{at}]")),
            "{at}\n{}",
            ran.stderr
        );
        assert!(ran.stderr.contains(says), "{says}\n{}", ran.stderr);
    }
}
