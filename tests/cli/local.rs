//! `pipe run --backend local`: the same semantics as host processes.

use std::io::{BufRead, BufReader};

use crate::harness::{gone, spawn_until, Contain, KillOnDrop, Project};

#[test]
fn artifacts_failures_and_skips_work_as_on_docker() {
    let project = Project::new(
        "jobs:
  build:
    script: [mkdir -p out, echo built > out/app, echo scratch > notes.txt, echo kept > report.md]
    artifacts: [out/app, '*.md']
  check: {stage: test, needs: [build], script: [cat out/app, cat report.md, test ! -e notes.txt, 'echo \"$PIPE_JOB $CI\"']}
  broken: {stage: test, needs: [], script: [exit 4]}
  after-broken: {stage: deploy, needs: [broken], script: [echo never]}
",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(ran.stdout.contains("[check] built"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("[check] kept"),
        "a glob artifact: {}",
        ran.stdout
    );
    assert!(ran.stdout.contains("[check] check true"), "{}", ran.stdout);
    assert!(
        ran.row("after-broken")
            .ends_with("skipped needs `broken`, which failed"),
        "{}",
        ran.stdout
    );
    assert!(!project.path().join("notes.txt").exists());
    assert!(
        !project.path().join(".pipe/runs/1/jobs").exists(),
        "scratch space is removed"
    );
    let logs = project.pipe(&["logs", "1", "after-broken"]);
    assert_eq!(
        logs.stdout,
        "(job `after-broken` has no log; its status: skipped)\n",
        "{}",
        logs.all()
    );
}

#[test]
fn a_job_named_dot_dot_stays_in_its_own_directories() {
    let project = Project::new(
        "jobs:
  \"..\": {script: [echo dots > f.txt], artifacts: [f.txt]}
  after: {stage: test, script: [cat f.txt]}
",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[after] dots"), "{}", ran.stdout);
    assert!(!project.path().join(".pipe/runs/1/f.txt").exists());
}

#[test]
fn a_job_cannot_reach_the_project_through_its_parents() {
    let project = Project::new("jobs:\n  where: {script: [pwd]}\n");
    git2::Repository::init(project.path()).unwrap();
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let line = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("[where] /"))
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    let dir = std::path::Path::new(line.trim_start_matches("[where] "));
    // Above the project lies its .git: `git reset --hard` in a job would reach the tree.
    let root = project.path().canonicalize().unwrap();
    assert!(
        !dir.starts_with(&root) && !dir.starts_with(project.path()),
        "the job runs in {}",
        dir.display()
    );
    assert!(!dir.exists(), "the workspace is removed after the job");
}

#[test]
fn kill_9_leaves_a_local_workspace_that_clean_removes() {
    let project = Project::new("jobs:\n  long: {script: [pwd, sleep 300]}\n");
    let (mut child, seen) = spawn_until(&project, &["run", "--backend", "local"], "$ sleep 300");
    let dir = seen
        .iter()
        .find_map(|l| l.strip_prefix("[long] /"))
        .map(|d| std::path::PathBuf::from(format!("/{}", d.trim())))
        .expect("pwd printed");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dir.is_dir(),
        "a killed pipe cannot remove {}",
        dir.display()
    );
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name.split('.').nth(1),
        Some(project.key().as_str()),
        "the workspace is named for its project, so only this project's `clean` removes it"
    );
    let clean = project.pipe(&["clean"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(
        clean.stdout.contains(" 1 local job workspace(s)"),
        "{}",
        clean.stdout
    );
    assert!(!dir.exists(), "{}", clean.stdout);
    let still_there = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read_link(p.path().join("cwd")).ok())
        .any(|cwd| cwd.starts_with(&dir));
    assert!(!still_there, "the job's `sleep 300` is stopped too");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let marks = tempfile::tempdir().unwrap();
    // A background process in the job's process group, which writes its pid to `bg`.
    let project = Project::new(&format!(
        "env: {{MARKS: {}}}
jobs:
  stuck:
    timeout: 3s
    script:
      - 'sh -c \"echo \\$\\$ > $MARKS/tmp; mv $MARKS/tmp $MARKS/bg; exec sleep 300\" &'
      - 'while [ ! -e $MARKS/bg ]; do sleep 0.05; done'
      - sleep 300
",
        marks.path().display()
    ));
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(ran.row("stuck").contains("timed out"), "{}", ran.stdout);
    let pid: i32 = std::fs::read_to_string(marks.path().join("bg"))
        .expect("the background process wrote its pid")
        .trim()
        .parse()
        .unwrap();
    let _kill = KillOnDrop(pid);
    assert!(gone(pid), "the background process {pid} is killed too");
}

