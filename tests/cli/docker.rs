//! `pipe run` on a real Docker engine. Every run is checked to leave no container or volume.

use std::path::Path;
use std::time::Duration;

use crate::harness::{assert_no_leftovers, docker, docker_image, spawn_until, Project, IMAGE};

fn pipeline(jobs: &str) -> String {
    format!("image: {IMAGE}\njobs:\n{jobs}")
}

/// A folder the test owns, mounted at `/sync` in the jobs that say `volumes: [$SYNC]` (with
/// `--allow-privileged`): jobs wait on each other's marker files there, never on sleeps.
/// `{{SYNC}}` in `jobs` becomes the mount.
fn synced(jobs: &str) -> (String, tempfile::TempDir) {
    let sync = tempfile::tempdir().unwrap();
    let jobs = jobs.replace("{SYNC}", &format!("'{}:/sync'", sync.path().display()));
    (pipeline(&jobs), sync)
}

#[test]
fn a_fan_out_runs_in_parallel() {
    // Each shard leaves a marker and ends only once all four are there: they can only pass
    // if their containers ran at once (a shard waiting alone times out).
    let (yaml, _sync) = synced(
        "  prepare: {script: [echo ready]}
  shard:
    stage: test
    matrix: {N: [1, 2, 3, 4]}
    timeout: 60s
    volumes: [{SYNC}]
    script:
      - touch /sync/$N
      - 'until [ $(ls /sync | wc -l) -ge 4 ]; do sleep 0.05; done'
      - echo shard $N
  merge: {stage: deploy, script: [echo merged]}
",
    );
    let project = Project::new(&yaml);
    let ran = project.run_docker(&["--output", "json", "--allow-privileged"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let events = ran.json_events();
    let position = |event: &str, prefix: &str| -> Vec<usize> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e["event"] == event && e["job"].as_str().is_some_and(|j| j.starts_with(prefix))
            })
            .map(|(i, _)| i)
            .collect()
    };
    let starts = position("job_started", "shard");
    let ends = position("job_finished", "shard");
    assert_eq!(starts.len(), 4);
    // All four shards were running at once: each started before any of them finished.
    assert!(
        starts.iter().max() < ends.iter().min(),
        "shards did not overlap"
    );
    assert!(position("job_started", "merge")[0] > *ends.iter().max().unwrap());
    assert!(events
        .iter()
        .all(|e| e["schema"] == 2 && e["time"].as_str().is_some_and(|t| t.ends_with('Z'))));
    let outputs: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "job_output")
        .filter_map(|e| e["line"].as_str())
        .collect();
    assert!(outputs.contains(&"shard 3"), "{outputs:?}");
    assert!(
        outputs.contains(&"$ echo shard $N"),
        "each line is echoed before it runs: {outputs:?}"
    );
}

