//! `build_image:` jobs and drift, on a real engine: an image built from the workspace and used
//! by a later job, and a job that writes into system paths reported and failed.

use crate::harness::{
    assert_no_leftovers, docker, docker_image, git, spawn_command_until, spawn_until, KillOnDrop,
    Project, IMAGE,
};

/// Removes the images the test built, whatever becomes of the test.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for tag in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["image", "rm", "-f", tag])
                .output();
        }
    }
}

/// A repository name no other test (or run of this one) uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("pipe-test/{what}-{}-{nanos}", std::process::id())
}

#[test]
fn an_image_built_from_the_workspace_with_a_version_tag_is_used_by_a_later_job() {
    docker_image();
    let repo = unique("built");
    let tag = format!("{repo}:v2.5.0");
    let _cleanup = Images(vec![tag.clone(), format!("{repo}:latest")]);
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  gen:
    script: [echo generated-by-gen > app/gen.txt]
    artifacts: [app/gen.txt]
  image:
    needs: [gen]
    build_image:
      context: app
      dockerfile: Containerfile
      args: {{GREETING: hello-$PIPE_VERSION}}
      tags: ['{repo}:$PIPE_VERSION', '{repo}:latest']
  use:
    stage: test
    needs: [image]
    image: {tag}
    script: [cat /ctx/app.txt /ctx/gen.txt /greeting, readlink /ctx/escape]
"
    ));
    project.write(
        "app/Containerfile",
        &format!("FROM {IMAGE}\nARG GREETING\nCOPY . /ctx/\nRUN echo \"$GREETING\" > /greeting\n"),
    );
    project.write("app/app.txt", "from-the-workspace\n");
    // A link out of the workspace goes to the engine as a link, never as what it points to.
    std::os::unix::fs::symlink("/etc/passwd", project.path().join("app/escape")).unwrap();
    git(project.path(), &["init", "-q"]);
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "first"]);
    git(project.path(), &["tag", "v2.5.0"]);

    // Pull missing (the default): the tag the run builds is never looked for in a registry.
    let ran = project.pipe(&["run", "--output", "json"]);
    assert_no_leftovers(ran.pid);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let events = ran.json_events();
    crate::schemas::assert_fit("events.v2.json", &events);
    let built = events
        .iter()
        .find(|e| e["event"] == "image_built")
        .unwrap_or_else(|| panic!("no image_built event: {}", ran.stdout));
    let id = built["image"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sha256:"), "{built}");
    assert_eq!(built["image"]["tags"][0], tag.as_str());
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).trim(),
        id,
        "the recorded id is the tag's"
    );
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "job_output" && e["job"] == "use")
        .filter_map(|e| e["line"].as_str())
        .collect();
    assert!(lines.contains(&"from-the-workspace"), "{lines:?}");
    assert!(lines.contains(&"hello-v2.5.0"), "{lines:?}");
    assert!(
        lines.contains(&"generated-by-gen"),
        "the needed job's artifact is in the context: {lines:?}"
    );
    assert!(lines.contains(&"/etc/passwd"), "still a link: {lines:?}");

    let show = project.pipe(&["show", "last"]);
    assert_eq!(show.code, 0, "{}", show.all());
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert!(
        show.stdout
            .contains(&format!("image {short} ({tag}, {repo}:latest)")),
        "{}",
        show.stdout
    );
    let json = project.pipe(&["show", "last", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    crate::schemas::assert_fit("show.v2.json", std::slice::from_ref(&doc));
    let job = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "image")
        .unwrap();
    assert_eq!(job["image"]["id"], id.as_str());
}

#[test]
fn a_build_that_fails_fails_its_job_with_the_engines_output() {
    docker_image();
    let repo = unique("broken");
    let _cleanup = Images(vec![format!("{repo}:1")]);
    let project = Project::new(&format!(
        "jobs:
  image:
    build_image: {{tags: ['{repo}:1']}}
  after: {{stage: test, image: {IMAGE}, script: [echo never]}}
"
    ));
    project.write(
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN echo about-to-fail && exit 7\n"),
    );
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    let log = project.log("1", "image");
    assert!(log.contains("about-to-fail"), "{log}");
    assert!(log.contains("pipe: the image build failed"), "{log}");
    assert!(ran.row("after").contains("skipped"), "{}", ran.stdout);
}

