//! Progressive releases: `steps:` taken one `pipe release` at a time, each with its variables,
//! its own gate and a `verify:` against a real Prometheus, and `--rollback` of the steps taken.

use std::path::Path;

use crate::harness::{git, spawn_until, Project};
use crate::prometheus::{Exporter, Prometheus};

/// The share of the last 10s of requests that failed, as the exporter counts them.
const ERROR_RATIO: &str =
    "sum(increase(app_errors_total[10s])) / sum(increase(app_requests_total[10s]))";

/// A project whose release job `deploy` goes through `steps`, writing each step's variables to
/// `marks/deployed`; its rollback writes them, with the build's artifact, to `marks/rolled-back`.
fn stepped_project(marks: &Path, steps: &str) -> Project {
    let marks = marks.display();
    let project = Project::new(&format!(
        "jobs:
  build:
    script: [echo built > app.txt]
    artifacts: [app.txt]
  deploy:
    stage: release
    steps: {steps}
    script: ['echo \"$PIPE_RELEASE_STEP $PIPE_RELEASE_PERCENT\" >> {marks}/deployed']
    rollback: ['echo \"$PIPE_RELEASE_STEP $PIPE_RELEASE_PERCENT $(cat app.txt)\" >> {marks}/rolled-back']
"
    ));
    git(project.path(), &["init", "-q", "-b", "main"]);
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "init"]);
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    project
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn steps_json(project: &Project) -> Vec<(String, String)> {
    let shown = project.pipe(&["show", "1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["percent"].to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn canary(prometheus: &Prometheus, after: &str) -> String {
    format!(
        "[{{name: canary, percent: 10, verify: {{prometheus: '{}', query: '{ERROR_RATIO}', below: 0.01, after: {after}}}}}, 50%, 100%]",
        prometheus.url()
    )
}

#[test]
fn a_canary_that_fails_its_verification_stops_the_release_and_rolls_back() {
    let exporter = Exporter::start(50); // half of all requests fail
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), &exporter);
    prometheus.wait_until(ERROR_RATIO, |r| r > 0.4);
    let marks = tempfile::tempdir().unwrap();
    let project = stepped_project(marks.path(), &canary(&prometheus, "1s"));

    let failed = project.pipe(&["release", "1", "--backend", "local"]);
    assert_ne!(failed.code, 0, "{}", failed.all());
    assert!(
        failed
            .stderr
            .contains("step 1 (canary, 10%) failed its verification: `"),
        "{}",
        failed.stderr
    );
    assert_eq!(read(&marks.path().join("deployed")), "canary 10\n");

    let refused = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("run 1 cannot be released: step 1 (canary, 10%) failed its verification (`")
            && refused.stderr.contains("not below 0.01")
            && refused
                .stderr
                .contains("pipe release 1 --rollback rolls it back"),
        "{}",
        refused.stderr
    );
    assert_eq!(read(&marks.path().join("deployed")), "canary 10\n");

    let rolled = project.pipe(&["release", "1", "--rollback", "--backend", "local"]);
    assert_eq!(rolled.code, 0, "{}", rolled.all());
    assert_eq!(
        read(&marks.path().join("rolled-back")),
        "canary 10 built\n",
        "the rollback ran once, for the step taken, with the run's artifacts"
    );
    assert_eq!(
        steps_json(&project),
        [
            ("10".into(), "rolled_back".into()),
            ("50".into(), "pending".into()),
            ("100".into(), "pending".into())
        ]
    );
    let show = project.pipe(&["show", "1"]).stdout;
    assert!(
        show.contains("verify: step 1 (canary, 10%) failed its verification")
            && show.contains("rollback: step 1 (canary, 10%) rolled back"),
        "the verification with its figures and the rollback are in the audit trail:\n{show}"
    );
    let again = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(again.code, 4, "{}", again.all());
    assert!(again.stderr.contains("rolled back"), "{}", again.stderr);
}

#[test]
fn a_passing_release_goes_ten_fifty_a_hundred_one_step_at_a_time() {
    let exporter = Exporter::start(0);
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), &exporter);
    prometheus.wait_until(ERROR_RATIO, |r| r == 0.0);
    let marks = tempfile::tempdir().unwrap();
    let project = stepped_project(marks.path(), &canary(&prometheus, "1s"));
    let deployed = marks.path().join("deployed");
    assert_eq!(read(&deployed), "", "the run stops at the gate");

    let first = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(read(&deployed), "canary 10\n");
    let show = project.pipe(&["show", "1"]).stdout;
    assert!(
        show.contains("awaiting release")
            && show.contains("release 1 is ready for step 2 (50%) of 3: pipe release 1")
            && show.contains("verify: step 1 (canary, 10%) verified: `")
            && show.contains("was 0, below 0.01"),
        "{show}"
    );
    assert_eq!(
        steps_json(&project),
        [
            ("10".into(), "passed".into()),
            ("50".into(), "next".into()),
            ("100".into(), "pending".into())
        ]
    );

    for _ in 0..2 {
        let ran = project.pipe(&["release", "1", "--backend", "local"]);
        assert_eq!(ran.code, 0, "{}", ran.all());
    }
    assert_eq!(read(&deployed), "canary 10\n2 50\n3 100\n");
    let show = project.pipe(&["show", "1"]).stdout;
    assert!(
        show.contains("run 1 of") && show.contains("released"),
        "{show}"
    );
    let refused = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains("run 1 cannot be released: its progressive release is complete: all 3 steps were taken, the last to 100%"),
        "{}",
        refused.stderr
    );
    assert_eq!(read(&deployed), "canary 10\n2 50\n3 100\n");
}

