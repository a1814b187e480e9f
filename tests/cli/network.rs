//! `network: false`: a job that gets no network at all, per job or as the pipeline's default.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::harness::{Project, IMAGE};

/// A TCP listener of the test's own on every host address, answering each connection with a
/// tiny HTTP response. Its port.
fn listener() -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.read(&mut [0; 1024]);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello from the host\n");
        }
    });
    port
}

#[test]
fn a_job_without_a_network_cannot_reach_the_host_that_a_job_with_one_reaches() {
    let port = listener();
    // The pipeline's default is no network; `open` asks for one back. `open` finds the host's
    // address on the jobs' bridge (its default route) and hands it to `closed` as an artifact.
    let project = Project::new(&format!(
        "image: {IMAGE}
env: {{PORT: '{port}'}}
default: {{network: false}}
jobs:
  open:
    network: true
    artifacts: [gateway]
    script:
      - ip route | awk '/default/ {{print $3}}' > gateway
      - test -s gateway
      - wget -q -O- \"http://$(cat gateway):$PORT/\"
  closed:
    needs: [open]
    script:
      - 'if wget -q -O- \"http://$(cat gateway):$PORT/\"; then echo REACHED; exit 1; fi'
      - 'test \"$(ls /sys/class/net)\" = lo'
      - echo cut off
"
    ));
    let ran = project.run_docker(&["-v"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(
        ran.stdout.contains("[open] hello from the host"),
        "{}",
        ran.all()
    );
    assert!(ran.stdout.contains("[closed] cut off"), "{}", ran.all());
    assert!(
        !ran.stdout.lines().any(|l| l == "[closed] REACHED"),
        "{}",
        ran.all()
    );
}

#[test]
fn the_local_backend_refuses_a_job_without_a_network() {
    let project = Project::new("jobs:\n  offline:\n    network: false\n    script: [echo ran]\n");
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 4, "{}", ran.all());
    assert!(
        ran.stderr.contains("pipe.yml:3:5: job `offline` asks for `network: false`, which the local backend cannot give"),
        "{}",
        ran.all()
    );
    assert!(!ran.stdout.contains("ran"), "{}", ran.all());
}

#[test]
fn a_job_without_a_network_cannot_have_services_and_scan_jobs_take_no_network() {
    let ran = Project::new(
        "jobs:\n  a:\n    network: false\n    services: [db]\n    script: [x]\n  s: {scan: [secrets], network: false}\n",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    assert!(
        ran.stderr
            .contains("job `a` has `services` and `network: false`"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("`network` has no effect on a scan job"),
        "{}",
        ran.stderr
    );
    // A pipeline's default applies to the jobs that run containers, not to scan jobs.
    let ran = Project::new(
        "default: {network: false}\njobs:\n  a: {script: [x]}\n  s: {stage: test, scan: [secrets]}\n",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
}