#[test]
fn a_job_writing_into_system_paths_is_reported_as_drift_and_fails_under_drift_fail() {
    let project = Project::new(&format!(
        "image: {IMAGE}
default: {{drift: fail}}
jobs:
  meddle:
    allow_failure: true
    script: [mkdir -p /etc /root, echo x > /etc/evil, touch /root/note]
  lenient:
    drift: report
    script: [mkdir -p /usr/local, touch /usr/local/tool]
  tidy:
    script: [echo a > out.txt, mkdir -p /tmp, echo b > /tmp/b]
  audit:
    stage: security-scan
    scan: [secrets]
"
    ));
    let ran = project.run_docker(&["--output", "json"]);
    assert_eq!(ran.code, 0, "allowed to fail: {}", ran.all());
    let events = ran.json_events();
    crate::schemas::assert_fit("events.v2.json", &events);
    let finished = |job: &str| {
        events
            .iter()
            .find(|e| e["event"] == "job_finished" && e["job"] == job)
            .unwrap_or_else(|| panic!("{job} did not finish: {}", ran.stdout))["status"]
            .clone()
    };
    assert_eq!(finished("meddle"), "failed");
    assert_eq!(
        finished("lenient"),
        "passed",
        "`drift: report` only reports"
    );
    assert_eq!(finished("tidy"), "passed");
    let drift = |job: &str| {
        events
            .iter()
            .find(|e| e["event"] == "job_drift" && e["job"] == job)
            .map(|e| e["drift"].clone())
    };
    assert_eq!(drift("tidy"), None, "the workspace and /tmp are not drift");
    let meddled = drift("meddle").expect("meddle drifted");
    let system: Vec<&str> = meddled["system"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(system, ["/etc/evil"], "{meddled}");
    assert!(
        meddled["added"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/root/note"),
        "{meddled}"
    );
    let log = project.log("1", "meddle");
    assert!(log.contains("in system paths: /etc/evil"), "{log}");
    assert!(log.contains("has `drift: fail`: it fails"), "{log}");

    // The scan job lists each job's drift beside its findings.
    let audit = project.log("1", "audit");
    assert!(audit.contains("meddle: "), "{audit}");
    assert!(audit.contains("system: /etc/evil"), "{audit}");
    assert!(audit.contains("system: /usr/local/tool"), "{audit}");
    assert!(!audit.contains("tidy"), "{audit}");

    let show = project.pipe(&["show", "last"]);
    assert!(show.stdout.contains("drift: "), "{}", show.stdout);
}

/// Debian's `docker-registry` on a loopback port of its own, which the engine may push to
/// without TLS (127.0.0.0/8 is an insecure registry by default); stopped when dropped.
struct Registry {
    port: u16,
    _dir: tempfile::TempDir,
    _process: KillOnDrop,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut cmd = std::process::Command::new("sh");
        // The registry logs on stderr: its "listening" line is the marker it is ready.
        cmd.args(["-c", "exec docker-registry serve \"$0\" 2>&1"])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let (child, _) = spawn_command_until(cmd, &format!("listening on 127.0.0.1:{port}"));
        Registry {
            port,
            _dir: dir,
            _process: KillOnDrop(child.id() as i32),
        }
    }

    /// `GET path` of the registry's HTTP API: the response's body.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or(response)
    }
}

