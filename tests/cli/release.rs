//! Recorded runs and the release gate, with the real store and real containers.

use std::path::Path;
use std::process::Command;

use crate::harness::{
    assert_no_leftovers, docker, docker_image, git, gone, spawn_command_until, Contain, KillOnDrop,
    Project, Ran, IMAGE,
};

/// A project in a git repository on `main`, with a release stage behind a gate.
fn gated_project(gate: &str) -> Project {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  build:
    script: [mkdir -p out, cp version.txt out/version]
    artifacts: [out]
  deploy-staging:
    stage: deploy
    environment: staging
    script: [cat out/version]
  publish:
    stage: release
    environment: production
    gate: {gate}
    script: ['echo \"publishing $(cat out/version) built from $(cat version.txt)\"']
"
    ));
    project.write("version.txt", "v1\n");
    commit(project.path(), "main");
    project
}

/// Makes `dir` a repository on `branch` with everything in it committed.
fn commit(dir: &Path, branch: &str) {
    git(dir, &["init", "-q", "-b", branch]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
}

fn pipe_at(project: &Project, now: &str, args: &[&str]) -> Ran {
    let mut cmd = project.command(args);
    cmd.env("PIPE_NOW", now).env("PIPE_USER", "tester");
    let out = cmd.output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        pid: 0,
    }
}

const WEDNESDAY: &str = "2026-11-25T12:00:00Z";
const THREE_DAYS_LATER: &str = "2026-11-30T10:00:00Z"; // a Monday
const SATURDAY: &str = "2026-11-28T12:00:00Z";

