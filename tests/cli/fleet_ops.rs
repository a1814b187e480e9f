//! What a person and an operator see of a fleet: held deploy jobs resumed through `pipe resume`,
//! the agent's API and its run page; jobs run from the queue given `PIPE_CHANGED_FILES` and
//! counted in the agent's `/metrics`. Real `pipe agent` processes (the local backend) on the
//! test's own PostgreSQL database and one object store folder; each test waits on what the
//! database, the jobs' logs or the agents' answers say.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::agent::{wait_for, Agent, Setup, BOB, TOKEN};
use crate::fleet::testdb;
use crate::harness::{finish, Ran};

struct Fleet {
    setup: Setup,
    db: testdb::TestDb,
    objects: PathBuf,
}

fn fleet() -> Fleet {
    let setup = Setup::new("jobs:\n  hello:\n    script: [echo hello]\n");
    let objects = setup.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    Fleet {
        setup,
        db: testdb::database(),
        objects,
    }
}

impl Fleet {
    /// Starts agent `name` (its data folder `name`), running jobs on this machine, four at once.
    fn start(&self, name: &str) -> Agent {
        std::fs::write(
            self.setup.path().join(format!("{name}.toml")),
            format!(
                "data_dir = \"{name}\"\nlisten = \"127.0.0.1:0\"\nstore = \"{}\"\nobjects = \"file://{}\"\nlease = \"10m\"\nbackend = \"local\"\nstop_timeout = \"1s\"\n[concurrency]\njobs = 4\n[[repos]]\nname = \"web\"\nurl = \"bare.git\"\npoll = \"100ms\"\n[[tokens]]\nname = \"alice\"\ntoken = \"{TOKEN}\"\n[[tokens]]\nname = \"bob\"\ntoken = \"{BOB}\"\n",
                self.db.url,
                self.objects.display()
            ),
        )
        .unwrap();
        self.setup
            .start_with(&format!("{name}.toml"), &self.setup.path().join(name))
    }

    fn db(&self) -> postgres::Client {
        postgres::Client::connect(&self.db.url, postgres::NoTls).unwrap()
    }