#[test]
fn a_release_job_pushes_the_very_image_built_to_a_loopback_registry() {
    docker_image();
    let registry = Registry::start();
    let local = unique("release");
    let remote = format!("127.0.0.1:{}/pipe-test/app", registry.port);
    let _cleanup = Images(vec![format!("{local}:v3.0.0"), format!("{remote}:v3.0.0")]);
    let project = Project::new(&format!(
        "jobs:
  image:
    build_image: {{tags: ['{local}:$PIPE_VERSION']}}
  publish:
    stage: release
    secrets: [REGISTRY_TOKEN]
    push:
      image: image
      to: ['{remote}:$PIPE_VERSION']
      username: ci
      password: REGISTRY_TOKEN
"
    ));
    project.write(
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN echo built > /built\n"),
    );
    git(project.path(), &["init", "-q"]);
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-qm", "first"]);
    git(project.path(), &["tag", "v3.0.0"]);

    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 0, "{}", ran.all());
    let shown = project.pipe(&["show", "1", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let built = doc["jobs"][0]["image"]["id"].as_str().unwrap().to_string();
    // The tag moves on before the release: what is released is still the image built.
    docker(&["tag", IMAGE, &format!("{local}:v3.0.0")]);

    let mut release = project.command(&["release", "1", "--pull", "never"]);
    release.env("REGISTRY_TOKEN", "s3cret-token-value");
    let released = crate::harness::finish(release);
    assert_eq!(released.code, 0, "{}", released.all());
    assert!(!released.all().contains("s3cret-token-value"));
    let tags = registry.get("/v2/pipe-test/app/tags/list");
    assert!(tags.contains("\"v3.0.0\""), "{tags}");
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("{remote}:v3.0.0")
        ])
        .trim(),
        built
    );
    let log = project.log("1", "publish");
    assert!(
        log.contains(&format!("pipe: pushed {built} as {remote}:v3.0.0")),
        "{log}"
    );
    let shown = project.pipe(&["show", "1", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    crate::schemas::assert_fit("show.v2.json", std::slice::from_ref(&doc));
    let publish = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "publish")
        .unwrap();
    assert_eq!(publish["image"]["id"], built.as_str());
}

