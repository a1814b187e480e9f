//! `gate: {approvals: N, not_author: true}`: an approval by the run's author does not count,
//! and the refusal says so. The author is the local git user for `pipe run`, and the token's
//! name for a run started by hand through the agent's API.

use crate::agent::{Setup, BOB, TOKEN};
use crate::harness::{git, Project};

const PIPELINE: &str = "stages: [build, release]\njobs:\n  build:\n    script: [echo build]\n  publish:\n    stage: release\n    gate: {approvals: 1, not_author: true}\n    script: [echo published]\n";

#[test]
fn pipe_run_s_author_is_the_local_git_user_whose_approval_does_not_count() {
    let project = Project::new(PIPELINE);
    let dir = project.path();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Ann Lee"]);
    git(dir, &["config", "user.email", "ann@example.com"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    for by in ["ann@example.com", "Ann Lee"] {
        let own = project.pipe(&["approve", "1", "--by", by]);
        assert_eq!(own.code, 4, "{}", own.all());
        assert!(
            own.stderr.contains(
                "an approval of run 1 by its author (Ann Lee <ann@example.com>) does not count"
            ),
            "{}",
            own.all()
        );
    }
    let refused = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    let other = project.pipe(&["approve", "1", "--by", "bob"]);
    assert_eq!(other.code, 0, "{}", other.all());
    let released = project.pipe(&["release", "1", "--backend", "local"]);
    assert_eq!(released.code, 0, "{}", released.all());
    let shown = project.pipe(&["show", "1", "--output", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let approvers: Vec<&str> = shown["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["bob"], "{shown}");
    let audit = shown["audit"].as_array().unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "author" && a["detail"] == "Ann Lee <ann@example.com>"),
        "{shown}"
    );
}

#[test]
fn through_the_api_the_author_is_the_token_that_started_the_run() {
    let setup = Setup::new(PIPELINE);
    setup.config("backend = \"local\"\nopen_reads = true", "");
    let agent = setup.start();
    let queued = agent.post("/api/repos/web/runs", Some(TOKEN), "{\"branch\":\"main\"}");
    assert_eq!(queued.status, 202, "{}", queued.body);
    let run = agent.run_of(&setup.head(), "awaiting_release");
    let id = run["run_id"].as_i64().unwrap();
    let path = |what: &str| format!("/api/repos/web/runs/{id}/{what}");
    let own = agent.post(&path("approve"), Some(TOKEN), "");
    assert_eq!(own.status, 409, "{}", own.body);
    assert!(
        own.body.contains("by its author (alice) does not count"),
        "{}",
        own.body
    );
    assert_eq!(agent.post(&path("release"), Some(TOKEN), "").status, 409);
    let other = agent.post(&path("approve"), Some(BOB), "");
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(other.json()["count"], 1);
    let released = agent.post(&path("release"), Some(TOKEN), "");
    assert_eq!(released.status, 202, "{}", released.body);
    agent.run_of(&setup.head(), "released");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn not_author_without_approvals_is_refused_where_it_is_written() {
    let project = Project::new(
        "stages: [build, release]\njobs:\n  build: {script: [echo]}\n  publish:\n    stage: release\n    gate: {not_author: true}\n    script: [echo]\n",
    );
    let ran = project.pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr.contains("pipe.yml:6:")
            && ran
                .stderr
                .contains("`not_author` has no effect without `approvals`"),
        "{}",
        ran.all()
    );
}
