//! The agent's queue through its API: a run still queued can be cancelled, and then never starts.

use crate::agent::{wait_for, Setup, BOB, TOKEN};

#[test]
fn a_queued_run_that_is_cancelled_never_starts() {
    let sync = tempfile::tempdir().unwrap();
    let sync_dir = sync.path().display().to_string();
    let setup = Setup::new(&format!(
        "jobs:\n  hold:\n    timeout: 120s\n    script:\n      - touch {sync_dir}/started-$PIPE_RUN_ID\n      - until test -e {sync_dir}/go; do sleep 0.05; done\n"
    ));
    setup.config("backend = \"local\"\n[concurrency]\nruns = 1", "");
    let agent = setup.start();
    let start = |who| agent.post("/api/repos/web/runs", Some(who), "{\"branch\":\"main\"}");
    let first = start(TOKEN);
    assert_eq!(first.status, 202, "{}", first.body);
    // The one slot is taken: what is queued next waits.
    wait_for("run 1 to start", || {
        sync.path().join("started-1").exists().then_some(())
    });
    let second = start(TOKEN).json();
    let item = second["id"].as_i64().unwrap();
    let queue = agent.get("/api/queue", Some(TOKEN)).json();
    assert_eq!(queue[0]["id"], item, "{queue}");
    let cancel = format!("/api/repos/web/queue/{item}/cancel");
    assert_eq!(agent.post(&cancel, None, "").status, 401);
    let other = agent.post(
        &format!("/api/repos/web/queue/{}/cancel", item + 100),
        Some(BOB),
        "",
    );
    assert_eq!(other.status, 404, "{}", other.body);
    let cancelled = agent.post(&cancel, Some(BOB), "");
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.json()["state"], "cancelled");
    let again = agent.post(&cancel, Some(BOB), "");
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("no longer queued"), "{}", again.body);
    assert_eq!(
        agent.get("/api/queue", Some(TOKEN)).json(),
        serde_json::json!([])
    );
    // Queued after the cancelled one, of another commit: had that one started, this would be
    // run 3.
    let later = setup.push("later.txt", "later");
    let third = agent.post(
        "/api/repos/web/runs",
        Some(TOKEN),
        &format!("{{\"commit\":\"{later}\"}}"),
    );
    assert_eq!(third.status, 202, "{}", third.body);
    std::fs::write(sync.path().join("go"), "").unwrap();
    let run = agent.run_of(&later, "passed");
    assert_eq!(run["run_id"], 2, "{run}");
    let runs = agent.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(!sync.path().join("started-3").exists());
    assert_eq!(agent.stop(), 0);
}