    /// Every agent's log, to tell why a test failed.
    fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.setup.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                all.push_str(&format!("--- {}\n{text}", path.display()));
            }
        }
        all
    }

    /// The run of `commit`, once it is recorded.
    fn run_of(&self, commit: &str) -> i64 {
        wait_for(&format!("a run of {commit}"), || {
            let row = self
                .db()
                .query_opt(
                    "SELECT id FROM runs WHERE project = 'web' AND commit_sha = $1",
                    &[&commit],
                )
                .ok()?;
            row.map(|r| r.get(0))
        })
    }

    fn run_state(&self, run: i64) -> String {
        self.db()
            .query_one(
                "SELECT state FROM runs WHERE project = 'web' AND id = $1",
                &[&run],
            )
            .unwrap()
            .get(0)
    }

    /// The state of job `name` of run `run` in the queue (empty before it is queued).
    fn queued(&self, run: i64, name: &str) -> String {
        self.db()
            .query_opt(
                "SELECT state FROM fleet_jobs WHERE project = 'web' AND run_id = $1 AND name = $2",
                &[&run, &name],
            )
            .unwrap()
            .map(|r| r.get(0))
            .unwrap_or_default()
    }

    /// The outcomes of job `name`'s claims, first first.
    fn outcomes(&self, run: i64, name: &str) -> Vec<Option<String>> {
        let rows = self
            .db()
            .query(
                "SELECT a.outcome FROM fleet_attempts a JOIN fleet_jobs j ON j.id = a.job
                 WHERE j.project = 'web' AND j.run_id = $1 AND j.name = $2 ORDER BY a.epoch",
                &[&run, &name],
            )
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// `pipe ARGS` as `ann`, in a laptop's clone of the repository (named `web`, as the
    /// agents name theirs).
    fn pipe(&self, store: bool, args: &[&str]) -> Ran {
        let laptop = self.setup.path().join("laptop");
        if !laptop.exists() {
            std::fs::create_dir(&laptop).unwrap();
            crate::harness::git(&laptop, &["clone", "-q", "../bare.git", "web"]);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipe"));
        cmd.args(args)
            .current_dir(laptop.join("web"))
            .env("NO_COLOR", "1")
            .env("PIPE_USER", "ann")
            .env_remove("PIPE_STORE")
            .env_remove("PIPE_OBJECTS")
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if store {
            cmd.env("PIPE_STORE", &self.db.url);
        }
        finish(cmd)
    }
}

/// Whether agent `name`'s claimed job `job` logged `text` (while it runs: its claim's folder).
fn claimed_log_has(fleet: &Fleet, name: &str, job: &str, text: &str) -> bool {
    let claims = fleet.setup.path().join(name).join("repos/web/.pipe/claims");
    let Ok(entries) = std::fs::read_dir(claims) else {
        return false;
    };
    entries.flatten().any(|claim| {
        std::fs::read_to_string(claim.path().join("logs").join(format!("{job}.log")))
            .is_ok_and(|l| l.contains(text))
    })
}

/// A whole HTTP/1.0 exchange with `agent`: the answer's head and body.
fn exchange(agent: &Agent, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(&agent.addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_string(), body.to_string())
}

/// Signs in on the agent's pages with `token`: the session's cookie.
fn sign_in(agent: &Agent, token: &str) -> String {
    let body = format!("token={token}");
    let (head, _) = exchange(
        agent,
        &format!(
            "POST /login HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no session cookie: {head}"));
    cookie.split(';').next().unwrap().to_string()
}

/// The value of counter or gauge line `name` in `/metrics`' text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A deploy job that waits for a person the first time (until its agent stops) and passes
/// once `marker` is there.
fn ship(name: &str, marker: &Path) -> String {
    format!(
        "  {name}:\n    stage: deploy\n    needs: []\n    script: ['if [ -e {} ]; then echo shipped again; exit 0; fi; echo started; sleep 300']\n",
        marker.display()
    )
}

#[test]
fn held_deploy_jobs_are_resumed_by_a_person_through_the_cli_the_api_and_the_run_page() {
    let fleet = fleet();
    let marker = fleet.setup.path().join("checked");
    let mut a = fleet.start("a");
    let pipeline = format!(
        "jobs:\n{}{}{}",
        ship("ship-a", &marker),
        ship("ship-b", &marker),
        ship("ship-c", &marker)
    );
    let commit = fleet.setup.push("pipe.yml", &pipeline);
    wait_for("the deploy jobs to run on a", || {
        ["ship-a", "ship-b", "ship-c"]
            .iter()
            .all(|job| claimed_log_has(&fleet, "a", job, "started"))
            .then_some(())
    });
    let run = fleet.run_of(&commit);
    // Stopped, a gives its deploy jobs back: held, since they may have deployed.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    a.child.wait().unwrap();
    for job in ["ship-a", "ship-b", "ship-c"] {
        assert_eq!(fleet.queued(run, job), "held", "{}", fleet.logs());
    }
    let n = run.to_string();

    let no_store = fleet.pipe(false, &["resume", &n, "ship-a"]);
    assert_eq!(no_store.code, 2, "{}", no_store.all());
    assert!(
        no_store
            .stderr
            .contains("only a run of a fleet's shared store has held jobs"),
        "{}",
        no_store.all()
    );
    let unknown = fleet.pipe(true, &["resume", &n, "ship-z"]);
    assert_eq!(unknown.code, 2, "{}", unknown.all());
    assert!(
        unknown
            .stderr
            .contains(&format!("run {run} has no job `ship-z`")),
        "{}",
        unknown.all()
    );
    std::fs::write(&marker, "checked by ann").unwrap();
    let resumed = fleet.pipe(true, &["resume", &n, "ship-a"]);
    assert_eq!(resumed.code, 0, "{}", resumed.all());
    assert_eq!(
        resumed.stdout,
        format!("job `ship-a` of run {run} resumed by ann: queued for the fleet's agents\n")
    );
    assert_eq!(fleet.queued(run, "ship-a"), "queued");
    let again = fleet.pipe(true, &["resume", &n, "ship-a"]);
    assert_eq!(again.code, 4, "{}", again.all());
    assert!(
        again.stderr.contains("job `ship-a` of run")
            && again.stderr.contains("is queued, not held"),
        "{}",
        again.all()
    );

    let b = fleet.start("b");
    let api = format!("/api/repos/web/runs/{run}/jobs/ship-b/resume");
    assert_eq!(b.post(&api, None, "").status, 401);
    let unknown = b.post(
        &format!("/api/repos/web/runs/{run}/jobs/ship-z/resume"),
        Some(TOKEN),
        "",
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // The run page's button (its rendering: `agent::web::run::tests`) posts as the session.
    let cookie = sign_in(&b, BOB);
    let answer = b.post(&api, Some(TOKEN), "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        serde_json::json!({"run": run, "job": "ship-b"})
    );
    assert_eq!(b.post(&api, Some(TOKEN), "").status, 409);
    let (head, _) = exchange(
        &b,
        &format!(
            "POST /repos/web/runs/{run}/jobs/ship-c/resume HTTP/1.0\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    assert!(head.starts_with("HTTP/1.0 303"), "{head}");

    wait_for("the run to pass on b", || {
        (fleet.run_state(run) == "passed").then_some(())
    });
    for job in ["ship-a", "ship-b", "ship-c"] {
        assert_eq!(
            fleet.outcomes(run, job),
            [
                Some("given back: interrupted".to_string()),
                Some("passed".to_string())
            ],
            "{job}"
        );
    }
    let audit: Vec<(String, String)> = fleet
        .db()
        .query(
            "SELECT actor, detail FROM audit WHERE project = 'web' AND run_id = $1 AND action = 'resumed' ORDER BY id",
            &[&run],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let said = |who: &str, job: &str| {
        (
            who.to_string(),
            format!("job `{job}` resumed: queued for the fleet's agents"),
        )
    };
    assert_eq!(
        audit,
        [
            said("ann", "ship-a"),
            said("alice", "ship-b"),
            said("bob", "ship-c")
        ]
    );
    assert_eq!(b.stop(), 0);
}

#[test]
fn a_job_run_from_the_queue_gets_the_changed_files_and_is_counted_in_the_agents_metrics() {
    let fleet = fleet();
    let go = fleet.setup.path().join("go");
    let a = fleet.start("a");
    let commit = fleet.setup.push(
        "pipe.yml",
        &format!(
            "jobs:\n  changes:\n    script: ['cat \"$PIPE_CHANGED_FILES\"']\n  waits:\n    script: ['echo started', 'while [ ! -e {} ]; do sleep 0.1; done']\n",
            go.display()
        ),
    );
    let run = fleet.run_of(&commit);
    wait_for("the changes job to end and the other to run", || {
        let state = fleet.queued(run, "changes");
        let ended = !["", "waiting", "queued", "claimed"].contains(&state.as_str());
        (ended && claimed_log_has(&fleet, "a", "waits", "started")).then_some(())
    });
    assert_eq!(fleet.queued(run, "changes"), "passed", "{}", fleet.logs());
    // Its log, published to the object store under its claim (the first): the files the
    // commit changed.
    let log = fleet
        .objects
        .join(format!("web/runs/{run}/changes/1/log/{:020}", 0));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.lines().any(|l| l == "pipe.yml"), "{log}");

    let metrics = || a.get("/metrics", None).body;
    let running = wait_for("the running job to be counted", || {
        let text = metrics();
        (metric(&text, "pipe_agent_jobs_running") == Some(1.0)).then_some(text)
    });
    let passed = metric(&running, "pipe_agent_jobs_total{status=\"passed\"}").unwrap_or(0.0);
    assert!(passed >= 1.0, "{running}");
    std::fs::write(&go, "").unwrap();
    wait_for("the run to pass", || {
        (fleet.run_state(run) == "passed").then_some(())
    });
    wait_for("the second job to be counted, and none running", || {
        let text = metrics();
        let now = metric(&text, "pipe_agent_jobs_total{status=\"passed\"}").unwrap_or(0.0);
        (now > passed && metric(&text, "pipe_agent_jobs_running") == Some(0.0)).then_some(())
    });
    assert_eq!(a.stop(), 0);
}