#[test]
fn a_run_stops_at_the_gate_and_releases_days_later_on_its_own_snapshot() {
    let project = gated_project("{approvals: 1, branches: [main]}");
    let ran = project.run_docker(&[]);
    assert_eq!(
        ran.code,
        0,
        "a run stopped at the gate succeeded:\n{}",
        ran.all()
    );
    assert!(
        ran.stderr
            .contains("release 1 awaits 1 approval: pipe approve 1, then pipe release 1"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.stdout.contains("publishing"),
        "release jobs never run with the rest"
    );
    let show = project.pipe(&["show", "1"]);
    assert!(show.stdout.contains("awaiting release"), "{}", show.stdout);
    assert!(show.row("publish").contains("pending"), "{}", show.stdout);

    // The tree changes after the run; the release must not see it.
    project.write("version.txt", "v2-uncommitted\n");
    let refused = pipe_at(&project, WEDNESDAY, &["release", "1", "--pull", "never"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert_eq!(
        refused.stderr.trim(),
        "pipe: run 1 cannot be released: release job `publish`: it needs 1 approval and has 0 (none yet): pipe approve 1"
    );

    let approved = pipe_at(
        &project,
        WEDNESDAY,
        &["approve", "1", "--by", "ann", "--comment", "ship it"],
    );
    assert_eq!(approved.code, 0, "{}", approved.all());
    assert!(
        approved
            .stderr
            .contains("release 1 is ready: pipe release 1"),
        "{}",
        approved.stderr
    );

    let released = pipe_at(
        &project,
        THREE_DAYS_LATER,
        &["release", "1", "--pull", "never"],
    );
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(
        released
            .stdout
            .contains("[publish] publishing v1 built from v1"),
        "original snapshot and artifacts: {}",
        released.stdout
    );

    let again = pipe_at(
        &project,
        THREE_DAYS_LATER,
        &["release", "1", "--pull", "never"],
    );
    assert_eq!(again.code, 4);
    assert!(
        again
            .stderr
            .contains("run 1 is already released; `pipe release 1 --again`"),
        "{}",
        again.stderr
    );
    let forced = pipe_at(
        &project,
        THREE_DAYS_LATER,
        &["release", "1", "--again", "--pull", "never"],
    );
    assert_eq!(forced.code, 0, "{}", forced.all());

    let show = project.pipe(&["show", "1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(show.stdout.trim()).unwrap();
    assert_eq!(v["state"], "released");
    assert_eq!(v["releases"], 2);
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "started",
            // Who the run is by, for gates with `not_author`.
            "author",
            "awaiting_release",
            "release refused",
            "approve",
            "release",
            "released",
            "release refused",
            "release",
            "released"
        ]
    );
    assert!(v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["detail"] == "released again (--again)"));

    let live = project.pipe(&["runs", "--environment", "production"]);
    assert!(live.row("1").starts_with("1 released"), "{}", live.stdout);
    assert!(project
        .pipe(&["runs", "--environment", "nowhere"])
        .stdout
        .contains("no runs that deployed to nowhere"));
}

#[test]
fn each_unmet_condition_is_named() {
    // A freeze window.
    let project = gated_project("{approvals: 0, freeze: ['Sat 00:00 - Mon 00:00 UTC']}");
    assert_eq!(project.run_docker(&[]).code, 0);
    let frozen = pipe_at(&project, SATURDAY, &["release", "last", "--pull", "never"]);
    assert_eq!(frozen.code, 4);
    assert!(
        frozen.stderr.contains(
            "releases are frozen now (Sat 00:00 - Mon 00:00 UTC; it is Sat 2026-11-28 12:00 UTC)"
        ),
        "{}",
        frozen.stderr
    );
    // A clock that cannot be read is an error, not the real time.
    let typo = pipe_at(
        &project,
        "2026-11-28",
        &["release", "last", "--pull", "never"],
    );
    assert_eq!(typo.code, 2, "{}", typo.all());
    assert!(
        typo.stderr
            .contains("PIPE_NOW `2026-11-28` is not an RFC 3339 time"),
        "{}",
        typo.stderr
    );

    // A ref the gate does not allow.
    let project = gated_project("{branches: [main, 'release/*'], tags: ['v*']}");
    Command::new("git")
        .args(["checkout", "-qb", "feature/x"])
        .current_dir(project.path())
        .status()
        .unwrap();
    assert_eq!(project.run_docker(&[]).code, 0);
    let wrong_ref = pipe_at(&project, WEDNESDAY, &["release", "1", "--pull", "never"]);
    assert_eq!(wrong_ref.code, 4);
    assert!(
        wrong_ref.stderr.contains("release job `publish`: the run was built from branch `feature/x`, and its gate allows only branches main, release/* or tags v*"),
        "{}",
        wrong_ref.stderr
    );
}

/// A project in a git repository on `main` whose release jobs run as host processes and say
/// what they ship.
fn local_gated_project(release_jobs: &str) -> Project {
    let project = Project::new(&format!(
        "jobs:\n  build: {{script: [cat version.txt]}}\n{release_jobs}"
    ));
    project.write("version.txt", "v1\n");
    commit(project.path(), "main");
    project
}

fn local(project: &Project, args: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.extend(["--backend", "local"]);
    pipe_at(project, WEDNESDAY, &all)
}

fn show_json(project: &Project, run: &str) -> serde_json::Value {
    let show = project.pipe(&["show", run, "--output", "json"]);
    assert_eq!(show.code, 0, "{}", show.all());
    serde_json::from_str(show.stdout.trim()).unwrap()
}

fn refusals(v: &serde_json::Value) -> Vec<String> {
    v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "release refused")
        .map(|a| a["detail"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_release_job_s_own_gate_must_hold() {
    let project = local_gated_project(
        "  to-prod: {stage: release, gate: {approvals: 1, branches: [main]}, script: [echo shipped to prod]}
  to-rc: {stage: release, gate: {approvals: 2, branches: ['release/*']}, script: [echo shipped to rc]}
",
    );
    git(project.path(), &["checkout", "-qb", "release/1.0"]);
    let ran = local(&project, &["run"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let refused_ref = "release job `to-prod`: the run was built from branch `release/1.0`, and its gate allows only branches main";
    assert!(
        ran.stderr
            .contains(&format!("release 1 waits at the gate: {refused_ref}")),
        "the next step names the job whose gate refuses: {}",
        ran.stderr
    );
    // Approvals: the most any release job asks for.
    for by in ["ann", "bob"] {
        let approved = pipe_at(&project, WEDNESDAY, &["approve", "1", "--by", by]);
        assert_eq!(approved.code, 0, "{}", approved.all());
    }
    let approved = pipe_at(&project, WEDNESDAY, &["approve", "1", "--by", "cid"]);
    assert!(
        approved.stdout.contains("3 of 2 approval(s)"),
        "{}",
        approved.all()
    );
    // `to-rc` allows this branch, `to-prod` does not: a release runs both, so it is refused.
    let refused = local(&project, &["release", "1"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert_eq!(
        refused.stderr.trim(),
        format!("pipe: run 1 cannot be released: {refused_ref}")
    );
    assert!(project.log("1", "to-rc").is_empty() && project.log("1", "to-prod").is_empty());
    let v = show_json(&project, "1");
    assert_eq!(v["state"], "awaiting_release");
    assert_eq!(refusals(&v), [refused_ref]);

    // On main it is the other job's gate that refuses, whatever the approvals.
    git(project.path(), &["checkout", "-q", "main"]);
    assert_eq!(local(&project, &["run"]).code, 0);
    let refused = local(&project, &["release", "2"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains("release job `to-rc`: the run was built from branch `main`, and its gate allows only branches release/*"),
        "{}",
        refused.stderr
    );
}

#[test]
fn release_waits_for_the_approvals_of_the_job_that_asks_the_most() {
    let project = local_gated_project(
        "  a: {stage: release, gate: {approvals: 1}, script: [echo shipped a]}
  b: {stage: release, gate: {approvals: 2}, script: [echo shipped b]}
",
    );
    let ran = local(&project, &["run"]);
    assert!(
        ran.stderr
            .contains("release 1 awaits 2 approvals: pipe approve 1, then pipe release 1"),
        "{}",
        ran.stderr
    );
    let approved = pipe_at(&project, WEDNESDAY, &["approve", "1", "--by", "ann"]);
    assert!(
        approved.stdout.contains("1 of 2 approval(s)"),
        "{}",
        approved.all()
    );
    let refused = local(&project, &["release", "1"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("release job `b`: it needs 2 approvals and has 1 (ann): pipe approve 1"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        pipe_at(&project, WEDNESDAY, &["approve", "1", "--by", "bob"]).code,
        0
    );
    let released = local(&project, &["release", "1"]);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(released.stdout.contains("[a] shipped a") && released.stdout.contains("[b] shipped b"));
}

#[test]
fn a_run_built_from_uncommitted_changes_is_not_released() {
    let project = local_gated_project(
        "  ship: {stage: release, gate: {branches: [main]}, script: ['echo \"shipped $(cat version.txt) of $PIPE_COMMIT\"']}\n",
    );
    let head = git(project.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    // A tracked file modified and an untracked one added: two paths.
    project.write("version.txt", "v2-uncommitted\n");
    project.write("notes/new.txt", "new\n");
    let ran = local(&project, &["run", "--release"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let uncommitted = "run 1 was built from uncommitted changes on main; commit them and run again";
    assert!(
        !ran.stdout.contains("shipped") && ran.stderr.contains(uncommitted),
        "`--release` stops at the gate: {}",
        ran.all()
    );
    let row = project.pipe(&["runs"]).row("1");
    assert!(
        row.contains(&format!("{} (+2 uncommitted)", &head[..8])),
        "{row}"
    );
    let v = show_json(&project, "1");
    assert_eq!(
        (v["dirty"].clone(), v["changed_paths"].clone()),
        (true.into(), 2.into())
    );
    let show = project.pipe(&["show", "1"]);
    assert!(
        show.stdout.contains(&format!(
            "commit {head} on main plus uncommitted changes to 2 paths;"
        )),
        "{}",
        show.stdout
    );

    let refused = local(&project, &["release", "1"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert_eq!(
        refused.stderr.trim(),
        format!("pipe: run 1 cannot be released: release job `ship`: {uncommitted}")
    );
    assert!(project.log("1", "ship").is_empty(), "nothing shipped");
    assert_eq!(
        refusals(&show_json(&project, "1")),
        [format!("release job `ship`: {uncommitted}")]
    );
    // A retry runs the same snapshot, changes and all.
    assert_eq!(local(&project, &["retry", "1"]).code, 0);
    assert_eq!(show_json(&project, "2")["changed_paths"], 2);
    assert_eq!(local(&project, &["release", "2"]).code, 4);

    // Committed, the same content releases as before; pipe's own `.pipe` does not count.
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "v2"]);
    let head = git(project.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    assert!(project.path().join(".pipe/runs/1").is_dir());
    assert_eq!(local(&project, &["run"]).code, 0);
    let v = show_json(&project, "3");
    assert_eq!(
        (v["dirty"].clone(), v["changed_paths"].clone()),
        (false.into(), 0.into())
    );
    let released = local(&project, &["release", "3"]);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(
        released
            .stdout
            .contains(&format!("[ship] shipped v2-uncommitted of {head}")),
        "{}",
        released.stdout
    );
    let show = project.pipe(&["show", "3"]);
    assert!(show.stdout.contains("released"), "{}", show.stdout);
    assert!(
        show.stdout.contains(&format!("commit {head} on main;")),
        "a released run names the commit it shipped, and nothing else: {}",
        show.stdout
    );
}

#[test]
fn failed_and_gateless_runs_cannot_be_approved_or_released() {
    let project = gated_project("{approvals: 1}");
    project.write(
        "pipe.yml",
        &std::fs::read_to_string(project.path().join("pipe.yml"))
            .unwrap()
            .replace("cp version.txt", "cp missing.txt"),
    );
    assert_eq!(project.run_docker(&[]).code, 1);
    for args in [
        &["approve", "1"][..],
        &["release", "1", "--pull", "never"][..],
    ] {
        let refused = project.pipe(args);
        assert_eq!(refused.code, 4, "{}", refused.all());
        assert!(refused.stderr.contains("run 1 failed, and only a run whose jobs before the gate all passed can be released"), "{}", refused.stderr);
    }
    let plain = Project::new(&format!("image: {IMAGE}\njobs:\n  a: {{script: [echo]}}\n"));
    assert_eq!(plain.run_docker(&[]).code, 0);
    let refused = plain.pipe(&["approve", "last"]);
    assert_eq!(refused.code, 4);
    assert!(
        refused.stderr.contains("run 1 has no release stage"),
        "{}",
        refused.stderr
    );
    let unknown = plain.pipe(&["show", "7"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("no run 7"), "{}", unknown.stderr);
}

#[test]
fn run_release_goes_through_a_gate_that_asks_for_no_approval() {
    let project = gated_project("{approvals: 0, branches: [main]}");
    let ran = project.run_docker(&["--release"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[publish] publishing v1 built from v1"),
        "{}",
        ran.stdout
    );
    assert!(project.pipe(&["runs"]).row("1").starts_with("1 released"));

    let needs_approval = gated_project("{approvals: 1}");
    let ran = needs_approval.run_docker(&["--release"]);
    assert_eq!(ran.code, 0);
    assert!(!ran.stdout.contains("publishing"), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("release 1 awaits 1 approval"),
        "{}",
        ran.stderr
    );
}

#[test]
fn retry_failed_reruns_only_what_did_not_pass() {
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  build: {{script: [mkdir -p out, echo built > out/x], artifacts: [out]}}\n  flaky: {{stage: test, script: [cat out/x, test -f fixed]}}\n  after: {{stage: deploy, script: [echo after]}}\n"
    ));
    let first = project.run_docker(&[]);
    assert_eq!(first.code, 1);
    // Only the snapshot of the run is used: fixing the tree now must not help...
    project.write("fixed", "");
    let retry = project.pipe(&["retry", "1", "--failed", "--pull", "never"]);
    assert_eq!(retry.code, 1, "{}", retry.all());
    assert!(
        !retry.stdout.contains("[build] started"),
        "passed jobs are kept: {}",
        retry.stdout
    );
    assert!(
        retry.stdout.contains("[flaky] built"),
        "artifacts of kept jobs reach the rerun: {}",
        retry.stdout
    );
    // ...while a fresh run of the changed tree passes.
    assert_eq!(project.run_docker(&[]).code, 0);
    let logs = project.pipe(&["logs", "1", "flaky"]);
    assert_eq!(
        logs.stdout.matches("$ test -f fixed").count(),
        2,
        "the log keeps both runs of the job: {}",
        logs.stdout
    );
    assert_eq!(
        logs.stdout.matches("--- run again ---").count(),
        1,
        "and marks where the second starts: {}",
        logs.stdout
    );
}

#[test]
fn kill_9_leaves_the_run_interrupted_and_clean_removes_its_container() {
    docker_image();
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  long: {{script: [sleep 300]}}\n"
    ));
    let (mut child, _) =
        crate::harness::spawn_until(&project, &["run", "--pull", "never"], "$ sleep 300");
    child.kill().unwrap();
    child.wait().unwrap();
    let runs = project.pipe(&["runs"]);
    assert!(
        runs.row("1").starts_with("1 interrupted"),
        "{}",
        runs.stdout
    );
    assert!(project
        .pipe(&["show", "1"])
        .row("long")
        .contains("interrupted"));
    let own = format!("label=dev.pipe.pid={}", child.id());
    assert!(
        !crate::harness::docker(&["ps", "-aq", "--filter", &own])
            .trim()
            .is_empty(),
        "a killed pipe cannot remove its own container"
    );
    // `clean` removes the project's own leftovers only: exactly this run's container and volume.
    let clean = project.pipe(&["clean"]);
    assert!(clean.code == 0, "{}", clean.all());
    assert!(
        clean
            .stdout
            .starts_with("removed 1 container(s), 1 volume(s), 0 local job workspace(s)"),
        "{}",
        clean.all()
    );
    crate::harness::assert_no_leftovers(child.id());
}

#[test]
fn two_processes_record_runs_at_once() {
    docker_image();
    // Each run's job leaves a marker and ends only once all three runs' are there: the three
    // processes were recording runs at once.
    let sync = tempfile::tempdir().unwrap();
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  a:\n    timeout: 60s\n    volumes: ['{}:/sync']\n    script: [touch /sync/$PIPE_RUN_ID, 'until [ $(ls /sync | wc -l) -ge 3 ]; do sleep 0.05; done']\n  b: {{script: [echo b]}}\n",
        sync.path().display()
    ));
    let children: Vec<_> = (0..3)
        .map(|_| {
            project
                .command(&["run", "--pull", "never", "--allow-privileged"])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = project.pipe(&["runs", "--output", "json"]);
    let states: Vec<serde_json::Value> = runs.json_events();
    let mut ids: Vec<i64> = states
        .iter()
        .map(|r| r["run_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    assert!(
        states
            .iter()
            .all(|r| r["state"] == "passed" && r["schema"] == 2),
        "{states:?}"
    );
}

#[test]
fn logs_follow_a_running_job_to_its_end() {
    docker_image();
    use std::io::BufRead;
    docker_image();
    // The job ends only when the test creates `go`.
    let sync = tempfile::tempdir().unwrap();
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  slow:\n    timeout: 60s\n    volumes: ['{}:/sync']\n    script: [echo begin, 'until test -e /sync/go; do sleep 0.05; done', echo end]\n",
        sync.path().display()
    ));
    let (child, _) = crate::harness::spawn_until(
        &project,
        &["run", "--pull", "never", "--allow-privileged"],
        "[slow] begin",
    );
    // The log is written as the job goes, not when it ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !project.log("1", "slow").contains("begin") {
        assert!(
            std::time::Instant::now() < deadline,
            "the log never said begin"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let so_far = project.log("1", "slow");
    assert!(!so_far.contains("end"), "while the job waits: {so_far:?}");
    // `--follow` prints what is there, then goes on with what comes.
    let mut follow = project
        .command(&["logs", "last", "slow", "--follow"])
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().map_while(Result::ok).any(|l| l == "begin"),
        "follow printed begin"
    );
    std::fs::write(sync.path().join("go"), "").unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "end"), "{rest:?}");
    assert_eq!(follow.wait().unwrap().code(), Some(0));
    assert!(child.wait_with_output().unwrap().status.success());
    let all = project.pipe(&["logs", "1"]);
    assert!(all.stdout.contains("$ echo end"), "{}", all.stdout);
    let unknown = project.pipe(&["logs", "1", "slwo"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("did you mean `slow`?"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn recent_runs_can_be_retried_and_older_snapshots_are_dropped_unless_gated() {
    let project = Project::new("jobs:\n  check: {script: [cat input.txt]}\n");
    project.write(
        "gated.yml",
        "jobs:\n  check: {script: [echo ok]}\n  ship: {stage: release, gate: {approvals: 1}, script: [echo ok]}\n",
    );
    let local = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--backend", "local"]);
        project.pipe(&all)
    };
    assert_eq!(local(&["run", "gated.yml"]).code, 0);
    project.write("input.txt", "first\n");
    assert_eq!(local(&["run"]).code, 0);
    project.write("input.txt", "changed\n");
    let retry = local(&["retry", "2"]);
    assert_eq!(
        retry.code,
        0,
        "a passed run can be retried: {}",
        retry.all()
    );
    assert!(
        retry.stdout.contains("[check] first"),
        "the retry runs on run 2's snapshot: {}",
        retry.stdout
    );
    for _ in 0..10 {
        assert_eq!(local(&["run"]).code, 0);
    }
    // Runs 4 to 13 are the ten newest.
    let source = |run: u32| project.path().join(format!(".pipe/runs/{run}/source"));
    assert!(source(1).is_dir(), "a run at the gate keeps its snapshot");
    assert!(!source(2).exists() && !source(3).exists());
    assert!(source(4).is_dir());
    let gone = local(&["retry", "2"]);
    assert_ne!(gone.code, 0);
    assert!(
        gone.stderr.contains(
            "the source snapshot of run 2 is gone: pipe keeps those of the 10 newest runs"
        ),
        "{}",
        gone.all()
    );
}

#[test]
fn two_releases_of_one_run_at_once_release_it_once() {
    let project = Project::new(
        "jobs:\n  build: {script: [echo built]}\n  ship: {stage: release, gate: {approvals: 0}, script: [sleep 1, echo shipped]}\n",
    );
    assert_eq!(project.pipe(&["run", "--backend", "local"]).code, 0);
    let start = || {
        project
            .command(&["release", "1", "--backend", "local"])
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(4)],
        "one releases, the other is refused:\n{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(
        project
            .log("1", "ship")
            .lines()
            .filter(|l| *l == "shipped")
            .count(),
        1,
        "the release jobs ran once"
    );
}

#[test]
fn approvers_are_named_and_counted_once_whatever_the_case() {
    let project = Project::new(
        "jobs:\n  build: {script: [echo built]}\n  ship: {stage: release, gate: {approvals: 2}, script: [echo shipped]}\n",
    );
    assert_eq!(project.pipe(&["run", "--backend", "local"]).code, 0);
    let first = project.pipe(&["approve", "1", "--by", "ann"]);
    assert!(first.stdout.contains("1 of 2"), "{}", first.all());
    let same = project.pipe(&["approve", "1", "--by", " ANN "]);
    assert!(
        same.stdout.contains("(already counted): 1 of 2"),
        "{}",
        same.all()
    );
    let nameless = project.pipe(&["approve", "1", "--by", "  "]);
    assert_eq!(nameless.code, 2, "{}", nameless.all());
    assert!(nameless.stderr.contains("needs the approver's name"));
    // A blank PIPE_USER falls back to the login name rather than counting as someone.
    let mut blank = project.command(&["approve", "1"]);
    blank.env("PIPE_USER", "   ");
    let out = blank.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 of 2") && !stdout.contains("approved by  "),
        "{stdout}"
    );
}

#[test]
fn after_a_rollback_the_older_run_is_what_is_live() {
    let project = Project::new(
        "jobs:\n  build: {script: [echo built]}\n  publish: {stage: release, environment: production, gate: {approvals: 0}, script: [echo shipped]}\n",
    );
    for _ in 0..2 {
        let ran = project.pipe(&["run", "--release", "--backend", "local"]);
        assert_eq!(ran.code, 0, "{}", ran.all());
    }
    let live = |project: &Project| {
        let runs = project.pipe(&["runs", "--environment", "production", "--output", "json"]);
        // One JSON object per run, the live one first.
        let first = runs.stdout.lines().next().expect("a run");
        let v: serde_json::Value = serde_json::from_str(first).unwrap();
        v["run_id"].as_i64().unwrap()
    };
    assert_eq!(live(&project), 2);
    let rollback = project.pipe(&["release", "1", "--again", "--backend", "local"]);
    assert_eq!(rollback.code, 0, "{}", rollback.all());
    assert_eq!(live(&project), 1, "run 1 was deployed last");
}

#[test]
fn release_and_retry_run_where_the_run_ran() {
    // No image: on Docker these jobs could not run at all.
    let project = Project::new(
        "jobs:\n  build: {script: [echo built]}\n  ship: {stage: release, gate: {approvals: 0}, script: [echo shipped]}\n",
    );
    assert_eq!(project.pipe(&["run", "--backend", "local"]).code, 0);
    let released = project.pipe(&["release", "1"]);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(
        released.stdout.contains("[ship] shipped"),
        "{}",
        released.stdout
    );
    let retried = project.pipe(&["retry", "1"]);
    assert_eq!(retried.code, 0, "{}", retried.all());
}

#[test]
fn asking_about_runs_where_none_were_made_creates_nothing() {
    let project = Project::new("jobs:\n  a: {script: [echo]}\n");
    assert_eq!(project.pipe(&["runs"]).stdout, "no runs yet\n");
    for args in [
        &["show", "1"][..],
        &["logs", "last"],
        &["approve", "1"],
        &["release", "1"],
    ] {
        let ran = project.pipe(args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.all());
        assert!(ran.stderr.contains("no run "), "{}", ran.stderr);
    }
    assert!(!project.path().join(".pipe").exists());
}

#[test]
fn json_output_says_when_a_run_stops_at_the_gate() {
    let project = Project::new(
        "jobs:\n  build: {script: [echo built]}\n  ship: {stage: release, gate: {approvals: 1}, script: [echo shipped]}\n",
    );
    let ran = project.pipe(&["run", "--backend", "local", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let events = ran.json_events();
    let last = events.last().expect("events");
    assert_eq!(last["event"], "awaiting_release", "{}", ran.stdout);
    assert_eq!(last["run_id"], 1);
    assert_eq!(
        last["next"],
        "release 1 awaits 1 approval: pipe approve 1, then pipe release 1"
    );
    assert_eq!(events[events.len() - 2]["event"], "run_finished");
}

#[test]
fn a_run_says_when_its_release_will_need_allow_privileged() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  build: {{script: [echo built]}}
  publish:
    stage: release
    gate: {{approvals: 0}}
    privileged: true
    script: [echo publishing]
"
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stderr.contains("release 1 is ready: pipe release 1 --allow-privileged (release job `publish` asks for `privileged: true`, which pipe refuses without --allow-privileged)"),
        "{}",
        ran.stderr
    );
    let refused = project.pipe(&["release", "1", "--pull", "never"]);
    assert_eq!(refused.code, 4, "{}", refused.all());
    assert!(
        refused.stderr.contains("--allow-privileged"),
        "{}",
        refused.stderr
    );
}

/// A release job that, when released first, records its pid and a daemon's (its own session,
/// out of the job's process group and workspace) in `pids` and waits; released again, it says
/// whether any recorded process is still alive, and ends.
fn lingering_release(marks: &Path) -> Project {
    Project::new(&format!(
        "env: {{MARKS: {}}}
jobs:
  build: {{script: [echo built]}}
  ship:
    stage: release
    gate: {{approvals: 0}}
    script:
      - 'for p in $(cat $MARKS/pids 2>/dev/null); do grep -qs \"^State:.[^Z]\" /proc/$p/status && echo \"still alive: $p\"; done; true'
      - 'if [ -e $MARKS/pids ]; then echo second release; exit 0; fi'
      - 'echo $$ > $MARKS/pids'
      - 'setsid sh -c \"cd /; echo \\$\\$ >> $MARKS/pids; exec sleep 300\" > /dev/null 2>&1 &'
      - 'while [ $(wc -l < $MARKS/pids) -lt 2 ]; do sleep 0.05; done'
      - echo first release waits
      - sleep 300
",
        marks.display()
    ))
}

fn a_killed_release_is_stopped_before_the_run_is_released_again(contain: Contain) {
    let marks = tempfile::tempdir().unwrap();
    let project = lingering_release(marks.path());
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let (mut first, _) = spawn_command_until(
        project.command_holding(contain, &["release", "1", "--backend", "local"]),
        "[ship] first release waits",
    );
    let pids: Vec<i32> = std::fs::read_to_string(marks.path().join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let _kill: Vec<KillOnDrop> = pids.iter().map(|&p| KillOnDrop(p)).collect();
    first.kill().unwrap();
    first.wait().unwrap();

    let out = project
        .command_holding(contain, &["release", "1", "--backend", "local"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("[ship] second release"), "{stdout}");
    assert!(
        !stdout.contains("[ship] still alive"),
        "the first release's job ran beside the second: {stdout}"
    );
    for pid in pids {
        assert!(gone(pid), "{pid} of the first release is still running");
    }
}

#[test]
fn a_killed_release_is_stopped_before_the_run_is_released_again_in_a_cgroup() {
    a_killed_release_is_stopped_before_the_run_is_released_again(Contain::Cgroup);
}

#[test]
fn a_killed_release_is_stopped_before_the_run_is_released_again_by_its_marker() {
    a_killed_release_is_stopped_before_the_run_is_released_again(Contain::Marker);
}

#[test]
fn a_killed_release_container_is_removed_before_the_run_is_released_again() {
    docker_image();
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  build: {{script: [echo built]}}
  ship: {{stage: release, gate: {{approvals: 0}}, script: [echo release waits, 'trap \"exit 143\" TERM; sleep 300 & wait']}}
"
    ));
    assert_eq!(project.run_docker(&[]).code, 0);
    let unix_now = || {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
    };
    let since = unix_now();
    let release = || {
        spawn_command_until(
            project.command(&["release", "1", "--pull", "never"]),
            "[ship] release waits",
        )
        .0
    };
    let mut first = release();
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = release();
    let until = unix_now();
    let (one, two) = (first.id().to_string(), second.id().to_string());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(second.wait().unwrap().code(), Some(143));
    assert_no_leftovers(second.id());

    // The engine's own record: every container of the first release died before the second
    // release made one.
    let events = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        // Label filters are all required: other tests' runs 1 are filtered out below.
        "--filter",
        "label=dev.pipe.run=1",
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"dev.pipe.pid\"}}",
    ]);
    let events: Vec<(&str, &str)> = events
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|&(_, pid)| pid == one || pid == two)
        .collect();
    let second_starts = events
        .iter()
        .position(|&(_, pid)| pid == two)
        .unwrap_or_else(|| panic!("the second release made a container: {events:?}"));
    let first_died = events
        .iter()
        .rposition(|&(action, pid)| pid == one && action == "die")
        .unwrap_or_else(|| panic!("the first release's container died: {events:?}"));
    assert!(first_died < second_starts, "{events:?}");
    assert_no_leftovers(first.id());
}