#[test]
fn ctrl_c_stops_local_jobs() {
    let project = Project::new("jobs:\n  long: {script: [sleep 300]}\n");
    let (child, _) = spawn_until(&project, &["run", "--backend", "local"], "$ sleep 300");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn clean_without_an_engine_removes_scratch_space_and_keeps_snapshots() {
    let project = Project::new("jobs:\n  bad: {script: [exit 1]}\n");
    assert_eq!(project.pipe(&["run", "--backend", "local"]).code, 1);
    // What a pipe killed mid-job would leave: per-job scratch space.
    project.write(".pipe/runs/1/jobs/bad/1/workspace/file", "x");
    let mut cmd = project.command(&["clean"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "local job workspace(s) and the scratch space of 1 run(s); no Docker engine answers"
        ),
        "{stdout}"
    );
    assert!(!project.path().join(".pipe/runs/1/jobs").exists());
    assert!(
        project.path().join(".pipe/runs/1/source").is_dir(),
        "a failed run keeps its snapshot for retry"
    );
}

#[test]
fn numbers_in_env_and_matrix_mean_what_is_written() {
    let project = Project::new(
        "env: {V: 3.10, MODE: 0755, HEX: 0x1F}\njobs:\n  t: {matrix: {PY: [3.10, 3.1]}, script: ['echo \"$PY $V $MODE $HEX\"']}\n",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[t [PY=3.10]] 3.10 3.10 0755 0x1F"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("[t [PY=3.1]] 3.1 3.10"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_job_can_need_one_expansion_of_a_matrix() {
    let project = Project::new(
        "jobs:
  build: {matrix: {OS: [linux, mac]}, script: ['echo built for $OS > out-$OS'], artifacts: [out-$OS]}
  pack: {stage: test, needs: ['build [OS=linux]'], script: [cat out-linux, test ! -e out-mac]}
",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[pack] built for linux"),
        "{}",
        ran.stdout
    );
}

/// A job that starts a daemon — its own session, so out of the job's process group, and out of
/// its workspace — which writes its pid to `daemon` in `marks`, then runs `then`.
fn daemon_job(marks: &std::path::Path, timeout: &str, then: &str) -> Project {
    Project::new(&format!(
        "env: {{MARKS: {}}}
jobs:
  d:
    {timeout}
    script:
      - 'setsid sh -c \"cd /; echo \\$\\$ > $MARKS/tmp; mv $MARKS/tmp $MARKS/daemon; exec sleep 300\" > /dev/null 2>&1 &'
      - 'while [ ! -e $MARKS/daemon ]; do sleep 0.05; done'
      - echo daemon started
      - {then}
",
        marks.display()
    ))
}

/// The daemon's pid, killed when the test ends whatever happens.
fn daemon(marks: &std::path::Path) -> (i32, KillOnDrop) {
    let pid: i32 = std::fs::read_to_string(marks.join("daemon"))
        .expect("the daemon wrote its pid")
        .trim()
        .parse()
        .unwrap();
    (pid, KillOnDrop(pid))
}

/// Whether this process could make a cgroup beneath its own, as pipe does for each local job.
fn cgroups_here() -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(mount) = mounts.lines().find_map(|l| {
        let (before, after) = l.split_once(" - ")?;
        after
            .starts_with("cgroup2 ")
            .then(|| before.split_whitespace().nth(4).unwrap().to_string())
    }) else {
        return false;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let probe = std::path::Path::new(&mount)
        .join(own.trim_start_matches('/'))
        .join(format!("pipe-test-probe.{}", std::process::id()));
    let made = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    made
}

/// Whether the daemon is held the way `mode` says (where this machine allows a cgroup). This
/// test may itself run in a job of pipe: only a cgroup or marker of the daemon's own counts.
fn held(pid: i32, mode: Contain) -> Result<(), String> {
    let cgroup_of = |pid: &str| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or_default()
            .to_string()
    };
    let cgroup = cgroup_of(&pid.to_string());
    let in_cgroup = cgroup != cgroup_of("self")
        && cgroup
            .rsplit('/')
            .next()
            .is_some_and(|c| c.starts_with("pipe-job."));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let own_tag = std::env::var("PIPE_JOB_TAG").unwrap_or_default();
    let marked = environ.split(|&b| b == 0).any(|v| {
        v.strip_prefix(b"PIPE_JOB_TAG=")
            .is_some_and(|tag| tag != own_tag.as_bytes())
    });
    let ok = if mode == Contain::Cgroup && cgroups_here() {
        in_cgroup && !marked
    } else {
        marked && !in_cgroup
    };
    ok.then_some(()).ok_or(format!(
        "held by cgroup {in_cgroup} and marker {marked}: {cgroup}"
    ))
}

