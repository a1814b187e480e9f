//! Release gates that read signals: error budgets from a real Prometheus, and the run's scan
//! findings.

use crate::harness::{git, Project, Ran};
use crate::prometheus::{free_port, Exporter, Prometheus};

const ERROR_RATIO: &str =
    "sum(increase(app_errors_total[$window])) / sum(increase(app_requests_total[$window]))";

/// A project on `main` whose release job `publish` deploys to production behind `gate`.
fn budget_project(error_budget: &str) -> Project {
    let project = Project::new(&format!(
        "jobs:
  build:
    script: [echo built]
  publish:
    stage: release
    environment: production
    gate: {{error_budget: {error_budget}}}
    script: [echo publishing]
"
    ));
    git(project.path(), &["init", "-q", "-b", "main"]);
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "init"]);
    project
}

fn release(project: &Project) -> Ran {
    project.pipe(&["release", "1", "--backend", "local"])
}

fn run_to_the_gate(project: &Project) {
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(!ran.stdout.contains("publishing"), "{}", ran.all());
}

#[test]
fn a_spent_error_budget_freezes_releases_until_it_recovers() {
    let exporter = Exporter::start(50); // half of all requests fail
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), &exporter);
    let window = "10s";
    let ratio = ERROR_RATIO.replace("$window", window);
    prometheus.wait_until(&ratio, |r| r > 0.4);

    let project = budget_project(&format!(
        "{{prometheus: '{}', query: '{ERROR_RATIO}', objective: 99%, window: {window}}}",
        prometheus.url()
    ));
    run_to_the_gate(&project);
    let refused = release(&project);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains(
            "run 1 cannot be released: release job `publish`: production's error budget is spent (\u{2212}"
        ) && refused.stderr.contains("releases are frozen until it recovers"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("publishing"), "{}", refused.all());

    // No more errors: once the window holds none, the budget is whole again.
    exporter.set_errors_per_scrape(0);
    prometheus.wait_until(&ratio, |r| r == 0.0);
    let released = release(&project);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(released.stdout.contains("publishing"), "{}", released.all());

    let show = project.pipe(&["show", "1"]);
    let audit = show.stdout;
    assert!(
        audit.contains("production's error budget is spent")
            && audit.contains("production's error budget holds (100% of 0s over 10s left)")
            && audit.contains("against an objective of 99%"),
        "the figures of both answers are in the audit trail:\n{audit}"
    );
}

#[test]
fn an_unreachable_prometheus_refuses_unless_told_to_allow() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let refusing = budget_project(&format!(
        "{{prometheus: '{url}', query: up, objective: 99.9%, window: 28d}}"
    ));
    run_to_the_gate(&refusing);
    let refused = release(&refusing);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("production's error budget cannot be read, and the gate refuses until it can (Prometheus at http://127.0.0.1:"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("publishing"), "{}", refused.all());

    let allowing = budget_project(&format!(
        "{{prometheus: '{url}', query: up, objective: 99.9%, window: 28d, on_error: allow}}"
    ));
    run_to_the_gate(&allowing);
    let released = release(&allowing);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(released.stdout.contains("publishing"), "{}", released.all());
    let show = allowing.pipe(&["show", "1"]);
    assert!(
        show.stdout.contains("released anyway (on_error: allow)"),
        "{}",
        show.stdout
    );
}

/// A run whose secrets scan finds `found` (the scan may fail without failing the run: the gate
/// is what holds the release back).
fn scanned_project(found: &str) -> Project {
    let project = Project::new(
        "jobs:
  secrets:
    stage: security-scan
    scan: [secrets]
    allow_failure: true
  publish:
    stage: release
    gate: {findings: {critical: 0, high: 0}}
    script: [echo publishing]
",
    );
    project.write("config/app.env", found);
    project
}

#[test]
fn a_run_with_a_critical_finding_is_not_released_and_a_clean_one_is() {
    let flagged = scanned_project("AWS_ACCESS_KEY_ID=AKIAZ7Q2WXPLMN4RT6YB\n");
    run_to_the_gate(&flagged);
    let refused = release(&flagged);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains(
            "run 1 cannot be released: release job `publish`: the run's scans found 1 critical (at most 0): see pipe show 1 and pipe logs 1 secrets"
        ),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("publishing"), "{}", refused.all());

    let clean = scanned_project("REGION=eu-west-1\n");
    run_to_the_gate(&clean);
    let released = release(&clean);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(released.stdout.contains("publishing"), "{}", released.all());
}
