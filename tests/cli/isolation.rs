//! A hostile pipeline stays in its sandbox: links a job made are never followed when artifacts
//! are laid into another job's workspace, jobs running at once cannot reach each other's
//! ports, and a job needing many jobs' artifacts still gets an overlay workspace.

use std::path::Path;
use std::time::{Duration, Instant};

use super::harness::*;

/// `pipe` with extra environment variables, to completion.
fn pipe_with(project: &Project, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let child = project
        .command(args)
        .envs(env.iter().copied())
        .spawn()
        .expect("start pipe");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for pipe");
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
    };
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    ran
}

/// `a` hands on `out` as a link to the project itself, `b` hands on a folder `out/` whose
/// `pipe.yml` would overwrite the project's if `b`'s files were laid through `a`'s link.
fn link_escape(project: &Path, image: bool) -> String {
    format!(
        "{image}jobs:
  a: {{script: ['ln -s {project} out'], artifacts: [out]}}
  b: {{script: ['mkdir out', 'echo pwned > out/pipe.yml', 'echo pwned > out/new.txt'], artifacts: [out]}}
  c: {{stage: test, needs: [a, b], script: ['test -d out', '! test -L out', 'grep pwned out/pipe.yml']}}
",
        image = if image { format!("image: {IMAGE}\n") } else { String::new() },
        project = project.display(),
    )
}

fn assert_link_not_followed(backend: &[&str], env: &[(&str, &str)]) {
    let project = Project::new("");
    let pipeline = link_escape(project.path(), backend.is_empty());
    project.write("pipe.yml", &pipeline);
    if backend.is_empty() {
        docker_image();
    }
    let args: Vec<&str> = ["run", "--pull", "never"]
        .iter()
        .chain(backend)
        .copied()
        .collect();
    let ran = pipe_with(&project, &args, env);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(
        std::fs::read_to_string(project.path().join("pipe.yml")).unwrap(),
        pipeline,
        "a job overwrote the developer's pipeline through a link"
    );
    assert!(!project.path().join("new.txt").exists());
    if backend.is_empty() {
        assert_no_leftovers(ran.pid);
    }
}

#[test]
fn copied_docker_workspaces_never_follow_an_artifact_link() {
    assert_link_not_followed(&[], &[("PIPE_NO_OVERLAY", "1")]);
}

#[test]
fn overlay_docker_workspaces_never_follow_an_artifact_link() {
    assert_link_not_followed(&[], &[]);
}

#[test]
fn local_workspaces_never_follow_an_artifact_link() {
    assert_link_not_followed(&["--backend", "local"], &[]);
}

/// A running pipe, killed if the test fails before it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a file a job writes: a marker, not a guess at how long the job takes.
fn wait_for(path: &Path, pipe: &mut Running) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().to_string();
            }
        }
        if let Some(status) = pipe.0.try_wait().unwrap() {
            panic!("pipe ended ({status}) before {} came", path.display());
        }
        assert!(Instant::now() < deadline, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn jobs_running_at_once_cannot_reach_each_others_ports() {
    docker_image();
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().display();
    // `srv` has a network of its own (first wave), `probe` borrows a sandbox's (it comes after
    // `a`): both kinds of job network are on the line.
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  a: {{script: ['echo a']}}
  srv:
    timeout: 90s
    volumes: ['{dir}:/shared']
    script:
      - 'while true; do echo hi | nc -l -p 8080; done &'
      - 'until netstat -ltn | grep -q :8080; do sleep 0.05; done'
      - 'hostname -i > /shared/srv-ip.tmp && mv /shared/srv-ip.tmp /shared/srv-ip'
      - 'until test -e /shared/done; do sleep 0.05; done'
  probe:
    needs: [a]
    timeout: 90s
    volumes: ['{dir}:/shared']
    script:
      - 'until test -e /shared/go; do sleep 0.05; done'
      - 'if nc -w 3 $(cat /shared/srv-ip) 8080 </dev/null; then r=reached; else r=blocked; fi; echo $r > /shared/result'
      - 'touch /shared/done'
"
    ));
    let mut pipe = Running(
        project
            .command(&["run", "--pull", "never", "--allow-privileged"])
            .spawn()
            .unwrap(),
    );
    let pid = pipe.0.id();
    let ip = wait_for(&shared.path().join("srv-ip"), &mut pipe);
    // The server listens and the address is right: the host reaches it.
    let addr = format!("{}:8080", ip.split_whitespace().next().unwrap());
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))
        .expect("the host reaches the job's server");
    std::fs::write(shared.path().join("go"), "").unwrap();
    let result = wait_for(&shared.path().join("result"), &mut pipe);
    let status = pipe.0.wait().unwrap();
    assert_eq!(result, "blocked", "a job reached another job's port");
    assert_eq!(status.code(), Some(0));
    assert_no_leftovers(pid);
}

