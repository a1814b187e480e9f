//! The engine as a library, as a hook or the agent calls it: no pipe process is spawned. Two
//! projects run at once in this process, each with its own cancel handle and event sink; then
//! one is released and the other retried, and the store says so.

use std::path::Path;
use std::time::Duration;

use pipe::engine::{
    self, BackendKind, Cancel, Clock, Context, ExecOptions, Interrupt, ReleaseRequest,
    RetryRequest, StartRequest,
};
use pipe::event::{Event, EventKind};
use pipe::store::{RunState, SqliteStore, Store};
use tokio::sync::mpsc;

/// A job that leaves `mine` in `dir` and waits (at most a minute) for `theirs`: both jobs can
/// only pass if they ran at the same time.
fn meet(dir: &Path, mine: &str, theirs: &str) -> String {
    let (mine, theirs) = (dir.join(mine), dir.join(theirs));
    format!(
        "touch {m}; i=0; while [ ! -e {t} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; test -e {t}",
        m = mine.display(),
        t = theirs.display()
    )
}

fn project(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipe.yml"), pipeline).unwrap();
    dir
}

fn context(project: &Path) -> (Context, mpsc::UnboundedReceiver<Event>) {
    let (events, seen) = mpsc::unbounded_channel();
    let ctx = Context {
        project: project.to_path_buf(),
        actor: "library".into(),
        clock: Clock::System,
        events: Some(events),
        masks: Default::default(),
        store: Default::default(),
        objects: None,
    };
    (ctx, seen)
}

fn local() -> ExecOptions {
    ExecOptions {
        backend: Some(BackendKind::Local),
        ..ExecOptions::default()
    }
}

fn start(ctx: Context, cancel: Cancel) -> StartRequest {
    StartRequest {
        ctx,
        file: None,
        jobs: Vec::new(),
        stages: Vec::new(),
        until: None,
        no_deploy: false,
        exec: local(),
        release: false,
        trigger: "library".into(),
        source: pipe::engine::Source::WorkingTree,
        changes_since: None,
        reuse: true,
        cancel,
        fleet: None,
    }
}

