//! `pipe agent` processes sharing one PostgreSQL store are a fleet: one of them leads the
//! housekeeping — it alone polls, it sweeps expired leases, it says which queued jobs no agent
//! can claim — and another takes over when it dies. Real agent processes over a real bare
//! repository and the test process's private PostgreSQL (`src/pg/testdb.rs`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::agent::{wait_for, Setup};
use crate::fleet::testdb;
use crate::harness::KillOnDrop;

const LEADING: &str = "leading the fleet's housekeeping";

/// An agent of the fleet: its process (killed on drop) and its log.
struct Member {
    child: Child,
    _guard: KillOnDrop,
    log: PathBuf,
}

impl Member {
    /// Starts agent `name` with its own data folder, polling the setup's repository, on the
    /// shared store `url`, offering `labels`.
    fn start(setup: &Setup, name: &str, url: &str, labels: &[&str]) -> Member {
        let file = setup.path().join(format!("{name}.toml"));
        // Made by whichever agent of the test starts first.
        let objects = setup.path().join("objects");
        let _ = std::fs::create_dir(&objects);
        let labels: Vec<String> = labels.iter().map(|l| format!("{l:?}")).collect();
        std::fs::write(
            &file,
            format!(
                "data_dir = \"{name}\"\nlisten = \"127.0.0.1:0\"\nbackend = \"local\"\nstore = \"{url}\"\nobjects = \"file://{}\"\nlabels = [{}]\n[[repos]]\nname = \"web\"\nurl = \"bare.git\"\npoll = \"100ms\"\n",
                objects.display(),
                labels.join(", ")
            ),
        )
        .unwrap();
        let log = setup.path().join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_pipe"))
            .args(["agent", "--config"])
            .arg(&file)
            .current_dir(setup.path())
            .env("NO_COLOR", "1")
            .env_remove("PIPE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start pipe agent");
        Member {
            _guard: KillOnDrop(child.id() as i32),
            child,
            log,
        }
    }

    fn logged(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(text))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The runs of `commit` in the shared store, as their states.
fn runs_of(url: &str, commit: &str) -> Vec<String> {
    let mut db = postgres::Client::connect(url, postgres::NoTls).unwrap();
    db.query(
        "SELECT state FROM runs WHERE project = 'web' AND commit_sha = $1 ORDER BY id",
        &[&commit],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn passed_once(url: &str, commit: &str) {
    let states = wait_for(&format!("a passed run of {commit}"), || {
        let states = runs_of(url, commit);
        states.contains(&"passed".to_string()).then_some(states)
    });
    assert_eq!(states, ["passed"], "the fleet ran commit {commit} once");
}

#[test]
fn one_agent_of_the_fleet_polls_and_another_takes_over_when_it_is_killed() {
    let db = testdb::database();
    let setup = Setup::new("jobs:\n  hello:\n    script: [echo hello]\n");
    let a = Member::start(&setup, "a", &db.url, &[]);
    let b = Member::start(&setup, "b", &db.url, &[]);
    let a_leads = wait_for("a leader", || {
        [(&a, true), (&b, false)]
            .into_iter()
            .find_map(|(m, is_a)| m.logged(LEADING).then_some(is_a))
    });
    let (mut leader, follower) = if a_leads { (a, b) } else { (b, a) };
    passed_once(&db.url, &setup.head());
    let second = setup.push("version.txt", "2\n");
    passed_once(&db.url, &second);
    assert!(!follower.logged(LEADING), "two leaders: {}", follower.log());

    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    wait_for("the other agent to take over", || {
        follower.logged(LEADING).then_some(())
    });
    let third = setup.push("version.txt", "3\n");
    passed_once(&db.url, &third);
}

#[test]
fn the_leader_requeues_an_expired_claim_and_says_which_job_no_agent_can_claim() {
    use pipe::fleet::{Agent, Fleet, JobSpec};
    let db = testdb::database();
    let setup = Setup::new("jobs:\n  hello:\n    script: [echo hello]\n");
    let leader = Member::start(&setup, "arm", &db.url, &["arm64"]);
    wait_for("a leader", || leader.logged(LEADING).then_some(()));
    let spec = |name: &str, labels: &[&str], deploys: bool| JobSpec {
        name: name.into(),
        needs: vec![],
        deploys,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    let mut gone = Fleet::connect(
        &db.url,
        Agent {
            name: "gone".into(),
            // Only `gone` offers it: the agents running jobs from the queue leave these alone.
            labels: vec!["gone".into()],
            lease: Duration::from_millis(200),
        },
    )
    .unwrap();
    let ids = gone
        .enqueue(
            "other",
            1,
            &[
                spec("test", &["gone"], false),
                spec("deploy", &["gone"], true),
                spec("train", &["gpu"], false),
            ],
        )
        .unwrap();
    // The agent `gone` claims both jobs it can and never renews its claims.
    let claims = [gone.claim().unwrap(), gone.claim().unwrap()];
    assert!(claims.iter().all(Option::is_some));
    wait_for("the leader to sweep", || {
        (gone.state(ids[0]).unwrap().0 != "claimed" && gone.state(ids[1]).unwrap().0 != "claimed")
            .then_some(())
    });
    let (test, note) = gone.state(ids[0]).unwrap();
    assert_eq!(test, "queued", "{note:?}");
    assert_eq!(
        gone.state(ids[1]).unwrap().0,
        "held",
        "a deploy job is never re-run by itself"
    );
    let attempts = gone.attempts(ids[0]).unwrap();
    assert_eq!(attempts[0].outcome.as_deref(), Some("lease expired"));
    wait_for("the leader to say why train waits", || {
        leader
            .logged("job `train` waits for an agent offering labels gpu")
            .then_some(())
    });
    assert!(leader.logged("[arm64]"), "{}", leader.log());
}
