//! `pipe run --watch` on a real Docker engine: a run again after a change a run sees (only the
//! job whose input changed runs again, the other is reused), none for an ignored one, a broken
//! pipeline reported and a fixed one run, Ctrl-C leaving nothing behind. The session's JSON
//! events are the markers waited on: `watching` says the session waits (and will not miss a
//! change made from then on).

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{assert_no_leftovers, docker_image, KillOnDrop, Project, IMAGE};
use crate::schemas::assert_fit;

/// A `pipe run --watch --output json` going on, and the events it wrote so far.
struct Session {
    child: Child,
    lines: mpsc::Receiver<String>,
    events: Vec<Value>,
    _guard: KillOnDrop,
}

impl Session {
    fn start(project: &Project) -> Session {
        docker_image();
        let mut child = project
            .command(&["run", "--watch", "--pull", "never", "--output", "json"])
            .spawn()
            .expect("start pipe");
        let guard = KillOnDrop(child.id() as i32);
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Session {
            child,
            lines,
            events: Vec::new(),
            _guard: guard,
        }
    }

    /// Reads events until the `n`th `event` has come.
    fn until(&mut self, event: &str, n: usize) -> &mut Self {
        while self.count(event) < n {
            // A bound for a broken pipe that never says it, not a wait for anything.
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(300))
                .unwrap_or_else(|e| panic!("no {event} #{n} ({e}) after {:#?}", self.events));
            self.events
                .push(serde_json::from_str(&line).expect("a JSON event"));
        }
        self
    }

    fn count(&self, event: &str) -> usize {
        self.of(event).count()
    }

    fn of<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["event"] == event)
    }

    /// The changed files each new run was started for.
    fn changes(&self) -> Vec<Value> {
        self.of("files_changed")
            .map(|e| e["paths"].clone())
            .collect()
    }

    fn outputs(&self, job: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "job_output" && e["job"] == job)
            .map(|e| e["line"].as_str().unwrap().to_string())
            .collect()
    }

    /// Ctrl-C; the exit code and what pipe said on stderr.
    fn interrupt(mut self) -> (i32, String, u32) {
        let pid = self.child.id();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (status.code().unwrap_or(-1), stderr, pid)
    }
}

fn project(script: &str) -> Project {
    let project = Project::new(&format!(
        "image: {IMAGE}\njobs:\n  show: {{script: ['{script}']}}\n"
    ));
    project.write("src.txt", "one\n");
    project
}

#[test]
fn a_change_to_one_file_runs_again_only_the_job_that_reads_it() {
    let project = Project::new(&format!(
        "image: {IMAGE}
jobs:
  show: {{inputs: [src.txt], script: ['cat src.txt']}}
  other: {{inputs: [other.txt], script: ['cat other.txt']}}
"
    ));
    project
        .write("src.txt", "one\n")
        .write("other.txt", "same\n");
    let mut session = Session::start(&project);
    session.until("watching", 1);
    project.write("src.txt", "two\n");
    session.until("watching", 2);
    assert_eq!(session.changes(), vec![serde_json::json!(["src.txt"])]);
    let runs: Vec<_> = session
        .of("run_started")
        .map(|e| e["run_id"].clone())
        .collect();
    assert_eq!(runs, vec![1, 2], "one new run, recorded as such");
    let finished: Vec<_> = session
        .of("run_finished")
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(finished, vec!["passed", "passed"]);
    // The second run's jobs: the one whose input changed ran, the other was reused.
    let rerun: Vec<_> = session
        .events
        .iter()
        .skip_while(|e| e["event"] != "files_changed")
        .filter(|e| e["event"] == "job_finished")
        .map(|e| (e["job"].clone(), e["reused_from"].clone()))
        .collect();
    assert_eq!(rerun.len(), 2, "each job finished once in run 2: {rerun:?}");
    assert!(rerun.contains(&("show".into(), Value::Null)), "{rerun:?}");
    assert!(rerun.contains(&("other".into(), 1.into())), "{rerun:?}");
    let outputs = session.outputs("show");
    assert!(
        outputs.contains(&"one".to_string()) && outputs.contains(&"two".to_string()),
        "the second run sees the change: {outputs:?}"
    );
    assert_fit("events.v2.json", &session.events);
    let (code, stderr, pid) = session.interrupt();
    assert_eq!(
        code, 130,
        "Ctrl-C ends a session as it ends a run: {stderr}"
    );
    assert_no_leftovers(pid);
}

#[test]
fn changes_under_pipe_or_git_ignored_start_nothing() {
    let project = project("cat src.txt");
    project.write(".gitignore", "scratch/\n*.tmp\n");
    let mut session = Session::start(&project);
    session.until("watching", 1);
    // Ignored changes first: had any counted, it would start a run of its own or join the
    // watched file's, and either way be named in a `files_changed`.
    project.write("notes.tmp", "x");
    project.write("scratch/out.txt", "x");
    project.write(".pipe/mine.txt", "x");
    project.write("src.txt", "two\n");
    session.until("watching", 2);
    assert_eq!(session.changes(), vec![serde_json::json!(["src.txt"])]);
    assert_eq!(session.count("run_started"), 2);
    let (code, _, pid) = session.interrupt();
    assert_eq!(code, 130);
    assert_no_leftovers(pid);
}

#[test]
fn a_broken_pipeline_is_reported_and_the_fixed_one_runs() {
    let project = project("cat src.txt");
    let mut session = Session::start(&project);
    session.until("watching", 1);
    project.write("pipe.yml", "jobs: [\n");
    session.until("watching", 2);
    assert_eq!(
        session.count("run_started"),
        1,
        "nothing runs a broken pipeline"
    );
    project.write(
        "pipe.yml",
        &format!("image: {IMAGE}\njobs:\n  fixed: {{script: [echo fixed]}}\n"),
    );
    session.until("watching", 3);
    assert_eq!(session.count("run_started"), 2);
    assert_eq!(session.outputs("fixed").last().unwrap(), "fixed");
    let (code, stderr, pid) = session.interrupt();
    assert_eq!(code, 130);
    assert!(
        stderr.contains("pipe.yml:1:") && stderr.contains("unclosed bracket"),
        "the broken file is reported as `pipe run` reports it: {stderr}"
    );
    assert_no_leftovers(pid);
}

#[test]
fn ctrl_c_during_a_rerun_stops_it_and_removes_its_containers() {
    let project = project("if grep -q slow src.txt; then echo started; sleep 300; fi");
    let mut session = Session::start(&project);
    session.until("watching", 1);
    project.write("src.txt", "slow\n");
    while !session.outputs("show").contains(&"started".to_string()) {
        let n = session.count("job_output");
        session.until("job_output", n + 1);
    }
    let (code, stderr, pid) = session.interrupt();
    assert_eq!(code, 130, "{stderr}");
    assert_no_leftovers(pid);
    let runs = project.pipe(&["runs"]);
    assert!(
        runs.row("2").starts_with("2 interrupted"),
        "{}",
        runs.stdout
    );
}
