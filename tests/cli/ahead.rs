//! Jobs prepared ahead on Docker: a job's container exists while the job it needs still runs,
//! gets that job's artifacts made after it was created, and is removed when the job never
//! runs (a failure skips it, the run is interrupted).

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::harness::{assert_no_leftovers, docker, docker_image, Project, IMAGE};

/// `make` waits for the test's `go` marker in the folder the test owns, then runs `then`;
/// `use` needs it and prints its artifact.
fn project(sync: &Path, then: &str) -> Project {
    Project::new(&format!(
        "image: {IMAGE}
jobs:
  make:
    volumes: ['{}:/sync']
    artifacts: [out.txt]
    script:
      - touch /sync/started
      - 'until test -e /sync/go; do sleep 0.05; done'
      - {then}
  use: {{needs: [make], script: [cat out.txt]}}
",
        sync.display()
    ))
}

fn start(project: &Project) -> Child {
    docker_image();
    project
        .command(&["run", "--pull", "never", "--allow-privileged"])
        .spawn()
        .expect("start pipe")
}

/// Polls until `done` holds, or panics after a minute, letting `make` finish first so that
/// its run ends rather than waiting for the marker for ever.
fn wait_for(sync: &Path, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            std::fs::write(sync.join("go"), "").unwrap();
            panic!("never saw {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `make` runs and `use`'s container has been created, not started, beside it.
fn wait_until_prepared(sync: &Path, pid: u32) {
    wait_for(sync, "make start", || sync.join("started").exists());
    let filters = [
        format!("label=dev.pipe.pid={pid}"),
        "label=dev.pipe.job=use".to_string(),
    ];
    wait_for(sync, "use's container made ahead", || {
        let states = docker(&[
            "ps",
            "-a",
            "--filter",
            &filters[0],
            "--filter",
            &filters[1],
            "--format",
            "{{.State}}",
        ]);
        states.trim() == "created"
    });
}

#[test]
fn a_job_is_created_while_its_need_runs_and_sees_the_artifacts_made_after() {
    let sync = tempfile::tempdir().unwrap();
    let project = project(sync.path(), "echo made later > out.txt");
    let child = start(&project);
    let pid = child.id();
    wait_until_prepared(sync.path(), pid);
    std::fs::write(sync.path().join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(project.log("1", "use").contains("made later"), "{stdout}");
    assert_no_leftovers(pid);
}

#[test]
fn a_prepared_job_that_a_failure_skips_leaves_nothing_behind() {
    let sync = tempfile::tempdir().unwrap();
    let project = project(sync.path(), "exit 1");
    let child = start(&project);
    let pid = child.id();
    wait_until_prepared(sync.path(), pid);
    std::fs::write(sync.path().join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("needs `make`, which failed"), "{stdout}");
    assert_no_leftovers(pid);
}

#[test]
fn an_interrupt_while_a_job_is_prepared_leaves_nothing_behind() {
    let sync = tempfile::tempdir().unwrap();
    let project = project(sync.path(), "echo never");
    let child = start(&project);
    let pid = child.id();
    wait_until_prepared(sync.path(), pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_no_leftovers(pid);
}

/// A job made ahead waits for a network sandbox, and sandboxes start once a container has:
/// when its need is a scan, which runs in pipe and starts none, the job must still get one
/// (the run hung for ever before).
#[test]
fn a_job_made_ahead_of_a_scan_it_needs_runs_when_the_scan_passes() {
    docker_image();
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  scan: {{stage: security-scan, scan: [secrets]}}
  after: {{stage: deploy, needs: [scan], script: [echo after the scan]}}
"
    ));
    // Enough to scan that the job is made ahead while the scan runs.
    let lines: String = (0..20_000).map(|i| format!("let x = {i};\n")).collect();
    std::fs::write(project.path().join("code.rs"), lines).unwrap();
    let mut child = project
        .command(&["run", "--pull", "never"])
        .spawn()
        .expect("start pipe");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = project.pipe(&["clean"]);
            panic!("the run never ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(project.log("1", "after").contains("after the scan"));
    assert_no_leftovers(pid);
}
