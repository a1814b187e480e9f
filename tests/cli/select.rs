//! Choosing what runs: `--stage`, `--until`, and `only:` on a real repository's branch and
//! changed files, with left-out jobs reported in the summary, the JSON events and the store.

use crate::harness::{git, Project, Ran};

/// Makes the project a repository on `branch` with everything in it committed.
fn commit_on(project: &Project, branch: &str) {
    git(project.path(), &["init", "-q", "-b", branch]);
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "init"]);
}

fn run_local(project: &Project, extra: &[&str]) -> Ran {
    // Which jobs a selection runs: none may be reused from the run before.
    let mut args = vec!["run", "--backend", "local", "--no-reuse"];
    args.extend(extra);
    project.pipe(&args)
}

/// The jobs that started, from the JSON events, in the order they started.
fn started(ran: &Ran) -> Vec<String> {
    let mut jobs: Vec<String> = ran
        .json_events()
        .iter()
        .filter(|e| e["event"] == "job_started")
        .map(|e| e["job"].as_str().unwrap().to_string())
        .collect();
    jobs.sort();
    jobs
}

const STAGED: &str = "jobs:
  compile: {stage: build, artifacts: [out], script: [mkdir -p out, echo built > out/bin]}
  lint: {stage: build, script: [echo linted]}
  unit: {stage: test, needs: [compile], script: [cat out/bin]}
  ship: {stage: deploy, script: [echo shipped]}
";

