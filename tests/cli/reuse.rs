//! Job reuse on a real Docker engine: a job whose key (image id, script, env, matrix values,
//! files it sees, artifacts it receives) matches a passing earlier run does not run again.
//! Which jobs ran is read from the JSON events, never from timing.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{docker, docker_image, KillOnDrop, Project, Ran, IMAGE};

/// The jobs that ran, and those reused with the run they came from.
fn outcome(ran: &Ran) -> (BTreeSet<String>, BTreeMap<String, i64>) {
    assert_eq!(ran.code, 0, "{}", ran.all());
    let mut done = BTreeSet::new();
    let mut reused = BTreeMap::new();
    for e in ran.json_events() {
        if e["event"] != "job_finished" {
            continue;
        }
        assert_eq!(e["status"], "passed", "{e}");
        let job = e["job"].as_str().unwrap().to_string();
        match e["reused_from"].as_i64() {
            Some(run) => {
                assert_eq!(e["attempts"], 0, "a reused job never started: {e}");
                reused.insert(job, run);
            }
            None => {
                done.insert(job);
            }
        }
    }
    (done, reused)
}

fn set(jobs: &[&str]) -> BTreeSet<String> {
    jobs.iter().map(|j| j.to_string()).collect()
}

const JOBS: &str = "
  scripted: {inputs: [nothing], script: ['echo SCRIPT']}
  envy: {inputs: [nothing], env: {V: ENV}, script: ['echo $V']}
  sourced: {inputs: ['src/**'], script: ['cat src/a.txt']}
  globbed: {inputs: ['src/*.c'], script: ['echo only C files']}
  whole: {script: ['echo sees every file']}
  mat: {inputs: [nothing], matrix: {M: [1, MATRIX]}, script: ['echo $M']}
  upstream:
    reuse: false
    script: ['mkdir -p out', 'cat up.txt > out/u']
    artifacts: [out/u]
  consumer: {stage: test, needs: [upstream], inputs: [nothing], script: ['cat out/u']}
  ship: {stage: deploy, needs: [], inputs: [nothing], script: ['echo shipped']}
";

fn pipeline(script: &str, env: &str, matrix: &str) -> String {
    let jobs = JOBS
        .replace("SCRIPT", script)
        .replace("ENV", env)
        .replace("MATRIX", matrix);
    format!("image: {IMAGE}\njobs:{jobs}")
}

#[test]
fn each_input_kind_makes_its_job_run_again_and_nothing_else() {
    let project = Project::new(&pipeline("S1", "E1", "2"));
    project.write("src/a.txt", "a\n").write("up.txt", "u1\n");
    let json = ["--output", "json"];
    let every = set(&[
        "scripted",
        "envy",
        "sourced",
        "globbed",
        "whole",
        "mat [M=1]",
        "mat [M=2]",
        "upstream",
        "consumer",
        "ship",
    ]);
    let (done, reused) = outcome(&project.run_docker(&json));
    assert_eq!(done, every);
    assert!(reused.is_empty());

    // Nothing changed: a job that never reuses and a deploy job run, nothing else. The consumer
    // is reused although its upstream ran again: what it receives is the same.
    let (done, reused) = outcome(&project.run_docker(&json));
    assert_eq!(done, set(&["upstream", "ship"]));
    assert_eq!(reused.len(), every.len() - 2);
    assert!(reused.values().all(|&run| run == 1), "{reused:?}");

    // The pipeline file is a file of the tree: `whole`, which sees every file, runs each time.
    let (done, _) = outcome(
        &project
            .write("pipe.yml", &pipeline("S2", "E1", "2"))
            .run_docker(&json),
    );
    assert_eq!(
        done,
        set(&["scripted", "whole", "upstream", "ship"]),
        "script"
    );

    let (done, _) = outcome(
        &project
            .write("pipe.yml", &pipeline("S2", "E2", "2"))
            .run_docker(&json),
    );
    assert_eq!(done, set(&["envy", "whole", "upstream", "ship"]), "env");

    // `globbed` sees only C files under src/: the change is outside its inputs.
    let (done, reused) = outcome(&project.write("src/a.txt", "b\n").run_docker(&json));
    assert_eq!(
        done,
        set(&["sourced", "whole", "upstream", "ship"]),
        "source file"
    );
    assert_eq!(reused["globbed"], 1);

    let (done, _) = outcome(&project.write("up.txt", "u2\n").run_docker(&json));
    assert_eq!(
        done,
        set(&["upstream", "consumer", "whole", "ship"]),
        "artifact"
    );

    let (done, reused) = outcome(
        &project
            .write("pipe.yml", &pipeline("S2", "E2", "3"))
            .run_docker(&json),
    );
    assert_eq!(
        done,
        set(&["mat [M=3]", "whole", "upstream", "ship"]),
        "matrix"
    );
    assert_eq!(reused["mat [M=1]"], 1);

    // --no-reuse: every job runs.
    let (done, reused) = outcome(&project.run_docker(&["--no-reuse", "--output", "json"]));
    assert!(reused.is_empty(), "{reused:?}");
    assert_eq!(done.len(), every.len());
}

