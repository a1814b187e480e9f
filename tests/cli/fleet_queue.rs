//! Agents running a run's jobs from the fleet's queue: real `pipe agent` processes on one
//! PostgreSQL (the test process's private one, a database per test; see `src/pg/testdb.rs`),
//! one object store folder and the real Docker engine. Each test waits on what the database,
//! the agents' logs or the jobs' marker files say, never on time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::{request, wait_for, Setup};
use crate::fleet::testdb;
use crate::harness::{assert_no_leftovers, docker_image, git, KillOnDrop, IMAGE};

/// An agent of the fleet: its process (killed on drop), its data folder and its log.
struct Member {
    child: Child,
    _guard: KillOnDrop,
    name: String,
    /// Its data folder: its clones, their `.pipe/claims/`.
    data: PathBuf,
    log: PathBuf,
}

/// What every agent of a test's fleet shares.
struct Fleet<'a> {
    setup: &'a Setup,
    url: String,
    objects: PathBuf,
    /// How long a claim holds without a heartbeat.
    lease: &'a str,
}

impl Fleet<'_> {
    /// Starts agent `name` with data folder `name` (another start of the same name takes over
    /// the folder a killed one left), offering `labels`, running up to `jobs` jobs at once.
    fn start(&self, name: &str, labels: &[&str], jobs: usize) -> Member {
        docker_image();
        let file = self.setup.path().join(format!("{name}.toml"));
        let labels: Vec<String> = labels.iter().map(|l| format!("{l:?}")).collect();
        std::fs::write(
            &file,
            format!(
                "data_dir = \"{name}\"\nlisten = \"127.0.0.1:0\"\nopen_reads = true\nstore = \"{}\"\nobjects = \"file://{}\"\nlease = \"{}\"\nlabels = [{}]\nstop_timeout = \"1s\"\n[concurrency]\njobs = {jobs}\n[[repos]]\nname = \"web\"\nurl = \"bare.git\"\npoll = \"100ms\"\n",
                self.url,
                self.objects.display(),
                self.lease,
                labels.join(", ")
            ),
        )
        .unwrap();
        let n = std::fs::read_dir(self.setup.path()).unwrap().count();
        let log = self.setup.path().join(format!("{name}-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(["agent", "--config"])
            .arg(&file)
            .current_dir(self.setup.path())
            .env("NO_COLOR", "1")
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start pipe agent");
        Member {
            _guard: KillOnDrop(child.id() as i32),
            name: format!("{}:{}", hostname(), child.id()),
            child,
            data: self.setup.path().join(name),
            log,
        }
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

    /// `pipe ARGS` on a laptop of the team (a folder named as the repository), reading the
    /// fleet's run store and object store; its folder.
    fn pipe_on_laptop(&self, args: &[&str]) -> (std::process::Output, PathBuf) {
        let laptop = self.setup.path().join("laptop/web");
        std::fs::create_dir_all(&laptop).unwrap();
        std::fs::write(laptop.join("pipe.yml"), "jobs:\n  x:\n    script: [true]\n").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(args)
            .current_dir(&laptop)
            .env("NO_COLOR", "1")
            .env("PIPE_STORE", &self.url)
            .env("PIPE_OBJECTS", format!("file://{}", self.objects.display()))
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out, laptop)
    }

    fn db(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    /// Waits until `n` agents said they are present.
    fn present(&self, members: &[&Member]) {
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        wait_for("the agents to join the fleet", || {
            // No table before the first agent has set up the schema.
            let rows = self.db().query("SELECT name FROM fleet_agents", &[]).ok()?;
            let seen: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
            names.iter().all(|n| seen.contains(n)).then_some(())
        });
    }

    /// The run of `commit` and its state, once it has one of `states`.
    fn run_of(&self, commit: &str, states: &[&str], limit: Duration) -> (i64, String) {
        let deadline = Instant::now() + limit;
        loop {
            let row = self
                .db()
                .query_opt(
                    "SELECT id, state FROM runs WHERE project = 'web' AND commit_sha = $1",
                    &[&commit],
                )
                .unwrap();
            if let Some(row) = row {
                let state: String = row.get(1);
                if states.contains(&state.as_str()) {
                    return (row.get(0), state);
                }
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for a run of {commit} to be {states:?}; the agents said:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Each job's claims of run `run`: job name → agents, first claim first.
    fn attempts(&self, run: i64) -> HashMap<String, Vec<(String, Option<String>)>> {
        let rows = self
            .db()
            .query(
                "SELECT j.name, a.agent, a.outcome FROM fleet_attempts a JOIN fleet_jobs j ON j.id = a.job
                 WHERE j.project = 'web' AND j.run_id = $1 ORDER BY a.epoch",
                &[&run],
            )
            .unwrap();
        let mut by_job: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for r in rows {
            by_job
                .entry(r.get(0))
                .or_default()
                .push((r.get(1), r.get(2)));
        }
        by_job
    }

    /// The state and note of job `name` of run `run` in the queue.
    fn queued(&self, run: i64, name: &str) -> (String, Option<String>) {
        let row = self
            .db()
            .query_one(
                "SELECT state, note FROM fleet_jobs WHERE project = 'web' AND run_id = $1 AND name = $2",
                &[&run, &name],
            )
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// Each job of run `run` as the run store recorded it: name → status.
    fn recorded(&self, run: i64) -> HashMap<String, String> {
        let rows = self
            .db()
            .query(
                "SELECT name, status FROM jobs WHERE project = 'web' AND run_id = $1",
                &[&run],
            )
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }
}

impl Member {
    fn logged(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(text))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A fleet of a test: the repository (first holding a pipeline of one job), a database of its
/// own and an object store folder.
fn setup() -> (Setup, testdb::TestDb, PathBuf) {
    let setup = Setup::new(&format!(
        "image: {IMAGE}\njobs:\n  hello:\n    script: [echo hello]\n"
    ));
    let db = testdb::database();
    let objects = setup.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    (setup, db, objects)
}

/// A pipeline of `n` jobs: `build` makes an artifact, every other job needs it and checks it.
fn wide_pipeline(n: usize) -> String {
    let mut text = format!(
        "image: {IMAGE}\njobs:\n  build:\n    script: [echo built > built.txt]\n    artifacts: [built.txt]\n"
    );
    for i in 1..n {
        text.push_str(&format!(
            "  j{i}:\n    needs: [build]\n    script: ['grep -q built built.txt', 'echo job {i}']\n"
        ));
    }
    text
}

#[test]
fn three_agents_run_each_job_of_a_wide_run_once_and_each_runs_some() {
    let n: usize = std::env::var("PIPE_TEST_FLEET_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects: objects.clone(),
        lease: "30s",
    };
    let members: Vec<Member> = ["a", "b", "c"]
        .iter()
        .map(|name| fleet.start(name, &[], 4))
        .collect();
    fleet.present(&members.iter().collect::<Vec<_>>());
    let commit = setup.push("pipe.yml", &wide_pipeline(n));
    let began = Instant::now();
    let (run, state) = fleet.run_of(
        &commit,
        &["passed", "failed"],
        Duration::from_secs(60 + n as u64),
    );
    eprintln!(
        "{n} jobs over 3 agents: {:.1}s",
        began.elapsed().as_secs_f64()
    );
    let logs: Vec<String> = members.iter().map(Member::log).collect();
    assert_eq!(state, "passed", "{logs:#?}");
    let attempts = fleet.attempts(run);
    assert_eq!(attempts.len(), n, "every job was claimed");
    for (job, claims) in &attempts {
        assert_eq!(claims.len(), 1, "job {job} was claimed once: {claims:?}");
        assert_eq!(claims[0].1.as_deref(), Some("passed"), "{job}");
    }
    let ran: HashSet<&String> = attempts.values().map(|c| &c[0].0).collect();
    for m in &members {
        assert!(
            ran.contains(&m.name),
            "agent {} ran no job: {ran:?}",
            m.name
        );
    }
    let recorded = fleet.recorded(run);
    assert_eq!(recorded.len(), n);
    assert!(recorded.values().all(|s| s == "passed"), "{recorded:?}");
    // Each job's log is in the object store, for any agent or laptop to read, under the epoch
    // of its one claim.
    let logs = objects.join("web/runs").join(run.to_string());
    assert!(
        logs.join("j7/1/log").is_dir(),
        "no log of j7 under {}",
        logs.display()
    );
    for m in &members {
        assert_no_leftovers(m.pid());
        let claims = m.data.join("repos/web/.pipe/claims");
        let left: Vec<_> = std::fs::read_dir(&claims).map_or(vec![], |d| d.flatten().collect());
        assert!(left.is_empty(), "claim folders left: {left:?}");
    }
}

#[test]
fn a_job_with_a_label_nobody_offers_waits_and_the_leader_says_so_and_a_failure_skips_what_needs_it()
{
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects,
        lease: "30s",
    };
    let a = fleet.start("a", &["arm64"], 2);
    let b = fleet.start("b", &[], 2);
    fleet.present(&[&a, &b]);
    let commit = setup.push(
        "pipe.yml",
        &format!(
            "image: {IMAGE}\njobs:\n  lint:\n    script: [exit 3]\n  after-lint:\n    needs: [lint]\n    script: [echo never]\n  on-arm:\n    labels: [arm64]\n    script: [echo arm]\n  train:\n    labels: [gpu]\n    script: [echo trained]\n"
        ),
    );
    wait_for("the leader to say why train waits", || {
        [&a, &b]
            .iter()
            .any(|m| m.logged("job `train` waits for an agent offering labels gpu"))
            .then_some(())
    });
    let (run, state) = fleet.run_of(&commit, &["running"], Duration::from_secs(60));
    assert_eq!(state, "running");
    wait_for("the jobs other than train to be over", || {
        let over = ["lint", "after-lint", "on-arm"]
            .iter()
            .all(|j| !["queued", "waiting", "claimed"].contains(&fleet.queued(run, j).0.as_str()));
        over.then_some(())
    });
    assert_eq!(fleet.queued(run, "lint").0, "failed");
    assert_eq!(
        fleet.queued(run, "after-lint"),
        ("skipped".into(), Some("needs `lint`, which failed".into()))
    );
    assert_eq!(fleet.queued(run, "on-arm").0, "passed");
    assert_eq!(fleet.queued(run, "train").0, "queued");
    let attempts = fleet.attempts(run);
    assert_eq!(attempts["on-arm"][0].0, a.name, "only a offers arm64");
    let recorded = fleet.recorded(run);
    assert_eq!(recorded["lint"], "failed");
    assert_eq!(recorded["after-lint"], "skipped");
    assert_eq!(
        fleet.run_of(&commit, &["running"], Duration::ZERO).1,
        "running"
    );

    // An agent offering gpu comes: train runs, and the run ends, failed by lint.
    let gpu = fleet.start("gpu", &["gpu"], 1);
    let (_, state) = fleet.run_of(&commit, &["passed", "failed"], Duration::from_secs(60));
    assert_eq!(state, "failed", "{}", gpu.log());
    assert_eq!(fleet.attempts(run)["train"][0].0, gpu.name);
}

/// Whether a log of a job claimed by the agent with data folder `data` holds `text`.
fn claimed_log_has(data: &std::path::Path, text: &str) -> bool {
    let claims = data.join("repos/web/.pipe/claims");
    let Ok(entries) = std::fs::read_dir(claims) else {
        return false;
    };
    entries.flatten().any(|claim| {
        std::fs::read_dir(claim.path().join("logs")).is_ok_and(|logs| {
            logs.flatten()
                .any(|log| std::fs::read_to_string(log.path()).is_ok_and(|l| l.contains(text)))
        })
    })
}

fn signal(member: &Member, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(member.pid() as i32), signal).unwrap();
}

#[test]
fn a_killed_agents_test_job_runs_again_elsewhere_its_deploy_job_is_held_and_its_containers_go() {
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects,
        lease: "2s",
    };
    let mut a = fleet.start("a", &[], 2);
    fleet.present(&[&a]);
    let commit = setup.push(
        "pipe.yml",
        &format!(
            "image: {IMAGE}\njobs:\n  slow-test:\n    script: ['echo started test', 'sleep 5']\n  ship:\n    stage: deploy\n    needs: []\n    script: ['echo started ship', 'sleep 5']\n"
        ),
    );
    wait_for("both jobs to run on a", || {
        (claimed_log_has(&a.data, "started test") && claimed_log_has(&a.data, "started ship"))
            .then_some(())
    });
    let killed = a.pid();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let (run, _) = fleet.run_of(&commit, &["running"], Duration::ZERO);

    let b = fleet.start("b", &[], 2);
    wait_for("the test job to pass on b", || {
        (fleet.queued(run, "slow-test").0 == "passed").then_some(())
    });
    let attempts = fleet.attempts(run);
    let test = &attempts["slow-test"];
    assert_eq!(test.len(), 2, "{test:?}");
    assert_eq!(test[0].1.as_deref(), Some("lease expired"));
    assert_eq!(test[1], (b.name.clone(), Some("passed".into())));
    let (state, note) = fleet.queued(run, "ship");
    assert_eq!(state, "held", "{note:?}");
    assert!(note.unwrap().contains("may have deployed"));
    assert_eq!(
        attempts["ship"].len(),
        1,
        "a deploy job is never run again by itself"
    );
    wait_for("the leader to say the deploy job is held", || {
        b.logged("held until a person resumes it").then_some(())
    });
    assert_eq!(
        fleet.run_of(&commit, &["running"], Duration::ZERO).1,
        "running"
    );

    // An agent started on the killed one's data folder removes what it left.
    let again = fleet.start("a", &[], 2);
    wait_for("the sweep at start", || {
        again.logged("swept what dead runs left").then_some(())
    });
    assert_no_leftovers(killed);
    let claims = a.data.join("repos/web/.pipe/claims");
    let left: Vec<_> = std::fs::read_dir(&claims).map_or(vec![], |d| d.flatten().collect());
    assert!(left.is_empty(), "claim folders left: {left:?}");
}

/// The log that claim `epoch` of job `slug` of run `run` published in the object store folder
/// `objects`: its chunks in order (`pipe` checks them against the end record when it reads).
fn published_log(objects: &Path, run: i64, slug: &str, epoch: i64) -> String {
    let dir = objects.join(format!("web/runs/{run}/{slug}/{epoch}/log"));
    let mut chunks: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with("end"))
        .collect();
    chunks.sort();
    chunks
        .iter()
        .map(|c| std::fs::read_to_string(c).unwrap())
        .collect()
}

/// The artifact `path` that claim `epoch` of job `slug` of run `run` published: its manifest's
/// entry, then the blob it names.
fn published_artifact(objects: &Path, run: i64, slug: &str, epoch: i64, path: &str) -> String {
    let manifest = objects.join(format!("web/runs/{run}/{slug}/{epoch}/artifacts"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let entry = (manifest["entries"].as_array().unwrap().iter())
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {manifest}"));
    let hash = entry["file"]["sha256"].as_str().unwrap();
    std::fs::read_to_string(objects.join("sha256").join(&hash[..2]).join(hash)).unwrap()
}

/// Every object under `dir` of the object store folder (none when it is missing).
fn objects_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .flat_map(|e| match e.path().is_dir() {
            true => objects_under(&e.path()),
            false => vec![e.path()],
        })
        .collect()
}

#[test]
fn an_agent_paused_past_its_lease_is_refused_when_it_finishes_late() {
    use nix::sys::signal::Signal;
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects: objects.clone(),
        lease: "2s",
    };
    // The leader sweeps; only agents offering `pause` claim the job, and only one offering
    // `late`, started once the paused agent is back, the job that needs it.
    let leader = fleet.start("leader", &[], 1);
    wait_for("a leader", || {
        leader
            .logged("leading the fleet's housekeeping")
            .then_some(())
    });
    let paused = fleet.start("paused", &["pause"], 1);
    fleet.present(&[&leader, &paused]);
    let commit = setup.push(
        "pipe.yml",
        &format!(
            "image: {IMAGE}\njobs:\n  slow:\n    labels: [pause]\n    script: ['echo \"made by $PIPE_AGENT\" > who.txt', 'echo \"started by $PIPE_AGENT\"', 'sleep 3']\n    artifacts: [who.txt]\n  check:\n    needs: [slow]\n    labels: [late]\n    script: ['echo \"read: $(cat who.txt)\"']\n"
        ),
    );
    wait_for("the job to run on the agent to pause", || {
        claimed_log_has(&paused.data, "started by").then_some(())
    });
    signal(&paused, Signal::SIGSTOP);
    let (run, _) = fleet.run_of(&commit, &["running"], Duration::ZERO);
    wait_for(
        "the lease to run out and the job to be queued again",
        || (fleet.queued(run, "slow").0 == "queued").then_some(()),
    );
    let other = fleet.start("other", &["pause"], 1);
    wait_for("the job to pass on the other agent", || {
        (fleet.queued(run, "slow").0 == "passed").then_some(())
    });

    signal(&paused, Signal::SIGCONT);
    wait_for("the paused agent's late write to be refused", || {
        paused.logged("this agent's write is refused").then_some(())
    });
    // What the paused agent published under its claim goes; nothing reads it.
    let stale = objects.join(format!("web/runs/{run}/slow/1"));
    wait_for("the paused agent's outputs to be removed", || {
        objects_under(&stale).is_empty().then_some(())
    });
    let late = fleet.start("late", &["late"], 1);
    let (_, state) = fleet.run_of(&commit, &["passed", "failed"], Duration::from_secs(60));
    assert_eq!(state, "passed", "{}", late.log());
    let attempts = &fleet.attempts(run)["slow"];
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0],
        (paused.name.clone(), Some("lease expired".into()))
    );
    assert_eq!(attempts[1], (other.name.clone(), Some("passed".into())));
    assert_eq!(fleet.queued(run, "slow").0, "passed");
    assert_eq!(fleet.recorded(run)["slow"], "passed");

    // The job below read the winner's artifact, and the run store names the winner's outputs.
    let epoch = |job: &str| -> i64 {
        (fleet.db())
            .query_one(
                "SELECT epoch FROM jobs WHERE project = 'web' AND run_id = $1 AND name = $2",
                &[&run, &job],
            )
            .unwrap()
            .get(0)
    };
    let made_by = format!("made by {}", other.name);
    let read = published_log(&objects, run, "check", epoch("check"));
    assert!(read.contains(&format!("read: {made_by}")), "{read}");
    let log = published_log(&objects, run, "slow", epoch("slow"));
    assert!(log.contains(&format!("started by {}", other.name)), "{log}");
    let artifact = published_artifact(&objects, run, "slow", epoch("slow"), "who.txt");
    assert_eq!(artifact.trim(), made_by);
    assert_eq!((epoch("slow"), epoch("check")), (2, 1));

    // `pipe logs` and `pipe artifacts` on a laptop read the run store's epochs too.
    let (logs, _) = fleet.pipe_on_laptop(&["logs", &run.to_string(), "check"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains(&format!("read: {made_by}")), "{text}{logs:?}");
    let (copied, laptop) =
        fleet.pipe_on_laptop(&["artifacts", &run.to_string(), "slow", "--to", "got"]);
    assert!(copied.status.success(), "{copied:?}");
    let got = std::fs::read_to_string(laptop.join("got/who.txt")).unwrap();
    assert_eq!(got.trim(), made_by);
}

#[test]
fn a_run_in_flight_goes_on_when_the_database_restarts() {
    let (setup, _, objects) = setup();
    let mut server = testdb::Server::start();
    let fleet = Fleet {
        setup: &setup,
        url: server.url.clone(),
        objects,
        lease: "5s",
    };
    let a = fleet.start("a", &[], 2);
    let b = fleet.start("b", &[], 2);
    fleet.present(&[&a, &b]);
    let mut pipeline =
        format!("image: {IMAGE}\njobs:\n  c0:\n    script: ['echo step 0', 'sleep 1']\n");
    for i in 1..6 {
        pipeline.push_str(&format!(
            "  c{i}:\n    needs: [c{}]\n    script: ['echo step {i}', 'sleep 1']\n",
            i - 1
        ));
    }
    let commit = setup.push("pipe.yml", &pipeline);
    wait_for("the chain to be under way", || {
        [&a, &b]
            .iter()
            .any(|m| claimed_log_has(&m.data, "step 2"))
            .then_some(())
    });
    server.down();
    server.up();
    let (run, state) = fleet.run_of(&commit, &["passed", "failed"], Duration::from_secs(120));
    assert_eq!(state, "passed", "{}\n{}", a.log(), b.log());
    let recorded = fleet.recorded(run);
    assert_eq!(recorded.len(), 6);
    assert!(recorded.values().all(|s| s == "passed"), "{recorded:?}");
    for i in 0..6 {
        assert_eq!(fleet.queued(run, &format!("c{i}")).0, "passed");
    }
}

#[test]
fn a_stopped_agent_gives_its_running_job_back_at_once_and_leaves_nothing() {
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects,
        // Far longer than the test: the job is queued again by the agent, not by a sweep.
        lease: "10m",
    };
    let mut a = fleet.start("a", &[], 1);
    fleet.present(&[&a]);
    let commit = setup.push(
        "pipe.yml",
        &format!("image: {IMAGE}\njobs:\n  long:\n    script: ['echo started', 'sleep 300']\n"),
    );
    wait_for("the job to run", || {
        claimed_log_has(&a.data, "started").then_some(())
    });
    signal(&a, nix::sys::signal::Signal::SIGTERM);
    let pid = a.pid();
    wait_for("the agent to stop", || {
        crate::harness::gone(pid as i32).then_some(())
    });
    a.child.wait().unwrap();
    let (run, _) = fleet.run_of(&commit, &["running"], Duration::ZERO);
    let (state, note) = fleet.queued(run, "long");
    assert_eq!(state, "queued", "{note:?}\n{}", a.log());
    let attempts = &fleet.attempts(run)["long"];
    assert_eq!(
        attempts[0].1.as_deref(),
        Some("given back: interrupted"),
        "{attempts:?}"
    );
    assert_no_leftovers(pid);
    let claims = a.data.join("repos/web/.pipe/claims");
    let left: Vec<_> = std::fs::read_dir(&claims).map_or(vec![], |d| d.flatten().collect());
    assert!(left.is_empty(), "claim folders left: {left:?}");
}

#[test]
fn a_gated_run_of_the_fleet_is_released_from_a_laptop_with_its_artifacts_from_the_object_store() {
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects: objects.clone(),
        lease: "30s",
    };
    let agent = fleet.start("a", &[], 2);
    fleet.present(&[&agent]);
    let commit = setup.push(
        "pipe.yml",
        &format!(
            "image: {IMAGE}\nstages: [build, release]\njobs:\n  build:\n    script: ['echo \"made by $PIPE_AGENT\" > built.txt']\n    artifacts: [built.txt]\n  publish:\n    stage: release\n    needs: [build]\n    gate: {{approvals: 1}}\n    script: ['echo \"publishing what was $(cat built.txt)\"']\n"
        ),
    );
    let (run, _) = fleet.run_of(&commit, &["awaiting_release"], Duration::from_secs(60));
    // A laptop: a clone of the repository named as the agent's (runs are shared by the
    // project's name), with none of the agent's folders.
    let laptop = setup.path().join("laptop");
    std::fs::create_dir(&laptop).unwrap();
    git(&laptop, &["clone", "-q", "../bare.git", "web"]);
    let approved = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args([
            "approve",
            &run.to_string(),
            "--by",
            "ann",
            "--store",
            &db.url,
        ])
        .current_dir(laptop.join("web"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let child = Command::new(env!("CARGO_BIN_EXE_pipe"))
        .args(["release", &run.to_string(), "--store", &db.url, "--objects"])
        .arg(format!("file://{}", objects.display()))
        .current_dir(laptop.join("web"))
        .env("NO_COLOR", "1")
        .env("PIPE_USER", "laptop-user")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let released = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&released.stdout),
        String::from_utf8_lossy(&released.stderr),
    );
    assert!(released.status.success(), "{out}\n{err}");
    assert!(
        out.contains(&format!("publishing what was made by {}", agent.name)),
        "the release job read the artifact the agent's job made: {out}\n{err}"
    );
    assert_eq!(
        fleet.run_of(&commit, &["released"], Duration::ZERO).1,
        "released"
    );
    assert_no_leftovers(pid);
}