#[test]
fn stage_runs_its_jobs_and_what_they_need() {
    let project = Project::new(STAGED);
    let ran = run_local(&project, &["--stage", "test", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    // `unit` needs `compile` (and its artifact), not `lint`.
    assert_eq!(started(&ran), ["compile", "unit"]);
    // `ship` has no `needs`: it waits for every job of the earlier stages, `unit` included.
    let ran = run_local(&project, &["--stage", "build,deploy", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(started(&ran), ["compile", "lint", "ship", "unit"]);
    let ran = run_local(
        &project,
        &["--stage", "build", "--stage", "test", "--output", "json"],
    );
    assert_eq!(started(&ran), ["compile", "lint", "unit"]);
}

#[test]
fn until_runs_every_stage_up_to_it() {
    let project = Project::new(STAGED);
    let ran = run_local(&project, &["--until", "test", "--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(started(&ran), ["compile", "lint", "unit"]);
    let ran = run_local(&project, &["--until", "build"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.row("lint").contains("passed"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("ship"), "{}", ran.stdout);
}

#[test]
fn an_unknown_stage_is_refused_with_a_suggestion() {
    let project = Project::new(STAGED);
    for args in [["--stage", "tset"], ["--until", "tset"]] {
        let ran = run_local(&project, &args);
        assert_eq!(ran.code, 2, "{}", ran.all());
        assert!(
            ran.stderr.contains("no stage named `tset`"),
            "{}",
            ran.stderr
        );
        assert!(
            ran.stderr.contains("did you mean `test`?"),
            "{}",
            ran.stderr
        );
    }
    assert!(
        !project.path().join(".pipe/pipe.db").exists(),
        "nothing is recorded"
    );
}

const BY_BRANCH: &str = "jobs:
  build: {script: [echo built]}
  nightly: {stage: test, only: {branches: [main, 'release/*']}, needs: [], script: [echo nightly]}
  report: {stage: test, needs: [nightly], script: [echo report]}
";

#[test]
fn only_branches_leaves_jobs_out_on_other_branches_and_says_why() {
    let project = Project::new(BY_BRANCH);
    commit_on(&project, "feature/login");
    let ran = run_local(&project, &[]);
    assert_eq!(
        ran.code,
        0,
        "left-out jobs do not fail the run: {}",
        ran.all()
    );
    assert!(
        ran.row("build").starts_with("build build passed"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.row("nightly").starts_with(
            "nightly test left out only: branches `main`, `release/*` — the run is on `feature/login`"
        ),
        "{}",
        ran.stdout
    );
    assert!(
        ran.row("report")
            .starts_with("report test left out needs `nightly`, which is left out"),
        "{}",
        ran.stdout
    );
    assert!(
        !project.log("1", "nightly").contains("nightly"),
        "a left-out job never ran"
    );
    // The store has them too.
    let shown = project.pipe(&["show", "1"]);
    assert!(shown.stdout.contains("left out"), "{}", shown.stdout);

    git(project.path(), &["checkout", "-q", "-b", "release/2.0"]);
    let ran = run_local(&project, &[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.row("nightly").contains("passed"), "{}", ran.stdout);
    assert!(ran.row("report").contains("passed"), "{}", ran.stdout);
}

const BY_CHANGES: &str = "jobs:
  app: {only: {changes: ['src/**']}, script: [echo app]}
  docs: {only: {changes: ['docs/**', '*.md']}, script: [echo docs]}
  publish: {stage: test, needs: [docs], script: [echo publish]}
";

#[test]
fn only_changes_selects_jobs_by_the_files_changed_since_the_commit() {
    let project = Project::new(BY_CHANGES);
    project
        .write("src/main.txt", "v1\n")
        .write("docs/guide.md", "v1\n");
    commit_on(&project, "main");
    // A run of the working tree changes what HEAD changed (against its parent) and what is not
    // committed yet: HEAD changes only other.txt here.
    project.write("other.txt", "x\n");
    git(project.path(), &["add", "other.txt"]);
    git(project.path(), &["commit", "-qm", "other"]);
    project.write("src/main.txt", "v2\n");
    let ran = run_local(&project, &["--output", "json"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(started(&ran), ["app"]);
    let events = ran.json_events();
    let left: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "job_left_out")
        .map(|e| {
            (
                e["job"].as_str().unwrap(),
                e["stage"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        left,
        [
            (
                "docs",
                "build",
                "only: changes `docs/**`, `*.md` — none of the 2 changed file(s) match"
            ),
            ("publish", "test", "needs `docs`, which is left out"),
        ]
    );
    // Announced right after the run starts, before any job does.
    let first_left = events
        .iter()
        .position(|e| e["event"] == "job_left_out")
        .unwrap();
    let first_start = events
        .iter()
        .position(|e| e["event"] == "job_started")
        .unwrap();
    assert!(first_left < first_start);

    // Committed: the commit's own change still selects app, and docs stays out.
    git(project.path(), &["commit", "-qam", "v2"]);
    let ran = run_local(&project, &[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.row("app").contains("passed"), "{}", ran.stdout);
    assert!(ran.row("docs").contains("left out"), "{}", ran.stdout);
    assert!(ran.stdout.contains("run 2 passed"), "{}", ran.stdout);

    project.write("README.md", "new\n");
    let ran = run_local(&project, &[]);
    assert!(ran.row("docs").contains("passed"), "{}", ran.stdout);
    assert!(ran.row("publish").contains("passed"), "{}", ran.stdout);
}

#[test]
fn left_out_jobs_are_plain_lines_outside_a_terminal() {
    let project = Project::new(BY_BRANCH);
    commit_on(&project, "dev");
    let ran = run_local(&project, &["--verbose"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains(
            "[nightly] left out: only: branches `main`, `release/*` — the run is on `dev`\n"
        ),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("[report] left out: needs `nightly`, which is left out\n"),
        "{}",
        ran.stdout
    );
    // A dry run says the same before anything runs.
    let dry = project.pipe(&["run", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout
            .contains("left out: report (test): needs `nightly`, which is left out\n"),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("\nnightly "), "{}", dry.stdout);
}

#[test]
fn left_out_jobs_do_not_hold_the_gate_and_left_out_release_jobs_stay_out() {
    let project = Project::new(
        "jobs:
  build: {script: [echo built]}
  docs: {only: {branches: [main]}, script: [echo docs]}
  ship: {stage: release, gate: {approvals: 0}, script: [echo shipped]}
  announce: {stage: release, only: {branches: [main]}, gate: {approvals: 1}, script: [echo announced]}
",
    );
    commit_on(&project, "dev");
    // `announce` would wait for an approval; left out, its gate has no say.
    let ran = run_local(&project, &["--release"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.row("docs").contains("left out"), "{}", ran.stdout);
    assert!(ran.row("announce").contains("left out"), "{}", ran.stdout);
    assert!(ran.row("ship").contains("passed"), "{}", ran.stdout);
    assert!(project.log("1", "ship").contains("shipped"));
    assert!(!project.log("1", "announce").contains("announced"));
    let shown = project.pipe(&["show", "1"]);
    assert!(shown.stdout.contains("released"), "{}", shown.stdout);
}