#[test]
fn image_jobs_are_checked_before_anything_runs() {
    let ran = Project::new(
        "jobs:
  image: {build_image: {context: ../outside, tags: []}}
  both: {script: [x], build_image: {tags: [a:1]}}
  publish:
    stage: release
    push: {image: imgae, to: [r/a:1], password: TOKEN}
  odd: {script: [x], drift: sometimes}
",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    for said in [
        "`context` `../outside` must stay inside the workspace",
        "`build_image` needs at least one tag",
        "job `both` has more than one of `script`, `scan`, `build_image`, `push`",
        "job `publish` pushes the image of `imgae`, which is no `build_image` job",
        "job `publish` pushes with the secret `TOKEN`, which it does not name",
        "`drift` must be `report` or `fail`",
    ] {
        assert!(ran.stderr.contains(said), "{said}: {}", ran.stderr);
    }
    let ran = Project::new(
        "default: {drift: fail}
jobs:
  image: {build_image: {tags: ['app:$PIPE_VERSION']}}
  publish: {stage: release, secrets: [T], push: {image: image, to: [r/a:1], password: T}}
",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 0, "{}", ran.all());
}

/// A build whose `RUN` step says `began-NONCE-running` (a line the step's own echo makes, not
/// the builder's echo of the Dockerfile) and then blocks far longer than any test waits.
fn blocking_build(repo: &str, nonce: &str, job: &str) -> Project {
    let project = Project::new(&format!(
        "jobs:\n  image:\n    {job}\n    build_image: {{tags: ['{repo}:1']}}\n"
    ));
    project.write(
        "Dockerfile",
        &format!("FROM {IMAGE}\nRUN B=began; echo $B-{nonce}-running && sleep 300\n"),
    );
    project
}

/// The containers (any, running or not) whose command holds `nonce`: a build step's.
fn build_containers(nonce: &str) -> Vec<String> {
    docker(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        .lines()
        .filter(|l| l.contains(nonce))
        .map(str::to_string)
        .collect()
}

fn job_status(project: &Project, job: &str) -> serde_json::Value {
    let shown = project.pipe(&["show", "1", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == job)
        .unwrap_or_else(|| panic!("no job {job}: {}", shown.stdout))["status"]
        .clone()
}

#[test]
fn ctrl_c_during_a_build_stops_it_and_leaves_no_build_container() {
    docker_image();
    let repo = unique("interrupted");
    let nonce = repo.replace('/', "-");
    let _cleanup = Images(vec![format!("{repo}:1")]);
    let project = blocking_build(&repo, &nonce, "network: false");
    let (child, _) = spawn_until(
        &project,
        &["run", "--pull", "never"],
        &format!("began-{nonce}-running"),
    );
    let pid = child.id();
    let _guard = KillOnDrop(pid as i32);
    assert_eq!(build_containers(&nonce).len(), 1, "the step runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_no_leftovers(pid);
    assert_eq!(build_containers(&nonce), Vec::<String>::new());
    assert_eq!(job_status(&project, "image"), "cancelled");
    let log = project.log("1", "image");
    assert!(log.contains("pipe: the image build was stopped"), "{log}");
    assert!(
        !project.path().join(".pipe/runs/1/jobs/image/1").exists(),
        "the attempt's scratch folder, where the context was laid, is gone"
    );
    let tagged = std::process::Command::new("docker")
        .args(["image", "inspect", &format!("{repo}:1")])
        .output()
        .unwrap();
    assert!(!tagged.status.success(), "the build did not finish");
}

#[test]
fn a_build_past_its_timeout_is_stopped_and_leaves_no_build_container() {
    docker_image();
    let repo = unique("slow");
    let nonce = repo.replace('/', "-");
    let _cleanup = Images(vec![format!("{repo}:1")]);
    // Long enough for the step to begin on a loaded engine: its container is there to stop.
    let project = blocking_build(&repo, &nonce, "timeout: 8s");
    let ran = project.run_docker(&[]);
    assert_eq!(ran.code, 1, "{}", ran.all());
    assert!(ran.row("image").contains("timed out"), "{}", ran.stdout);
    assert_eq!(build_containers(&nonce), Vec::<String>::new());
    assert_eq!(job_status(&project, "image"), "timed_out");
    let log = project.log("1", "image");
    assert!(
        log.contains(&format!("began-{nonce}-running")),
        "it ran: {log}"
    );
    assert!(log.contains("pipe: the image build was stopped"), "{log}");
    assert!(!project.path().join(".pipe/runs/1/jobs/image/1").exists());
}

#[test]
fn ctrl_c_during_a_push_to_a_registry_that_never_answers_stops_it() {
    docker_image();
    // A "registry" that takes connections and never answers: the engine's push waits on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connected, reached) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = connected.send(());
            // Held unanswered, but not forever: a pipe that failed to stop ends in the end.
            std::thread::spawn(move || {
                use std::io::Read;
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(300)));
                let _ = stream.read_to_end(&mut Vec::new());
            });
        }
    });
    let local = unique("unpushed");
    let remote = format!("127.0.0.1:{port}/pipe-test/never");
    let _cleanup = Images(vec![format!("{local}:1"), format!("{remote}:1")]);
    let project = Project::new(&format!(
        "jobs:
  image:
    build_image: {{tags: ['{local}:1']}}
  publish:
    stage: test
    needs: [image]
    push: {{image: image, to: ['{remote}:1']}}
"
    ));
    project.write("Dockerfile", &format!("FROM {IMAGE}\nLABEL unpushed=yes\n"));
    let child = project
        .command(&["run", "--pull", "never"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = KillOnDrop(pid as i32);
    // The engine reaching the registry is the push under way.
    reached
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("the engine reached the registry");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert_no_leftovers(pid);
    assert_eq!(job_status(&project, "image"), "passed");
    assert_eq!(job_status(&project, "publish"), "cancelled");
    let log = project.log("1", "publish");
    assert!(
        log.contains(&format!("pipe: the push of `{remote}:1` was stopped")),
        "{log}"
    );
}

#[test]
fn a_build_image_job_with_a_matrix_is_refused_where_it_is_written() {
    let ran = Project::new(
        "jobs:
  image:
    matrix: {ARCH: [amd64, arm64]}
    build_image: {tags: ['app:$ARCH']}
  single:
    matrix: {ARCH: [amd64]}
    build_image: {tags: ['app:$ARCH']}
",
    )
    .pipe(&["validate"]);
    assert_eq!(ran.code, 2, "{}", ran.all());
    for (job, at) in [("image", "[pipe.yml:4:5]"), ("single", "[pipe.yml:7:5]")] {
        assert!(
            ran.stderr
                .contains(&format!("job `{job}` has `build_image` and a `matrix`")),
            "{}",
            ran.stderr
        );
        assert!(ran.stderr.contains(at), "{at}: {}", ran.stderr);
    }
}