#[test]
fn a_reused_job_restores_its_artifacts_and_log_and_shows_everywhere() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  build:
    inputs: ['src/**']
    script: ['mkdir -p out', 'cat src/a.txt > out/x', 'echo built it']
    artifacts: [out/x]
  test:
    stage: test
    needs: [build]
    inputs: ['tests/**']
    script: ['cat out/x tests/t.txt']
"
    ));
    project
        .write("src/a.txt", "from build\n")
        .write("tests/t.txt", "t1\n");
    let first = project.run_docker(&[]);
    assert_eq!(first.code, 0, "{}", first.all());

    let again = project.run_docker(&[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again.stdout.contains("[build] reused (run 1)"),
        "{}",
        again.stdout
    );
    assert_eq!(again.row("build"), "build build passed 0.0s reused (run 1)");
    assert_eq!(
        std::fs::read_to_string(project.artifact("2", "build", "out/x")).unwrap(),
        "from build\n"
    );
    let log = project.log("2", "build");
    assert!(
        log.contains("built it"),
        "the log of the run that ran: {log}"
    );
    assert!(log.ends_with("pipe: job reused (run 1)\n"), "{log}");
    let shown = project.pipe(&["show", "2"]);
    assert!(shown.stdout.contains("reused (run 1)"), "{}", shown.stdout);
    let json = project.pipe(&["show", "2", "--output", "json"]);
    assert!(
        json.stdout.contains("\"note\":\"reused (run 1)\""),
        "{}",
        json.stdout
    );

    // A dependent that runs gets the reused job's artifacts as if it had run; a reuse of a
    // reuse still names the run that ran the job, and its log says so once.
    let (done, reused) = outcome(
        &project
            .write("tests/t.txt", "t2\n")
            .run_docker(&["--output", "json"]),
    );
    assert_eq!(done, set(&["test"]));
    assert_eq!(reused["build"], 1);
    assert!(project.log("3", "test").contains("from build\nt2\n"));
    assert_eq!(project.log("3", "build").matches("reused (run").count(), 1);

    // Once the artifacts of the run holding them are gone, the job runs again; it makes the
    // same artifact, so its dependent is still reused.
    std::fs::remove_dir_all(project.path().join(".pipe/runs/3/artifacts")).unwrap();
    let (done, reused) = outcome(&project.run_docker(&["--output", "json"]));
    assert_eq!(done, set(&["build"]));
    assert_eq!(reused["test"], 3);
}

#[test]
fn an_image_rebuilt_under_the_same_tag_makes_its_jobs_run_again() {
    docker_image();
    // A tag of this test's own, rebuilt with other content; removed at the end.
    let tag = format!("pipe-test/reuse-{}:1", std::process::id());
    let build = |content: &str| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM {IMAGE}\nRUN echo {content} > /version\n"),
        )
        .unwrap();
        docker(&["build", "-q", "-t", &tag, ctx.path().to_str().unwrap()]);
    };
    build("one");
    let project = Project::new(&format!(
        "image: {tag}\njobs:\n  check: {{script: ['cat /version']}}\n"
    ));
    let json = ["--output", "json"];
    let (done, _) = outcome(&project.run_docker(&json));
    assert_eq!(done, set(&["check"]));
    let (_, reused) = outcome(&project.run_docker(&json));
    assert_eq!(reused["check"], 1);
    build("two");
    let (done, _) = outcome(&project.run_docker(&json));
    docker(&["rmi", "-f", &tag]);
    assert_eq!(done, set(&["check"]));
    assert!(project.log("3", "check").contains("two"));
}