#[test]
fn a_job_needing_100_jobs_gets_all_their_artifacts_on_an_overlay() {
    docker_image();
    let values: Vec<String> = (1..=100).map(|n| n.to_string()).collect();
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  part: {{matrix: {{N: [{}]}}, script: ['mkdir -p out/$N', 'echo $N > out/$N/n'], artifacts: [out]}}
  all:
    stage: test
    script:
      - grep -q ' /workspace overlay ' /proc/mounts   # an overlay, not the copy pipe falls back to
      - test $(ls out | wc -l) -eq 100
      - cat out/*/n | sort -n | tail -1
",
        values.join(", ")
    ));
    let ran = pipe_with(
        &project,
        &["run", "--pull", "never"],
        &[("PIPE_LOG", "info")],
    );
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert!(project.log("1", "all").contains("100"));
    assert!(
        !ran.stderr.contains("overlay workspaces unavailable"),
        "fell back to copies: {}",
        ran.stderr
    );
    assert_no_leftovers(ran.pid);
}

#[test]
fn a_link_in_the_snapshot_is_replaced_not_followed_when_artifacts_are_laid() {
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("keep.txt"), "mine").unwrap();
    let project = Project::new(
        "jobs:
  b: {script: ['rm out', 'mkdir out', 'echo pwned > out/keep.txt'], artifacts: [out]}
  c: {stage: test, needs: [b], script: ['! test -L out', 'grep pwned out/keep.txt']}
",
    );
    std::os::unix::fs::symlink(victim.path(), project.path().join("out")).unwrap();
    let ran = project.pipe(&["run", "--backend", "local"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    assert_eq!(
        std::fs::read_to_string(victim.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn five_hundred_artifact_layers_fit_one_overlay_mount() {
    use pipe::backend::docker::{connect, DockerBackend, Pull};
    use pipe::backend::{Backend, JobShape, JobSpec, LogSink, RunShape, Stop};

    docker_image();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(source.join("src")).unwrap();
    std::fs::write(source.join("src/main.c"), "int main(){}").unwrap();
    let mut layers = vec![source];
    for n in 0..500 {
        let layer = dir.path().join(format!("artifacts/part-N-{n}"));
        std::fs::create_dir_all(layer.join("out")).unwrap();
        std::fs::write(layer.join(format!("out/{n}")), n.to_string()).unwrap();
        layers.push(layer);
    }
    let spec = JobSpec {
        build: None,
        push: None,
        drift: Default::default(),
        run_id: format!("layers-{}", std::process::id()),
        job: "all".into(),
        slug: "all".into(),
        image: Some(IMAGE.into()),
        script: vec![
            // An overlay, not the copy pipe falls back to when a mount fails.
            "grep -q ' /workspace overlay ' /proc/mounts".into(),
            "test $(ls out | wc -l) -eq 500".into(),
            "test -f src/main.c".into(),
        ],
        env: Vec::new(),
        secrets: Default::default(),
        layers,
        scratch: dir.path().join("jobs/all/1"),
        artifacts: Vec::new(),
        artifacts_dest: dir.path().join("kept"),
        privileged: false,
        network: true,
        binds: Vec::new(),
        scan: None,
        cache: None,
        services: Default::default(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (outcome, lines) = runtime.block_on(async {
        let backend = DockerBackend::new(connect().await.unwrap(), Pull::Never, Duration::ZERO);
        backend
            .prepare(&RunShape {
                run_id: spec.run_id.clone(),
                jobs: vec![JobShape {
                    image: Some(IMAGE.into()),
                    scan: false,
                    builds: Vec::new(),
                }],
                concurrency: 1,
                // No sandboxes: the one job runs in the first wave.
                widest_later_level: 0,
            })
            .await
            .unwrap();
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let (_stop, stop) = tokio::sync::watch::channel(Stop::No);
        let outcome = backend
            .run(&spec, &LogSink::new("all".into(), events), stop)
            .await;
        backend.shutdown().await;
        let mut lines = Vec::new();
        while let Ok(event) = received.try_recv() {
            lines.push(format!("{event:?}"));
        }
        (outcome, lines)
    });
    assert_eq!(outcome.expect("the job ran").exit_code, 0, "{lines:#?}");
    assert_no_leftovers(std::process::id());
}
