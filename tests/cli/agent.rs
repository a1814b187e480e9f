//! `pipe agent`: a real agent process on loopback over a real bare repository, driven through
//! its HTTP API; each test owns its folders, its port (bound to 0) and its process (killed on
//! drop, even when the test fails).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{assert_no_leftovers, docker_image, git, KillOnDrop, IMAGE};

pub const TOKEN: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789ab";

/// A repository (a work clone pushing to a bare one) and an agent's configuration beside it.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// A bare repository whose `main` holds `pipeline` as pipe.yml, and a work clone of it.
    pub fn new(pipeline: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("pipe.yml"), pipeline).unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "first"]);
        git(dir.path(), &["clone", "-q", "--bare", "work", "bare.git"]);
        git(&work, &["remote", "add", "origin", "../bare.git"]);
        Setup { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn work(&self) -> PathBuf {
        self.path().join("work")
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Commits `file` with `text` in the work clone and pushes it; returns the commit.
    pub fn push(&self, file: &str, text: &str) -> String {
        std::fs::write(self.work().join(file), text).unwrap();
        git(&self.work(), &["add", "."]);
        git(&self.work(), &["commit", "-qm", &format!("change {file}")]);
        git(&self.work(), &["push", "-q", "origin", "main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.work(), &["rev-parse", "HEAD"])
    }

    /// Writes agent.toml: the repository `web` and the tokens of alice and bob, then `extra`
    /// top-level keys and `repo` keys of the repository.
    pub fn config(&self, extra: &str, repo: &str) -> PathBuf {
        let file = self.path().join("agent.toml");
        std::fs::write(
            &file,
            format!(
                "data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\n{extra}\n[[repos]]\nname = \"web\"\nurl = \"bare.git\"\n{repo}\n[[tokens]]\nname = \"alice\"\ntoken = \"{TOKEN}\"\n[[tokens]]\nname = \"bob\"\ntoken = \"{BOB}\"\n"
            ),
        )
        .unwrap();
        file
    }

    /// Starts the agent and waits until it listens.
    pub fn start(&self) -> Agent {
        self.start_with("agent.toml", &self.data())
    }

    /// Starts an agent with configuration file `config` (relative to the setup's folder),
    /// whose data folder is `data`, and waits until it listens.
    pub fn start_with(&self, config: &str, data: &Path) -> Agent {
        let _ = std::fs::remove_file(data.join("agent.addr"));
        let stderr = std::fs::File::create(self.path().join(format!(
            "agent-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )))
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(["agent", "--config", config])
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start pipe agent");
        let guard = KillOnDrop(child.id() as i32);
        let addr_file = data.join("agent.addr");
        let addr = wait_for("the agent to listen", || {
            std::fs::read_to_string(&addr_file)
                .ok()
                .map(|a| a.trim().to_string())
        });
        Agent {
            child,
            _guard: guard,
            addr,
        }
    }
}

pub struct Agent {
    pub child: Child,
    _guard: KillOnDrop,
    pub addr: String,
}

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.0 request to `addr` (so the answer's body is never chunked), read to its end.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: body.to_string(),
    }
}

impl Agent {
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        request(&self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        self.request("GET", path, &headers, b"")
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        headers.push(("Content-Type", "application/json"));
        self.request("POST", path, &headers, body.as_bytes())
    }

    /// The runs of `web`, newest first.
    pub fn runs(&self) -> Vec<Value> {
        let answer = self.get("/api/runs?repo=web", Some(TOKEN));
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json().as_array().unwrap().clone()
    }

    /// Waits for a run of `commit` in state `state`.
    pub fn run_of(&self, commit: &str, state: &str) -> Value {
        wait_for(&format!("a {state} run of {commit}"), || {
            self.runs()
                .into_iter()
                .find(|r| r["commit"] == commit && r["state"] == state)
        })
    }

    pub fn stop(mut self) -> i32 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// Polls `found` until it gives a value (a marker seen), failing after a generous while.
pub fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pipe(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

const LOCAL_JOB: &str = "jobs:\n  hello:\n    script:\n      - echo \"built $(cat version.txt 2>/dev/null || echo 0)\"\n";

#[test]
fn check_config_accepts_a_good_file_and_places_every_mistake() {
    let setup = Setup::new(LOCAL_JOB);
    setup.config("", "poll = \"1s\"");
    let ok = pipe(
        setup.path(),
        &["agent", "check-config", "--config", "agent.toml"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("agent.toml: ok, 1 repositories, 2 tokens")
    );
    std::fs::write(
        setup.path().join("bad.yml"),
        "data_dir: d\nrepos:\n  - name: web\n    url: x\n    colour: red\n",
    )
    .unwrap();
    let bad = pipe(
        setup.path(),
        &["agent", "--config", "bad.yml", "check-config"],
    );
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("bad.yml:") && said.contains("colour"),
        "{said}"
    );
    let bad = "data_dir = \"d\"\n[[tokens]]\nname = \"a\"\ntoken = \"tiny\"\n[[repos]]\nname = \"../x\"\nurl = \"x\"\npoll = \"soon\"\n";
    std::fs::write(setup.path().join("bad.toml"), bad).unwrap();
    let bad = pipe(
        setup.path(),
        &["agent", "check-config", "--config", "bad.toml"],
    );
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("at least 16 characters")
            && said.contains("poll `soon`")
            && said.contains("a repository's name"),
        "{said}"
    );
    assert!(
        !said.contains("tiny"),
        "a token must never be shown: {said}"
    );
}

#[test]
fn polling_runs_each_pushed_commit_and_its_log_streams_live() {
    let setup = Setup::new(LOCAL_JOB);
    setup.config("backend = \"local\"", "poll = \"100ms\"");
    let agent = setup.start();
    let first = setup.head();
    agent.run_of(&first, "passed");
    let second = setup.push("version.txt", "2\n");
    let run = agent.run_of(&second, "passed");
    assert_eq!(run["branch"], "main");
    assert_eq!(run["trigger"], "poll");
    assert_eq!(run["repo"], "web");
    let id = run["run_id"].as_i64().unwrap();
    // Reading needs a token unless the configuration opens reads.
    assert_eq!(agent.get("/api/runs", None).status, 401);
    assert_eq!(
        agent.get("/api/runs", Some("not-a-token-at-all")).status,
        401
    );
    let log = agent.get(
        &format!("/api/repos/web/runs/{id}/jobs/hello/log"),
        Some(TOKEN),
    );
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.body.contains("data: built 2"), "{}", log.body);
    assert!(
        log.body.trim_end().ends_with("event: end\ndata: ended"),
        "{}",
        log.body
    );
    // Each piece's id is the offset after it; Last-Event-ID resumes from there.
    let first_id: u64 = log
        .body
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    let all = std::fs::read_to_string(
        setup
            .data()
            .join(format!("repos/web/.pipe/runs/{id}/logs/hello.log")),
    )
    .unwrap();
    assert_eq!(
        first_id as usize,
        all.len(),
        "one piece carries the whole finished log"
    );
    let after = all.find("built 2\n").unwrap() + "built 2\n".len();
    let auth = format!("Bearer {TOKEN}");
    let resumed = agent.request(
        "GET",
        &format!("/api/repos/web/runs/{id}/jobs/hello/log"),
        &[
            ("Authorization", &auth),
            ("Last-Event-ID", &after.to_string()),
        ],
        b"",
    );
    assert!(
        resumed
            .body
            .contains(&format!("data: {}", all[after..].lines().next().unwrap())),
        "{}",
        resumed.body
    );
    assert!(!resumed.body.contains("data: built 2"), "{}", resumed.body);
    let offset = agent.get(
        &format!("/api/repos/web/runs/{id}/jobs/hello/log?offset={after}"),
        Some(TOKEN),
    );
    assert_eq!(offset.body, resumed.body);
    assert_eq!(
        agent
            .get(
                &format!("/api/repos/web/runs/{id}/jobs/nope/log"),
                Some(TOKEN)
            )
            .status,
        404
    );
    assert_eq!(
        agent.get("/api/repos/other/runs/1", Some(TOKEN)).status,
        404
    );
    let metrics = agent.get("/metrics", None).body;
    assert!(
        metrics.contains("pipe_agent_runs_total{status=\"passed\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("pipe_agent_queue_depth 0"), "{metrics}");
    assert_eq!(agent.stop(), 0);
}

const GATED: &str = "stages: [build, release]\njobs:\n  build:\n    script: [echo build]\n  publish:\n    stage: release\n    gate:\n      approvals: 1\n    script: [echo published]\n";

#[test]
fn changes_need_a_token_and_the_tokens_name_is_who_approves_and_releases() {
    let setup = Setup::new(GATED);
    setup.config("backend = \"local\"\nopen_reads = true", "");
    let agent = setup.start();
    let start = "/api/repos/web/runs";
    assert_eq!(agent.post(start, None, "{\"branch\":\"main\"}").status, 401);
    assert_eq!(
        agent
            .post(
                start,
                Some("wrong-token-0123456789"),
                "{\"branch\":\"main\"}"
            )
            .status,
        401
    );
    assert_eq!(
        agent
            .post(start, Some(TOKEN), "{\"branch\":\"nope\"}")
            .status,
        404
    );
    let queued = agent.post(start, Some(TOKEN), "{\"branch\":\"main\"}");
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!(queued.json()["actor"], "alice");
    let run = agent.run_of(&setup.head(), "awaiting_release");
    let id = run["run_id"].as_i64().unwrap();
    let path = |what: &str| format!("/api/repos/web/runs/{id}/{what}");
    assert_eq!(agent.post(&path("approve"), None, "").status, 401);
    let refused = agent.post(&path("release"), Some(BOB), "");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("approval"), "{}", refused.body);
    let approved = agent.post(
        &path("approve"),
        Some(TOKEN),
        "{\"comment\":\"looks good\"}",
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.json()["count"], 1);
    let released = agent.post(&path("release"), Some(BOB), "");
    assert_eq!(released.status, 202, "{}", released.body);
    agent.run_of(&setup.head(), "released");
    let view = agent.get(&format!("/api/repos/web/runs/{id}"), None).json();
    assert_eq!(view["approvals"][0]["by"], "alice");
    assert_eq!(view["approvals"][0]["comment"], "looks good");
    let audit = view["audit"].as_array().unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a["actor"] == "bob" && a["action"].as_str().unwrap().contains("release")),
        "{audit:?}"
    );
    assert_eq!(view["needs"], serde_json::json!([]));
    let jobs: Vec<(&str, &str)> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(jobs, [("build", "passed"), ("publish", "passed")]);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn sigterm_lets_the_running_job_finish_and_keeps_the_queue() {
    let gate = tempfile::tempdir().unwrap();
    let go = gate.path().join("go");
    let pipeline = format!(
        "jobs:\n  wait:\n    script:\n      - echo started\n      - while [ ! -f {} ]; do sleep 0.05; done\n      - echo finished\n",
        go.display()
    );
    let setup = Setup::new(&pipeline);
    setup.config("backend = \"local\"\n[concurrency]\nruns = 1", "");
    let agent = setup.start();
    let first = setup.head();
    assert_eq!(
        agent
            .post(
                "/api/repos/web/runs",
                Some(TOKEN),
                &format!("{{\"commit\":\"{first}\"}}")
            )
            .status,
        202
    );
    let run = agent.run_of(&first, "running");
    let log = setup.data().join(format!(
        "repos/web/.pipe/runs/{}/logs/wait.log",
        run["run_id"]
    ));
    wait_for("the job to start", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("started"))
    });
    assert_eq!(
        agent
            .post(
                "/api/repos/web/runs",
                Some(TOKEN),
                &format!("{{\"commit\":\"{first}\"}}")
            )
            .status,
        202
    );
    assert_eq!(
        agent
            .get("/api/queue", Some(TOKEN))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let pid = agent.child.id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Stopping: the job goes on; once it may end, the agent stops.
    std::fs::write(&go, "").unwrap();
    let mut agent = agent;
    assert_eq!(agent.child.wait().unwrap().code(), Some(0));
    assert!(std::fs::read_to_string(&log).unwrap().contains("finished"));
    let agent = setup.start();
    let runs = agent.runs();
    assert_eq!(runs.last().unwrap()["state"], "passed", "{runs:?}");
    // The run queued before the stop was kept, and runs now.
    wait_for("the kept run", || (agent.runs().len() == 2).then_some(()));
    assert_eq!(agent.stop(), 0);
}

#[test]
fn kill_9_mid_run_leaves_the_run_interrupted_the_queue_intact_and_no_container() {
    docker_image();
    let setup = Setup::new(&format!("jobs:\n  slow:\n    image: {IMAGE}\n    script:\n      - echo started\n      - sleep 300\n"));
    let slow = setup.head();
    let quick = setup.push(
        "pipe.yml",
        &format!("jobs:\n  slow:\n    image: {IMAGE}\n    script: [echo quick]\n"),
    );
    setup.config("stop_timeout = \"1s\"\n[concurrency]\nruns = 1", "");
    let agent = setup.start();
    assert_eq!(
        agent
            .post(
                "/api/repos/web/runs",
                Some(TOKEN),
                &format!("{{\"commit\":\"{slow}\"}}")
            )
            .status,
        202
    );
    let run = agent.run_of(&slow, "running");
    let log = setup.data().join(format!(
        "repos/web/.pipe/runs/{}/logs/slow.log",
        run["run_id"]
    ));
    wait_for("the job to start", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("started"))
    });
    assert_eq!(
        agent
            .post(
                "/api/repos/web/runs",
                Some(TOKEN),
                &format!("{{\"commit\":\"{quick}\"}}")
            )
            .status,
        202
    );
    let pid = agent.child.id();
    let mut agent = agent;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);
    let agent = setup.start();
    // The sweep ran before the agent listened.
    assert_no_leftovers(pid);
    agent.run_of(&slow, "interrupted");
    agent.run_of(&quick, "passed");
    let retried = agent.post(
        &format!("/api/repos/web/runs/{}/retry", run["run_id"]),
        Some(TOKEN),
        "",
    );
    assert_eq!(retried.status, 202, "{}", retried.body);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn the_agent_and_pipe_run_commit_give_the_same_jobs_statuses_and_artifacts() {
    docker_image();
    let pipeline = format!("jobs:\n  build:\n    image: {IMAGE}\n    script:\n      - mkdir -p out\n      - echo \"made from $(cat version.txt)\" > out/a.txt\n    artifacts: [out]\n  check:\n    image: {IMAGE}\n    needs: [build]\n    script: [grep made out/a.txt]\n  lint:\n    image: {IMAGE}\n    allow_failure: true\n    script: [exit 3]\n");
    let setup = Setup::new(&pipeline);
    let commit = setup.push("version.txt", "7\n");
    setup.config("", "poll = \"100ms\"");
    let agent = setup.start();
    let run = agent.run_of(&commit, "passed");
    let id = run["run_id"].as_i64().unwrap();
    let view = agent
        .get(&format!("/api/repos/web/runs/{id}"), Some(TOKEN))
        .json();
    assert_eq!(agent.stop(), 0);
    let local = pipe(
        &setup.work(),
        &["run", "--commit", &commit, "--pull", "never"],
    );
    assert_eq!(
        local.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    let shown = pipe(&setup.work(), &["show", "last", "--output", "json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let jobs = |v: &Value| -> Vec<(String, String, Value)> {
        let mut jobs: Vec<_> = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["job"].as_str().unwrap().to_string(),
                    j["status"].as_str().unwrap().to_string(),
                    j["artifacts"].clone(),
                )
            })
            .collect();
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        jobs
    };
    assert_eq!(jobs(&view), jobs(&shown));
    assert_eq!(view["run"]["commit"], shown["commit"]);
    let artifact = |root: &Path, id: &Value| {
        std::fs::read_to_string(root.join(format!(".pipe/runs/{id}/artifacts/build/out/a.txt")))
            .unwrap()
    };
    assert_eq!(
        artifact(&setup.data().join("repos/web"), &run["run_id"]),
        "made from 7\n"
    );
    assert_eq!(artifact(&setup.work(), &shown["run_id"]), "made from 7\n");
}
