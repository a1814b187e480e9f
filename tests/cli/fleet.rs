//! A team's shared run store from the command line: `--store URL` or `PIPE_STORE`, against a
//! real PostgreSQL that the test process starts for itself (see `src/pg/testdb.rs`).

#[path = "../../src/pg/testdb.rs"]
pub mod testdb;

use crate::harness::{finish, git, Project, Ran};

fn gated_project() -> Project {
    let project = Project::new(
        "jobs:
  build:
    script: [echo built]
  publish:
    stage: release
    gate: {approvals: 1}
    script: [echo published]
",
    );
    git(project.path(), &["init", "-q", "-b", "main"]);
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "init"]);
    project
}

#[test]
fn a_run_in_the_shared_store_is_listed_shown_approved_and_released_through_it() {
    let db = testdb::database();
    let project = gated_project();
    let shared = |args: &[&str]| -> Ran {
        let mut cmd = project.command(args);
        cmd.env("PIPE_STORE", &db.url).env("PIPE_USER", "tester");
        finish(cmd)
    };
    let ran = shared(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stderr.contains("release 1 awaits 1 approval"),
        "{}",
        ran.stderr
    );
    let own = project.pipe(&["runs", "--output", "json"]);
    assert_eq!(
        own.stdout,
        "",
        "the project's own store has no runs: {}",
        own.all()
    );

    let listed = shared(&["runs", "--output", "json"]);
    let runs: Vec<serde_json::Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{}", listed.all());
    assert_eq!(runs[0]["state"], "awaiting_release");
    let show = shared(&["show", "1"]);
    assert!(show.stdout.contains("awaiting release"), "{}", show.all());

    let approved = shared(&["approve", "1", "--by", "ann"]);
    assert_eq!(approved.code, 0, "{}", approved.all());
    assert!(
        approved.stderr.contains("release 1 is ready"),
        "{}",
        approved.all()
    );
    let released = shared(&["release", "1", "--backend", "local"]);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(
        released.stdout.contains("[publish] published"),
        "{}",
        released.all()
    );
    let show = project.pipe(&["show", "1", "--store", &db.url, "--output", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(shown["state"], "released", "{}", show.stdout);
}

#[test]
fn a_store_that_is_not_postgres_or_cannot_be_reached_is_refused_without_its_password() {
    let project = Project::new("jobs:\n  a: {script: [echo]}\n");
    let wrong = project.pipe(&["runs", "--store", "mysql://db/pipe"]);
    assert_ne!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("a shared store is a PostgreSQL URL"),
        "{}",
        wrong.stderr
    );
    let unreachable = project.pipe(&["runs", "--store", "postgres://ci:s3cret@127.0.0.1:1/pipe"]);
    assert_ne!(unreachable.code, 0);
    assert!(
        unreachable
            .stderr
            .contains("postgres://ci@127.0.0.1:1/pipe"),
        "{}",
        unreachable.stderr
    );
    assert!(
        !unreachable.all().contains("s3cret"),
        "{}",
        unreachable.all()
    );
}

#[test]
fn an_agent_store_that_is_not_postgres_is_refused_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "data_dir = \"data\"\nstore = \"mysql://ci:s3cret@db/pipe\"\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pipe"));
    cmd.args(["agent", "check-config", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let ran = finish(cmd);
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr
            .contains("store `mysql://ci@db/pipe` is not a PostgreSQL URL"),
        "{}",
        ran.stderr
    );
    assert!(!ran.all().contains("s3cret"), "{}", ran.all());
}
