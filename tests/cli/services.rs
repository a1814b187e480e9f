//! `services:` on a real engine: containers beside a job on a network of the job's own,
//! reached by name once ready, and gone with everything they used however the job ends.

use crate::harness::{assert_no_leftovers, docker, docker_image, spawn_until, Project, IMAGE};

/// No network made by the pipe process `pid` is left (containers and volumes are checked by
/// `run_docker`).
fn assert_no_networks(pid: u32) {
    let filter = format!("label=dev.pipe.pid={pid}");
    let networks = docker(&["network", "ls", "-q", "--filter", &filter]);
    assert!(networks.trim().is_empty(), "networks left: {networks:?}");
}

#[test]
fn a_job_reaches_a_tcp_service_by_name_once_it_is_ready() {
    // The service listens only a while after it starts: a job that did not wait for it
    // would be refused.
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  use-db:
    services:
      - name: db
        image: {IMAGE}
        env: {{GREETING: hello-from-db}}
        command: echo db starting; sleep 1; exec nc -ll -p 5432 -e echo $GREETING
        ready: {{tcp: 5432}}
        timeout: 60s
    script:
      - nc db 5432 </dev/null
"
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[use-db] hello-from-db"),
        "{}",
        ran.all()
    );
    assert_no_networks(ran.pid);
    // The service's log is kept beside the job's, and shown with it.
    let kept = std::fs::read_to_string(
        project
            .path()
            .join(".pipe/runs/1/logs/use-db.services/db.log"),
    )
    .unwrap();
    assert!(kept.contains("db starting"), "{kept}");
    let logs = project.pipe(&["logs", "1", "use-db"]);
    assert!(
        logs.stdout.contains("==> use-db · service db <=="),
        "{}",
        logs.all()
    );
    assert!(logs.stdout.contains("db starting"), "{}", logs.all());
    let show = project.pipe(&["show", "1"]);
    assert!(
        show.stdout.contains("services of `use-db`: db"),
        "{}",
        show.all()
    );
    // Reused, the job starts no service.
    let again = project.run_docker(&[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.contains("reused (run 1)"), "{}", again.all());
    assert!(
        !again.stdout.contains("waiting for services"),
        "{}",
        again.all()
    );
    assert!(!project
        .path()
        .join(".pipe/runs/2/logs/use-db.services")
        .exists());
}

#[test]
fn a_readiness_command_is_waited_for() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  web:
    services:
      - name: files
        image: {IMAGE}
        command: [sh, -c, 'sleep 1; echo ok > /ready; exec sleep 300']
        ready: {{command: test -f /ready}}
    script:
      - echo reached
"
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("pipe: services ready after"),
        "{}",
        ran.all()
    );
    assert_no_networks(ran.pid);
}

#[test]
fn a_service_that_never_becomes_ready_fails_its_job_with_the_end_of_its_log() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  use-db:
    services:
      - name: db
        image: {IMAGE}
        command: echo listening on nothing at all; exec sleep 300
        ready: {{tcp: 5432}}
        timeout: 2s
    script:
      - echo SCRIPT RAN
"
    ));
    let ran = project.run_docker(&[]);
    assert_ne!(ran.code, 0, "{}", ran.all());
    let all = ran.all();
    assert!(
        all.contains("service `db` was not ready (accepting connections on port 5432) after 2s"),
        "{all}"
    );
    assert!(all.contains("[db] listening on nothing at all"), "{all}");
    assert!(!all.contains("[use-db] SCRIPT RAN"), "{all}");
    assert_no_networks(ran.pid);
}

#[test]
fn a_service_that_exits_fails_its_job_at_once() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  use-db:
    services:
      - name: db
        image: {IMAGE}
        command: echo bad config >&2; exit 3
        ready: {{tcp: 5432}}
        timeout: 10m
    script: [echo SCRIPT RAN]
"
    ));
    let ran = project.run_docker(&[]);
    let all = ran.all();
    assert_ne!(ran.code, 0, "{all}");
    assert!(all.contains("service `db` exited with code 3"), "{all}");
    assert!(all.contains("[db] bad config"), "{all}");
    assert_no_networks(ran.pid);
}

#[test]
fn two_jobs_at_once_each_reach_their_own_service_of_the_same_name() {
    // Each job leaves a marker and asks its service only once the other's marker is there,
    // so both services run at once.
    let sync = tempfile::tempdir().unwrap();
    let job = |me: &str, other: &str| {
        format!(
            "  {me}:
    volumes: ['{sync}:/sync']
    timeout: 120s
    services:
      - name: db
        image: {IMAGE}
        command: [nc, -ll, -p, '5432', -e, echo, 'i am {me}']
        ready: {{tcp: 5432}}
    script:
      - touch /sync/{me}
      - while [ ! -e /sync/{other} ]; do sleep 0.05; done
      - test \"$(nc db 5432 </dev/null)\" = 'i am {me}'
      - echo got my own
",
            sync = sync.path().display()
        )
    };
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n{}{}",
        job("left", "right"),
        job("right", "left")
    ));
    let ran = project.run_docker(&["--allow-privileged"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(ran.stdout.contains("[left] got my own"), "{}", ran.all());
    assert!(ran.stdout.contains("[right] got my own"), "{}", ran.all());
    assert_no_networks(ran.pid);
}

#[test]
fn a_failing_job_leaves_no_service_behind() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  broken:
    services:
      - {{name: cache, image: {IMAGE}, command: [sleep, '300']}}
    script: [exit 4]
"
    ));
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert_no_networks(ran.pid);
}

#[test]
fn a_job_cancelled_while_it_or_its_services_run_leaves_nothing() {
    docker_image();
    let running = format!(
        "image: {IMAGE}
jobs:
  long:
    services:
      - {{name: cache, image: {IMAGE}, command: [sleep, '300']}}
    script: [sleep 300]
"
    );
    let waiting = format!(
        "image: {IMAGE}
jobs:
  long:
    services:
      - name: db
        image: {IMAGE}
        command: [sleep, '300']
        ready: {{tcp: 5432}}
        timeout: 10m
    script: [echo never]
"
    );
    for (yaml, marker) in [
        (running, "$ sleep 300"),
        (waiting, "pipe: waiting for services: db"),
    ] {
        let project = Project::new(&yaml);
        let (child, _) = spawn_until(&project, &["run", "--pull", "never"], marker);
        let pid = child.id();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "cancelled at {marker}");
        assert_no_leftovers(pid);
        assert_no_networks(pid);
    }
}

#[test]
fn the_local_backend_refuses_services_before_anything_runs() {
    let project = Project::new(
        "jobs:\n  t:\n    services:\n      - {name: db, image: postgres}\n    script: [echo ran]\n",
    );
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_ne!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("pipe.yml:4:9: job `t` has `services`, which the local backend cannot run"),
        "{}",
        ran.all()
    );
    assert!(!ran.stdout.contains("ran"), "{}", ran.all());
}