fn drain(mut seen: mpsc::UnboundedReceiver<Event>) -> Vec<EventKind> {
    let mut kinds = Vec::new();
    while let Ok(event) = seen.try_recv() {
        kinds.push(event.kind);
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_run_at_once_then_one_is_released_and_the_other_retried() {
    let shared = tempfile::tempdir().unwrap();
    let gated = project(&format!(
        "jobs:\n  build: {{script: ['{}']}}\n  ship: {{stage: release, gate: {{approvals: 0}}, script: ['echo shipped']}}\n",
        meet(shared.path(), "a", "b")
    ));
    // Fails the first time (no `second` yet), passes when retried.
    let flaky = project(&format!(
        "jobs:\n  build: {{script: ['{}']}}\n  flaky: {{needs: [build], script: ['if [ -e {s} ]; then echo again; else touch {s}; exit 1; fi']}}\n",
        meet(shared.path(), "b", "a"),
        s = shared.path().join("second").display()
    ));

    let (gated_ctx, gated_seen) = context(gated.path());
    let (flaky_ctx, flaky_seen) = context(flaky.path());
    // Spawned, as the agent would: each run is a task of its own on a shared runtime.
    let first = tokio::spawn(engine::start(start(gated_ctx.clone(), Cancel::new())));
    let second = tokio::spawn(engine::start(start(flaky_ctx.clone(), Cancel::new())));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let first = first.expect("the gated project ran");
    let second = second.expect("the flaky project ran");
    assert_eq!(first.state, RunState::AwaitingRelease);
    assert_eq!(second.state, RunState::Failed);
    assert_eq!(
        (first.run, second.run),
        (1, 1),
        "run numbers are per project"
    );

    let gated_events = drain(gated_seen);
    assert!(
        gated_events.iter().any(|k| matches!(k,
            EventKind::AwaitingRelease { run_id, next }
                if *run_id == 1 && next == "release 1 is ready: pipe release 1")),
        "{gated_events:?}"
    );
    // Each sink hears only its own project's jobs.
    let flaky_events = drain(flaky_seen);
    assert!(flaky_events
        .iter()
        .any(|k| matches!(k, EventKind::JobFinished { job, .. } if job == "flaky")));
    assert!(!flaky_events
        .iter()
        .any(|k| matches!(k, EventKind::AwaitingRelease { .. })));

    let released = engine::release(ReleaseRequest {
        ctx: gated_ctx.clone(),
        run: "last".into(),
        again: false,
        exec: ExecOptions::default(),
        cancel: Cancel::new(),
    })
    .await
    .expect("released");
    assert_eq!((released.run, released.state), (1, RunState::Released));
    // A second release is refused, and says why.
    let again = engine::release(ReleaseRequest {
        ctx: gated_ctx.clone(),
        run: "1".into(),
        again: false,
        exec: ExecOptions::default(),
        cancel: Cancel::new(),
    })
    .await;
    assert!(
        matches!(
            again,
            Err(engine::EngineError::Refused(
                engine::Refusal::NotReleasable {
                    run: 1,
                    state: RunState::Released
                }
            ))
        ),
        "{again:?}"
    );

    let retried = engine::retry(RetryRequest {
        ctx: flaky_ctx.clone(),
        run: "1".into(),
        failed: true,
        exec: ExecOptions::default(),
        cancel: Cancel::new(),
    })
    .await
    .expect("retried");
    assert_eq!((retried.run, retried.state), (1, RunState::Passed));

    let mut store = SqliteStore::open(gated.path()).unwrap();
    let run = store.run(1).unwrap();
    assert_eq!(run.state, RunState::Released);
    let ship = store.jobs(1).unwrap();
    let ship = ship.iter().find(|j| j.name == "ship").unwrap();
    assert_eq!(ship.status, "passed");
    let actions: Vec<String> = store
        .audit_trail(1)
        .unwrap()
        .into_iter()
        .map(|a| format!("{} {}", a.actor, a.action))
        .collect();
    assert_eq!(
        actions,
        [
            "library started",
            // Who the run is by, for gates with `not_author`.
            "pipe author",
            "library awaiting_release",
            "library release",
            "library released",
            "library release refused"
        ]
    );

    let mut store = SqliteStore::open(flaky.path()).unwrap();
    assert_eq!(store.run(1).unwrap().state, RunState::Passed);
    let jobs = store.jobs(1).unwrap();
    assert!(jobs.iter().all(|j| j.status == "passed"), "{jobs:?}");
    assert_eq!(
        store.runs(None, 10).unwrap().len(),
        1,
        "retried in the same run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_run_leaves_the_other_running() {
    let shared = tempfile::tempdir().unwrap();
    let stopped = shared.path().join("stopped");
    let waits = project(&format!(
        "jobs:\n  wait: {{script: ['touch {}; sleep 300']}}\n",
        shared.path().join("waiting").display()
    ));
    // Passes only once the other run was stopped: it outlives that run's cancellation.
    let goes_on = project(&format!(
        "jobs:\n  on: {{script: ['i=0; while [ ! -e {s} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; test -e {s}']}}\n",
        s = stopped.display()
    ));
    let cancel = Cancel::new();
    let (waits_ctx, waits_seen) = context(waits.path());
    let (on_ctx, _on_seen) = context(goes_on.path());
    let waiting = tokio::spawn(engine::start(start(waits_ctx, cancel.clone())));
    let other = tokio::spawn(engine::start(start(on_ctx, Cancel::new())));
    while !shared.path().join("waiting").exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.request(Interrupt::Interrupt);
    let waited = waiting
        .await
        .unwrap()
        .expect("the cancelled run is recorded");
    assert_eq!(waited.state, RunState::Interrupted);
    // The cancelled run's watchers hear that it was asked to stop.
    let heard = drain(waits_seen);
    assert!(
        heard.iter().any(|k| matches!(k,
            EventKind::Stopping { kill: false, reason } if reason == "interrupt")),
        "{heard:?}"
    );
    std::fs::write(&stopped, "").unwrap();
    let went_on = other.await.unwrap().expect("the other run ran");
    assert_eq!(went_on.state, RunState::Passed);
}

/// What a git hook asks for: never a deploy or release job, whatever else the request says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_deploys_runs_no_deploy_or_release_job() {
    let dir = project(
        "jobs:
  build: {script: ['echo built']}
  check: {stage: test, script: ['echo checked']}
  staging: {stage: deploy, script: ['echo deployed']}
  preview: {stage: test, environment: preview, script: ['echo previewed']}
  ship: {stage: release, gate: {approvals: 0}, script: ['echo shipped']}
",
    );
    let (ctx, seen) = context(dir.path());
    let outcome = engine::start(StartRequest {
        no_deploy: true,
        ..start(ctx.clone(), Cancel::new())
    })
    .await
    .expect("ran");
    assert_eq!(outcome.state, RunState::Passed, "nothing waits at a gate");
    let started: Vec<String> = drain(seen)
        .into_iter()
        .filter_map(|k| match k {
            EventKind::JobStarted { job, .. } => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(started.contains(&"build".to_string()) && started.contains(&"check".to_string()));

    // Going on to the release is refused before anything runs.
    let refused = engine::start(StartRequest {
        no_deploy: true,
        release: true,
        ..start(ctx.clone(), Cancel::new())
    })
    .await;
    assert!(
        matches!(
            refused,
            Err(engine::EngineError::Refused(engine::Refusal::NeverReleases))
        ),
        "{:?}",
        refused.map(|o| o.state)
    );
    // Asking for the deploy stage or a deploy job by name is refused, not quietly ignored.
    for (stages, jobs, says) in [
        (vec!["deploy".to_string()], vec![], "stage `deploy` deploys"),
        (vec![], vec!["preview".to_string()], "job `preview` deploys"),
    ] {
        let err = engine::start(StartRequest {
            no_deploy: true,
            stages,
            jobs,
            ..start(ctx.clone(), Cancel::new())
        })
        .await
        .map(|o| o.state)
        .unwrap_err();
        let engine::EngineError::Plan { problems, .. } = err else {
            panic!("not a plan problem: {err}")
        };
        assert!(problems[0].message.contains(says), "{problems:?}");
    }
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.runs(None, 10).unwrap().len(),
        1,
        "refusals record no run"
    );
}