#[test]
fn a_step_s_own_gate_holds_it_back_until_it_is_met() {
    let marks = tempfile::tempdir().unwrap();
    let project = stepped_project(marks.path(), "[10%, {percent: 100, gate: {approvals: 1}}]");
    let first = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let refused = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("it needs 1 approval and has 0 (none yet): pipe approve 1"),
        "{}",
        refused.stderr
    );
    assert_eq!(read(&marks.path().join("deployed")), "1 10\n");
    let approved = project.pipe(&["approve", "1", "--by", "ann"]);
    assert_eq!(approved.code, 0, "{}", approved.all());
    let second = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(read(&marks.path().join("deployed")), "1 10\n2 100\n");
}

#[test]
fn ctrl_c_during_the_bake_time_leaves_the_step_to_run_again() {
    let marks = tempfile::tempdir().unwrap();
    // Nothing listens there: were the bake time not cut short, the step would fail to verify.
    let project = stepped_project(
        marks.path(),
        "[{percent: 10, verify: {prometheus: 'http://127.0.0.1:9', query: up, below: 1, after: 1h}}, 100%]",
    );
    let (mut child, _) = spawn_until(
        &project,
        &["release", "1", "--backend", "local", "--output", "json"],
        "\"status\":\"baking\"",
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    assert_eq!(
        steps_json(&project),
        [
            ("10".into(), "next".into()),
            ("100".into(), "pending".into())
        ]
    );
    let show = project.pipe(&["show", "1"]).stdout;
    assert!(
        show.contains("stopped during its bake time, before its verification")
            && show.contains("awaiting release"),
        "{show}"
    );
}

#[test]
fn a_rollback_needs_a_step_taken() {
    let marks = tempfile::tempdir().unwrap();
    let project = stepped_project(marks.path(), "[10%, 100%]");
    let refused = project.pipe(&["release", "1", "--rollback", "--backend", "local"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("run 1 cannot be rolled back: its release has taken no step that stands"),
        "{}",
        refused.stderr
    );
    assert_eq!(read(&marks.path().join("rolled-back")), "");
}

#[test]
fn again_starts_a_complete_or_rolled_back_release_over_from_step_1() {
    let marks = tempfile::tempdir().unwrap();
    let project = stepped_project(marks.path(), "[10%, 100%]");
    let deployed = marks.path().join("deployed");
    let release = |extra: &[&str]| {
        let mut args = vec!["release", "1", "--backend", "local"];
        args.extend(extra);
        project.pipe(&args)
    };
    for _ in 0..2 {
        let ran = release(&[]);
        assert_eq!(ran.code, 0, "{}", ran.all());
    }
    assert_eq!(read(&deployed), "1 10\n2 100\n");

    // Complete: --again takes step 1 again, and the next release step 2.
    let again = release(&["--again"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(read(&deployed), "1 10\n2 100\n1 10\n");
    assert_eq!(
        steps_json(&project),
        [
            ("10".into(), "passed".into()),
            ("100".into(), "next".into())
        ]
    );
    let show = project.pipe(&["show", "1"]).stdout;
    assert!(
        show.contains("release 1 is ready for step 2 (100%) of 2: pipe release 1"),
        "{show}"
    );
    let ran = release(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(read(&deployed), "1 10\n2 100\n1 10\n2 100\n");

    // Rolled back: a plain release is refused and says how to start over.
    let undone = release(&["--rollback"]);
    assert_eq!(undone.code, 0, "{}", undone.all());
    assert_eq!(
        read(&marks.path().join("rolled-back")),
        "2 100 built\n1 10 built\n"
    );
    let refused = release(&[]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains(
            "its release was rolled back; pipe release 1 --again starts it over from step 1"
        ),
        "{}",
        refused.stderr
    );
    let again = release(&["--again"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        read(&deployed).ends_with("2 100\n1 10\n"),
        "{}",
        read(&deployed)
    );
    assert_eq!(
        steps_json(&project),
        [
            ("10".into(), "passed".into()),
            ("100".into(), "next".into())
        ]
    );
}
