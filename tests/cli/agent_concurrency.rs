//! `concurrency: NAME`: two runs whose pipelines put a job in one group never run those jobs at
//! once, under `pipe run` (two processes in one project) and in the agent (two runs in one
//! process); the later job waits, and says for whom.

use crate::agent::{wait_for, Setup, TOKEN};
use crate::harness::{assert_no_leftovers, docker_image, spawn_until, Project, IMAGE};

/// A `deploy` job in group `production` that fails if another deploy is inside (`SYNC/inside`),
/// says it started (`SYNC/started-RUN`) and stays until the test writes `SYNC/go`.
fn deploy(sync: &str) -> String {
    format!(
        "  deploy:
    concurrency: production
    timeout: 120s
    script:
      - test ! -e {sync}/inside || exit 9
      - touch {sync}/inside {sync}/started-$PIPE_RUN_ID
      - until test -e {sync}/go; do sleep 0.05; done
      - rm {sync}/inside
"
    )
}

#[test]
fn a_second_pipe_run_waits_for_the_group_until_the_first_job_ended() {
    docker_image();
    let sync = tempfile::tempdir().unwrap();
    let mount = format!("'{}:/sync'", sync.path().display());
    let yaml = format!(
        "image: {IMAGE}\njobs:\n{}    volumes: [{mount}]\n",
        deploy("/sync")
    );
    let project = Project::new(&yaml);
    let args = ["run", "--pull", "never", "--allow-privileged"];
    let first = project.command(&args).spawn().unwrap();
    let started = sync.path().join("started-1");
    wait_for("run 1's deploy to start", || started.exists().then_some(()));
    let (second, seen) = spawn_until(
        &project,
        &args,
        "waits for concurrency group `production`, held by run 1 (job `deploy`)",
    );
    assert!(
        !sync.path().join("started-2").exists(),
        "run 2's deploy started while run 1's ran: {seen:?}"
    );
    // The store records it beside the line printed: whichever comes first.
    let job = wait_for("run 2's deploy recorded as waiting", || {
        let shown = project.pipe(&["show", "2", "--output", "json"]);
        let shown: serde_json::Value = serde_json::from_str(&shown.stdout).ok()?;
        let job = shown["jobs"][0].clone();
        (job["status"] == "waiting").then_some(job)
    });
    assert!(
        job["note"].as_str().unwrap().contains("held by run 1"),
        "{job}"
    );
    std::fs::write(sync.path().join("go"), "").unwrap();
    for child in [first, second] {
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_leftovers(pid);
    }
    assert!(sync.path().join("started-2").exists());
}

#[test]
fn the_agent_runs_one_job_of_a_group_at_a_time_and_shows_the_other_waiting() {
    let sync = tempfile::tempdir().unwrap();
    let marker = |name: &str| sync.path().join(name);
    let setup = Setup::new(&format!(
        "jobs:\n{}",
        deploy(&sync.path().display().to_string())
    ));
    setup.config(
        "backend = \"local\"\nopen_reads = true\n[concurrency]\nruns = 2",
        "",
    );
    let agent = setup.start();
    for _ in 0..2 {
        let queued = agent.post("/api/repos/web/runs", Some(TOKEN), "{\"branch\":\"main\"}");
        assert_eq!(queued.status, 202, "{}", queued.body);
    }
    // Either run may take the group first: the other is the one that waits.
    let (waiting, holder, note) = wait_for("one deploy waiting for the other", || {
        let view = |id: i64| agent.get(&format!("/api/repos/web/runs/{id}"), Some(TOKEN));
        [(1, 2), (2, 1)].into_iter().find_map(|(w, h)| {
            let answer = view(w);
            let job = answer
                .status
                .eq(&200)
                .then(|| answer.json()["jobs"][0].clone())?;
            (job["status"] == "waiting").then(|| (w, h, job["note"].as_str().unwrap().to_string()))
        })
    });
    assert!(
        note.contains(&format!("held by run {holder} (job `deploy`)")),
        "{note}"
    );
    assert!(marker(&format!("started-{holder}")).exists(), "{note}");
    assert!(!marker(&format!("started-{waiting}")).exists(), "{note}");
    let page = agent.get(&format!("/repos/web/runs/{waiting}"), Some(TOKEN));
    assert!(
        page.body.contains("waiting") && page.body.contains("held by run"),
        "{}",
        page.body
    );
    std::fs::write(marker("go"), "").unwrap();
    for id in [holder, waiting] {
        wait_for(&format!("run {id} to pass"), || {
            let view = agent
                .get(&format!("/api/repos/web/runs/{id}"), Some(TOKEN))
                .json();
            (view["run"]["state"] == "passed").then_some(())
        });
    }
    assert!(marker(&format!("started-{waiting}")).exists());
    assert!(!marker("inside").exists());
    assert_eq!(agent.stop(), 0);
}