#[test]
fn inputs_and_reuse_are_checked_like_every_key() {
    let project = Project::new(
        "jobs:\n  a: {inputs: ['../secret'], script: [echo]}\n  b: {reuse: maybe, script: [echo]}\n  c: {inputs: ['src/['], script: [echo]}\n",
    );
    let ran = project.pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("input `../secret` leads out of the project"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("`reuse` must be true or false"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("input `src/[` is not a glob"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_run_of_an_unchanged_tree_shares_the_earlier_snapshot_and_a_change_is_copied() {
    let project = Project::new("jobs:\n  show: {reuse: false, script: ['cat data.txt']}\n");
    project.write("data.txt", "one\n");
    let local = |args: &[&str]| {
        let ran = project.pipe(&[args, &["--backend", "local"]].concat());
        assert_eq!(ran.code, 0, "{}", ran.all());
    };
    let runs = project.path().join(".pipe/runs");
    local(&["run"]);
    assert!(runs.join("1/source/data.txt").is_file());

    local(&["run"]);
    assert!(
        !runs.join("2/source").exists(),
        "nothing of the unchanged tree was copied"
    );
    assert_eq!(
        std::fs::read_to_string(runs.join("2/source-run")).unwrap(),
        "1"
    );
    assert!(project.log("2", "show").contains("one\n"));

    // A retry of the run that shares runs on the same snapshot, without a copy either.
    local(&["retry", "2"]);
    assert!(!runs.join("3/source").exists());
    assert!(project.log("3", "show").contains("one\n"));

    project.write("data.txt", "two\n");
    local(&["run"]);
    assert_eq!(
        std::fs::read_to_string(runs.join("4/source/data.txt")).unwrap(),
        "two\n",
        "a changed tree gets a snapshot of its own"
    );
    assert!(project.log("4", "show").contains("two\n"));
    assert!(
        runs.join("1/source/data.txt").is_file(),
        "the shared snapshot is never written to"
    );
    assert_eq!(
        std::fs::read_to_string(runs.join("1/source/data.txt")).unwrap(),
        "one\n"
    );
}

#[test]
fn a_shared_snapshot_stays_while_a_kept_run_shares_it() {
    let project = Project::new("jobs:\n  show: {reuse: false, script: ['cat data.txt']}\n");
    project.write("data.txt", "one\n");
    let runs = project.path().join(".pipe/runs");
    for _ in 0..12 {
        let ran = project.pipe(&["run", "--backend", "local"]);
        assert_eq!(ran.code, 0, "{}", ran.all());
    }
    // Run 1 is past the ten newest, but runs 3 to 12 run on its snapshot.
    assert!(runs.join("1/source/data.txt").is_file());
    let retry = project.pipe(&["retry", "3", "--backend", "local"]);
    assert_eq!(retry.code, 0, "{}", retry.all());
    assert!(project.log("13", "show").contains("one\n"));
}

/// A retry is live before it is recorded as running (its secrets resolve first): a run started
/// meanwhile prunes the snapshots past the ten newest, but not the one the retry holds.
#[test]
fn a_retry_holds_its_snapshot_while_a_run_started_meanwhile_prunes() {
    // The secret's command waits at a marker, once, when `.hold` is there.
    let project = Project::new(
        "secrets:\n  TOKEN:\n    command: 'if [ -f .hold ]; then rm .hold; touch .held; while [ ! -f .go ]; do sleep 0.05; done; fi; echo token-value'\n    timeout: 5m\njobs:\n  show: {reuse: false, secrets: [TOKEN], script: ['cat data.txt']}\n",
    );
    let runs = project.path().join(".pipe/runs");
    for i in 1..=10 {
        project.write("data.txt", &format!("run {i}\n"));
        let ran = project.pipe(&["run", "--backend", "local"]);
        assert_eq!(ran.code, 0, "{}", ran.all());
    }
    project.write(".hold", "");
    let retry = project
        .command(&["retry", "1", "--backend", "local"])
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(retry.id() as i32);
    while !project.path().join(".held").exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Run 11 makes run 1 the eleventh newest.
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        runs.join("1/source/data.txt").is_file(),
        "held by the retry"
    );
    project.write(".go", "");
    let retried = retry.wait_with_output().unwrap();
    assert!(
        retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
    assert!(project.log("12", "show").contains("run 1\n"));
}

#[test]
fn a_reused_scan_job_restores_its_sarif_report_and_findings() {
    let project = Project::new("jobs:\n  secrets: {stage: security-scan, scan: [secrets]}\n");
    // A test-mode key (invented here): a low finding, below the default `fail_on`.
    project.write("notes.txt", "STRIPE=sk_test_Z7Q2WXPLMN4RT6YBz7q2wxpl\n");
    let first = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let (done, reused) = outcome(&project.pipe(&["run", "--backend", "local", "--output", "json"]));
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(reused["secrets"], 1);
    let sarif = |run: &str| {
        std::fs::read(
            project
                .path()
                .join(format!(".pipe/runs/{run}/scan/secrets.sarif")),
        )
        .unwrap_or_else(|e| panic!("run {run}'s SARIF report: {e}"))
    };
    assert_eq!(sarif("2"), sarif("1"));
    let findings = |run: &str| {
        let show = project.pipe(&["show", run, "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(show.stdout.trim()).unwrap();
        let job = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job"] == "secrets")
            .unwrap()
            .clone();
        job["findings"].clone()
    };
    let first = findings("1");
    assert_eq!(first["low"], 1, "{first}");
    assert_eq!(
        findings("2"),
        first,
        "the reused job's counts are recorded with run 2"
    );

    // Without the report it would restore, the scan runs again.
    std::fs::remove_file(project.path().join(".pipe/runs/2/scan/secrets.sarif")).unwrap();
    let (done, _) = outcome(&project.pipe(&["run", "--backend", "local", "--output", "json"]));
    assert_eq!(done, set(&["secrets"]));
    assert!(!sarif("3").is_empty());
}