fn timeout_stops_a_daemon_the_job_started(mode: Contain) {
    let marks = tempfile::tempdir().unwrap();
    let project = daemon_job(marks.path(), "timeout: 3s", "sleep 300");
    let out = project
        .command_holding(mode, &["run", "--backend", "local"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (pid, _kill) = daemon(marks.path());
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("timed out after 3s"), "{stdout}");
    assert!(gone(pid), "the daemon {pid} outlived its job's timeout");
}

#[test]
fn timeout_stops_a_daemon_the_job_started_in_a_cgroup() {
    timeout_stops_a_daemon_the_job_started(Contain::Cgroup);
}

#[test]
fn timeout_stops_a_daemon_the_job_started_by_its_marker() {
    timeout_stops_a_daemon_the_job_started(Contain::Marker);
}

fn a_daemon_ends_with_its_job(mode: Contain) {
    let marks = tempfile::tempdir().unwrap();
    let project = daemon_job(marks.path(), "", "echo done");
    let out = project
        .command_holding(mode, &["run", "--backend", "local"])
        .output()
        .unwrap();
    let (pid, _kill) = daemon(marks.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(gone(pid), "the daemon {pid} outlived its job");
}

#[test]
fn a_daemon_ends_with_its_job_in_a_cgroup() {
    a_daemon_ends_with_its_job(Contain::Cgroup);
}

#[test]
fn a_daemon_ends_with_its_job_by_its_marker() {
    a_daemon_ends_with_its_job(Contain::Marker);
}

fn clean_stops_a_daemon_of_a_killed_pipe(mode: Contain) {
    let marks = tempfile::tempdir().unwrap();
    let project = daemon_job(marks.path(), "", "sleep 300");
    let mut child = project
        .command_holding(mode, &["run", "--backend", "local"])
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let started = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        .any(|l| l == "[d] daemon started");
    assert!(started, "the job started its daemon");
    let (pid, _kill) = daemon(marks.path());
    let held = held(pid, mode);
    child.kill().unwrap();
    child.wait().unwrap();
    held.unwrap();
    // A killed pipe cannot stop the daemon, and no other test's `clean` touches this project's.
    assert!(!gone(pid), "the daemon {pid} outlives the killed pipe");
    let clean = project.pipe(&["clean"]);
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(gone(pid), "`pipe clean` stops the daemon {pid}");
}

#[test]
fn clean_stops_a_daemon_of_a_killed_pipe_in_a_cgroup() {
    clean_stops_a_daemon_of_a_killed_pipe(Contain::Cgroup);
}

#[test]
fn clean_stops_a_daemon_of_a_killed_pipe_by_its_marker() {
    clean_stops_a_daemon_of_a_killed_pipe(Contain::Marker);
}

#[test]
fn ctrl_c_says_it_stops_the_jobs_then_that_it_kills_them() {
    // The job ignores SIGTERM, so only the second Ctrl-C ends it.
    let project = Project::new("jobs:\n  long: {script: [\"trap '' TERM; sleep 300\"]}\n");
    let (mut child, _) = spawn_until(&project, &["run", "--backend", "local"], "$ trap");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line_with = |marker: &str| loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no {marker:?}");
        if line.contains(marker) {
            return line;
        }
    };
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(
        line_with("stopping jobs").trim(),
        "pipe: stopping jobs (press Ctrl-C again to kill them)"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(line_with("killing jobs").trim(), "pipe: killing jobs");
    assert_eq!(child.wait().unwrap().code(), Some(130));
}