#[test]
fn an_agent_that_ran_none_of_a_fleet_runs_jobs_shows_the_run_and_their_logs_from_the_object_store()
{
    let (setup, db, objects) = setup();
    let fleet = Fleet {
        setup: &setup,
        url: db.url.clone(),
        objects,
        lease: "30s",
    };
    // `a` leads (it starts the run, so the run's folder is a's) and alone offers the jobs'
    // label; `b`, whose page is read, has neither the run's folder nor any job's log.
    let a = fleet.start("a", &["runner"], 2);
    wait_for("a to lead", || {
        a.logged("leading the fleet's housekeeping").then_some(())
    });
    let b = fleet.start("b", &[], 2);
    fleet.present(&[&a, &b]);
    let commit = setup.push(
        "pipe.yml",
        &format!(
            "image: {IMAGE}\njobs:\n  hello:\n    labels: [runner]\n    script: ['echo \"hello from $PIPE_AGENT\"']\n  after:\n    needs: [hello]\n    labels: [runner]\n    script: [echo after]\n"
        ),
    );
    let (run, state) = fleet.run_of(&commit, &["passed", "failed"], Duration::from_secs(60));
    assert_eq!(state, "passed", "{}", fleet.logs());
    let addr = std::fs::read_to_string(b.data.join("agent.addr")).unwrap();
    let get = |path: &str| request(addr.trim(), "GET", path, &[], b"");
    let shown = get(&format!("/api/repos/web/runs/{run}"));
    assert_eq!(shown.status, 200, "{}", shown.body);
    let view = shown.json();
    assert_eq!(view["run"]["state"], "passed", "{}", shown.body);
    assert_eq!(
        view["needs"],
        serde_json::json!([["hello", "after"]]),
        "{}",
        shown.body
    );
    let log = get(&format!("/api/repos/web/runs/{run}/jobs/hello/log"));
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(
        log.body.contains(&format!("hello from {}", a.name)) && log.body.contains("event: end"),
        "b streams the log a published: {}",
        log.body
    );
}