#[test]
fn a_failure_skips_dependents_and_fails_the_run() {
    let project = Project::new(&pipeline(
        "  build: {script: [echo compiling, exit 3]}
  lint: {needs: [], script: [echo lint ok]}
  test: {stage: test, needs: [build], script: [echo never]}
  deploy: {stage: deploy, needs: [test], script: [echo never]}
",
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.row("build").starts_with("build build failed"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.row("test")
            .ends_with("skipped needs `build`, which failed"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.row("deploy")
            .ends_with("skipped needs `test`, which was skipped"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.row("lint").starts_with("lint build passed"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("[build] compiling"),
        "plain lines are prefixed with the job: {}",
        ran.stdout
    );
    assert!(ran.stdout.contains("exit code 3"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("never"));
}

#[test]
fn allow_failure_keeps_the_run_green() {
    let project = Project::new(&pipeline(
        "  flaky: {allow_failure: true, script: [exit 1]}
  after: {stage: test, script: [echo after ran]}
",
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.row("flaky").contains("allowed to fail"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("[after] after ran"));
}

#[test]
fn retry_reruns_and_timeout_kills() {
    let project = Project::new(&pipeline(
        "  flaky: {retry: 2, script: [echo trying, exit 1]}
  stuck: {timeout: 1s, script: [sleep 300]}
",
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(ran.row("flaky").contains("3 attempts"), "{}", ran.stdout);
    assert_eq!(
        ran.stdout.matches("[flaky] trying").count(),
        3,
        "{}",
        ran.stdout
    );
    assert!(
        ran.row("stuck").contains("timed out after 1s"),
        "{}",
        ran.stdout
    );
}

#[test]
fn glob_artifacts_keep_only_what_they_select() {
    let project = Project::new(&pipeline(
        "  build:
    script: [mkdir -p d/sub r/a/b, echo a > d/a.txt, echo b > d/b.log, echo c > d/sub/c.txt, echo x > r/a/b/j.xml, echo top > top.log]
    artifacts: ['d/*.txt', 'r/**/*.xml', '*.log', 'none/*.zip']
  use: {stage: test, script: [cat d/a.txt r/a/b/j.xml top.log, test ! -e d/b.log, test ! -e d/sub/c.txt]}
",
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("[build] pipe: artifact `none/*.zip` was not produced"),
        "{}",
        ran.stdout
    );
    assert!(project.artifact("1", "build", "r/a/b/j.xml").is_file());
    assert!(!project.artifact("1", "build", "pipe.yml").exists());
    assert!(
        !project.path().join(".pipe/runs/1/jobs").exists(),
        "the staging copy goes with the job's scratch space"
    );
}

#[test]
fn artifacts_reach_dependents_and_no_other_job_sees_scratch_files() {
    // `other` looks only once `build` has written its files.
    let (yaml, _sync) = synced(
        "  build:
    volumes: [{SYNC}]
    script:
      - mkdir -p out && echo built-binary > out/app
      - echo scratch > notes.txt
      - touch /sync/built
    artifacts: [out]
  other:
    needs: []
    timeout: 60s
    volumes: [{SYNC}]
    script: ['until test -e /sync/built; do sleep 0.05; done', test ! -e out/app, test ! -e notes.txt]
  test:
    stage: test
    needs: [build]
    script: [cat out/app, test ! -e notes.txt, cat src.txt]
",
    );
    let project = Project::new(&yaml);
    project.write("src.txt", "source file");
    let ran = project.run_docker(&["--allow-privileged"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[test] built-binary"), "{}", ran.stdout);
    assert!(ran.stdout.contains("[test] source file"), "{}", ran.stdout);
    let kept = std::fs::read_to_string(project.artifact("1", "build", "out/app")).unwrap();
    assert_eq!(kept, "built-binary\n", "artifacts are kept with the run");
    assert!(
        project
            .log("1", "build")
            .contains("$ echo scratch > notes.txt"),
        "full logs under .pipe"
    );
}

#[test]
fn parallel_jobs_never_see_each_others_writes() {
    // Each reads back only after both have written.
    let (yaml, _sync) = synced(
        "  a:
    timeout: 60s
    volumes: [{SYNC}]
    script: [echo a > shared.txt, touch /sync/a, 'until test -e /sync/b; do sleep 0.05; done', grep -qx a shared.txt]
  b:
    timeout: 60s
    volumes: [{SYNC}]
    script: [echo b > shared.txt, touch /sync/b, 'until test -e /sync/a; do sleep 0.05; done', grep -qx b shared.txt]
",
    );
    let project = Project::new(&yaml);
    let ran = project.run_docker(&["--allow-privileged"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        !project.path().join("shared.txt").exists(),
        "jobs never write to the project"
    );
}

#[test]
fn the_workspace_is_the_tree_as_git_sees_it() {
    let project = Project::new(&pipeline(
        "  look: {script: [test -f kept.txt, test ! -e build/out.o, test -f build/forced.o, test ! -e .git]}\n",
    ));
    project
        .write(".gitignore", "build/\n")
        .write("kept.txt", "x")
        .write("build/out.o", "x")
        .write("build/forced.o", "x");
    let repo = git2::Repository::init(project.path()).unwrap();
    // `git add -f`: tracked although ignored, so part of the tree.
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("build/forced.o")).unwrap();
    index.write().unwrap();
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true);
    let untracked: Vec<String> = repo
        .statuses(Some(&mut options))
        .unwrap()
        .iter()
        .filter_map(|s| s.path().map(str::to_string))
        .collect();
    assert!(
        !untracked.iter().any(|p| p.starts_with(".pipe")),
        "pipe's own state stays out of git status: {untracked:?}"
    );
}

#[test]
fn builtin_variables_and_env_reach_the_job() {
    let project = Project::new(&format!(
        "image: {IMAGE}\nenv: {{GREETING: hello, PORT: 8080}}\njobs:\n  show:\n    env: {{GREETING: hi}}\n    script: ['echo \"$GREETING $PORT $CI $PIPE_RUN_ID $PIPE_JOB $PIPE_STAGE $PIPE_BRANCH ${{#PIPE_COMMIT}}\"']\n"
    ));
    let repo = git2::Repository::init(project.path()).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(std::path::Path::new("pipe.yml")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
        .unwrap();
    let branch = repo.head().unwrap().shorthand().unwrap().to_string();
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .contains(&format!("[show] hi 8080 true 1 show build {branch} 40")),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_missing_image_fails_the_job_with_a_reason() {
    let project =
        Project::new("jobs:\n  a: {image: 'pipe-test/does-not-exist:0', script: [echo]}\n");
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.stdout.contains("`--pull never` forbids pulling it"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_job_without_an_image_is_refused_before_running() {
    let ran = Project::new("jobs:\n  a: {script: [echo]}\n").pipe(&["run"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("job `a` has no image") && ran.stderr.contains("pipe.yml:2:3"),
        "{}",
        ran.stderr
    );
}

#[test]
fn no_engine_is_one_line_and_exit_3() {
    let project = Project::new(&pipeline("  a: {script: [echo]}\n"));
    let mut cmd = project.command(&["run"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("start Docker, or run with `--backend local`"),
        "{stderr}"
    );
    let runs = project.pipe(&["runs"]);
    assert_eq!(
        runs.stdout, "no runs yet\n",
        "nothing is recorded for a run that could not start"
    );
}

#[test]
fn ctrl_c_stops_the_run_and_leaves_nothing_behind() {
    docker_image();
    let project = Project::new(&pipeline(
        "  long: {script: [sleep 300]}
  later: {stage: test, script: [echo never]}
",
    ));
    let (child, _) = spawn_until(&project, &["run", "--pull", "never"], "$ sleep 300");
    let pid = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_no_leftovers(pid);
    let runs = project.pipe(&["runs"]);
    assert!(
        runs.row("1").starts_with("1 interrupted"),
        "{}",
        runs.stdout
    );
    assert!(
        project.path().join(".pipe/runs/1/source").is_dir(),
        "an interrupted run keeps its snapshot for `pipe retry`"
    );
}

#[test]
fn sigterm_and_sighup_exit_143_and_leave_nothing_behind() {
    docker_image();
    let project = Project::new(&pipeline("  long: {script: [sleep 300]}\n"));
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let (child, _) = spawn_until(&project, &["run", "--pull", "never"], "$ sleep 300");
        let pid = child.id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(143), "after {signal}");
        assert_no_leftovers(pid);
    }
}

#[test]
fn fail_fast_cancels_running_jobs() {
    // `bad` fails only once `long` is running.
    let (yaml, _sync) = synced(
        "  bad:
    timeout: 60s
    volumes: [{SYNC}]
    script: ['until test -e /sync/long; do sleep 0.05; done', exit 1]
  long: {volumes: [{SYNC}], script: [touch /sync/long, sleep 300]}
",
    );
    let project = Project::new(&yaml);
    let ran = project.run_docker(&["--fail-fast", "--allow-privileged"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(ran.row("long").contains("cancelled"), "{}", ran.stdout);
}

#[test]
fn clean_removes_objects_of_dead_runs_of_its_own_project_only() {
    docker_image();
    let project = Project::new(&pipeline("  a: {script: [echo]}\n"));
    let other = Project::new(&pipeline("  a: {script: [echo]}\n"));
    // Containers labelled as pipe's, owned by a pid that cannot exist: one of this project,
    // one of another.
    let dead = |key: &str| {
        docker(&[
            "create",
            "--label",
            "dev.pipe.managed=true",
            "--label",
            "dev.pipe.pid=4194999",
            "--label",
            &format!("dev.pipe.project={key}"),
            IMAGE,
            "true",
        ])
        .trim()
        .to_string()
    };
    let own = dead(&project.key());
    let theirs = dead(&other.key());
    let ran = project.pipe(&["clean"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout
            .starts_with("removed 1 container(s), 0 volume(s)"),
        "{}",
        ran.stdout
    );
    assert!(!exists(&own), "{}", ran.stdout);
    assert!(exists(&theirs), "another project's leftovers stay");
    docker(&["rm", "-f", &theirs]);
}

fn exists(id: &str) -> bool {
    !docker(&["ps", "-aq", "--no-trunc", "--filter", &format!("id={id}")])
        .trim()
        .is_empty()
}

#[test]
fn copied_workspaces_keep_the_same_semantics() {
    // The fallback for engines that cannot mount overlays, forced.
    let (yaml, _sync) = synced(
        "  build: {volumes: [{SYNC}], script: [mkdir -p out, echo built > out/app, echo scratch > notes.txt, touch /sync/built], artifacts: [out]}
  other: {needs: [], timeout: 60s, volumes: [{SYNC}], script: ['until test -e /sync/built; do sleep 0.05; done', test ! -e out/app]}
  test: {stage: test, needs: [build], script: [cat out/app, test ! -e notes.txt, cat src.txt]}
",
    );
    let project = Project::new(&yaml);
    project.write("src.txt", "source file");
    let mut cmd = project.command(&["run", "--pull", "never", "--allow-privileged"]);
    cmd.env("PIPE_NO_OVERLAY", "1");
    docker_image();
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[test] built") && stdout.contains("[test] source file"),
        "{stdout}"
    );
    assert_no_leftovers(pid);
}

#[test]
fn a_missing_image_that_cannot_be_pulled_fails_the_job() {
    let project = Project::new("jobs:\n  a: {image: 'pipe-test/not-anywhere:0', script: [echo]}\n");
    let ran = project.pipe(&["run", "--pull", "missing"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(
        ran.stdout
            .contains("cannot pull image `pipe-test/not-anywhere:0`"),
        "{}",
        ran.stdout
    );
    assert_no_leftovers(ran.pid);
}

#[test]
fn jobs_running_at_once_never_share_ports() {
    // `b` and `c` run in network sandboxes (they come after the first wave) at the same time:
    // each must find port 8080 free and take it; once both listen (their markers), each still
    // holds its own listener and sees no other on the port.
    let listen = "timeout: 60s
    volumes: [{SYNC}]
    script:
      - '! netstat -ltn | grep -q :8080'
      - 'nc -l -p 8080 >/dev/null & echo $! > nc.pid'
      - 'until netstat -ltn | grep -q :8080; do sleep 0.05; done'
      - touch /sync/$PIPE_JOB
      - 'until test -e /sync/b && test -e /sync/c; do sleep 0.05; done'
      - 'kill -0 $(cat nc.pid)'
      - 'test $(netstat -ltn | grep -c :8080) -eq 1'";
    let (yaml, _sync) = synced(&format!(
        "  a: {{script: [echo first]}}
  b:
    stage: test
    {listen}
  c:
    stage: test
    {listen}
  d: {{stage: deploy, script: ['! netstat -ltn | grep -q :8080']}}
"
    ));
    let project = Project::new(&yaml);
    let ran = project.run_docker(&["--allow-privileged"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
}

/// The kernel's start time of this test process, as pipe records its own.
fn own_start() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(19).unwrap().to_string()
}

#[test]
fn clean_tells_a_reused_pid_from_a_live_owner() {
    docker_image();
    let project = Project::new(&pipeline("  a: {script: [true]}\n"));
    let me = std::process::id();
    let labelled = |owner: String| {
        docker(&[
            "create",
            "--label",
            "dev.pipe.managed=true",
            "--label",
            &format!("dev.pipe.owner={owner}"),
            "--label",
            &format!("dev.pipe.project={}", project.key()),
            IMAGE,
            "true",
        ])
        .trim()
        .to_string()
    };
    // A process with this pid is alive, but it is not the one that made the container.
    let reused = labelled(format!("{me}@1"));
    let live = labelled(format!("{me}@{}", own_start()));
    let clean = project.pipe(&["clean"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(!exists(&reused), "the leftover of a dead owner is removed");
    assert!(exists(&live), "a live owner's container stays");
    docker(&["rm", "-f", &live]);
}

/// A panic unwinding through an attempt drops its future as this test does: the attempt's
/// container and volume still go when the backend shuts down.
#[test]
fn an_attempt_that_never_finishes_leaves_no_container_or_volume() {
    use pipe::backend::docker::{connect, DockerBackend, Pull};
    use pipe::backend::{Backend, JobSpec, LogSink, Stop};
    use pipe::event::EventKind;

    docker_image();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("source")).unwrap();
    let run_id = format!("unfinished-{}", std::process::id());
    let spec = JobSpec {
        build: None,
        push: None,
        drift: Default::default(),
        run_id: run_id.clone(),
        job: "long".into(),
        slug: "long".into(),
        image: Some(IMAGE.into()),
        script: vec!["sleep 300".into()],
        env: Vec::new(),
        secrets: Default::default(),
        layers: vec![dir.path().join("source")],
        scratch: dir.path().join("jobs/long/1"),
        artifacts: Vec::new(),
        artifacts_dest: dir.path().join("kept"),
        privileged: false,
        network: true,
        binds: Vec::new(),
        scan: None,
        cache: None,
        services: Default::default(),
    };
    let filter = format!("label=dev.pipe.run={run_id}");
    let made = || {
        (
            docker(&["ps", "-aq", "--filter", &filter]),
            docker(&["volume", "ls", "-q", "--filter", &filter]),
        )
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let during = runtime.block_on(async {
        let backend = DockerBackend::new(connect().await.unwrap(), Pull::Never, Duration::ZERO);
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let (_stop, stop) = tokio::sync::watch::channel(Stop::No);
        let log = LogSink::new("long".into(), events);
        let mut attempt = backend.run(&spec, &log, stop);
        loop {
            tokio::select! {
                ended = &mut attempt => panic!("the job ended: {ended:?}"),
                event = received.recv() => match event.map(|e| e.kind) {
                    Some(EventKind::JobOutput { line, .. }) if line == "$ sleep 300" => break,
                    Some(_) => {}
                    None => panic!("no more output"),
                },
            }
        }
        let during = made();
        drop(attempt);
        backend.shutdown().await;
        during
    });
    assert!(!during.0.trim().is_empty(), "the job ran in a container");
    let after = made();
    assert!(
        after.0.trim().is_empty() && after.1.trim().is_empty(),
        "left behind: {after:?}"
    );
}
