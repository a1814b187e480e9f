//! Scheduler behaviour against the scripted fake backend.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::backend::fake::FakeBackend;
use crate::event::EventKind;

struct Ran {
    result: RunResult,
    events: Vec<EventKind>,
    fake: Arc<FakeBackend>,
}

async fn run_yaml(
    yaml: &str,
    concurrency: usize,
    fail_fast: bool,
    interrupt_after: Option<Duration>,
) -> Ran {
    run_yaml_interrupted(
        yaml,
        concurrency,
        fail_fast,
        interrupt_after.into_iter().collect(),
    )
    .await
}

/// Sends one interrupt after each of `interrupts` (each counted from the one before).
async fn run_yaml_interrupted(
    yaml: &str,
    concurrency: usize,
    fail_fast: bool,
    interrupts: Vec<Duration>,
) -> Ran {
    run_with(
        FakeBackend::default(),
        yaml,
        concurrency,
        fail_fast,
        interrupts,
    )
    .await
}

async fn run_with(
    fake: FakeBackend,
    yaml: &str,
    concurrency: usize,
    fail_fast: bool,
    interrupts: Vec<Duration>,
) -> Ran {
    let pipeline = crate::pipeline::parse(yaml, "t").expect("valid");
    let plan = crate::plan::build(&pipeline, crate::plan::Selection::all()).expect("plans");
    let project = tempfile::tempdir().unwrap();
    let run = RunDir::create(project.path(), 1).unwrap();
    std::fs::create_dir_all(run.source()).unwrap();
    let fake = Arc::new(fake);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (itx, irx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for after in interrupts {
            tokio::time::sleep(after).await;
            let _ = itx.send(Interrupt::Interrupt);
        }
    });
    let opts = RunOptions {
        source: run.source(),
        run,
        concurrency,
        fail_fast,
        env: vec![],
        secrets: Default::default(),
        changed_files: None,
        pipeline_file: "pipe.yml".into(),
        masks: Default::default(),
        cache: None,
        reuse: None,
        backlog: Default::default(),
    };
    let result = super::run(&plan, fake.clone(), opts, tx, irx)
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e.kind);
    }
    Ran {
        result,
        events,
        fake,
    }
}

fn span(ran: &Ran, job: &str) -> (tokio::time::Instant, tokio::time::Instant) {
    let spans = ran.fake.spans.lock().unwrap();
    let (_, a, b) = spans
        .iter()
        .find(|(j, _, _)| j == job)
        .unwrap_or_else(|| panic!("{job} did not run"));
    (*a, *b)
}

fn skipped(ran: &Ran) -> Vec<(String, String)> {
    ran.events
        .iter()
        .filter_map(|e| match e {
            EventKind::JobSkipped { job, reason } => Some((job.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_job_starts_when_its_own_needs_are_done_not_its_stage() {
    // `fast-test` needs only `fast`, so it must not wait for `slow` (same stage as `fast`).
    let ran = run_yaml(
        "jobs:\n  slow: {stage: build, script: [sleep 1000]}\n  fast: {stage: build, script: [sleep 10]}\n  fast-test: {stage: test, needs: [fast], script: [sleep 10]}\n",
        8,
        false,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Passed);
    let (_, slow_end) = span(&ran, "slow");
    let (ft_start, _) = span(&ran, "fast-test");
    assert!(ft_start < slow_end, "fast-test waited for slow");
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_is_respected_and_critical_work_goes_first() {
    let ran = run_yaml(
        "jobs:\n  a: {needs: [], script: [sleep 10]}\n  b: {needs: [], script: [sleep 10]}\n  long: {needs: [], script: [sleep 10]}\n  after-long: {needs: [long], script: [sleep 10]}\n",
        1,
        false,
        None,
    )
    .await;
    let order: Vec<String> = ran
        .fake
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(j, _, _)| j.clone())
        .collect();
    assert_eq!(
        order[0], "long",
        "the head of the longest chain starts first: {order:?}"
    );
    let spans = ran.fake.spans.lock().unwrap();
    for w in spans.windows(2) {
        assert!(w[1].1 >= w[0].2, "two jobs overlapped with --jobs 1");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_skips_dependents_but_not_independent_jobs() {
    let ran = run_yaml(
        "jobs:\n  build: {needs: [], script: [exit 2]}\n  test: {needs: [build], script: [sleep 1]}\n  deploy: {needs: [test], script: [sleep 1]}\n  lint: {needs: [], script: [sleep 50]}\n",
        8,
        false,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Failed);
    assert_eq!(
        skipped(&ran),
        [
            (
                "test".to_string(),
                "needs `build`, which failed".to_string()
            ),
            (
                "deploy".to_string(),
                "needs `test`, which was skipped".to_string()
            )
        ]
    );
    assert_eq!(
        ran.result.jobs[3].as_ref().unwrap().status,
        JobStatus::Passed
    );
}

#[tokio::test(start_paused = true)]
async fn allow_failure_lets_dependents_run_and_the_run_pass() {
    let ran = run_yaml(
        "jobs:\n  lint: {needs: [], allow_failure: true, script: [exit 1]}\n  next: {needs: [lint], script: [echo ok]}\n",
        8,
        false,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Passed);
    assert!(ran.result.jobs[1].is_ok());
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_running_jobs_and_skips_the_rest() {
    let ran = run_yaml(
        "jobs:\n  bad: {needs: [], script: [sleep 5, exit 1]}\n  long: {needs: [], script: [hang]}\n  later: {needs: [long], script: [echo x]}\n",
        8,
        true,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Failed);
    assert_eq!(
        ran.result.jobs[1].as_ref().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        skipped(&ran),
        [(
            "later".to_string(),
            "needs `long`, which was cancelled".to_string()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_of_pipe_itself_stops_the_run_and_is_not_retried() {
    let ran = run_yaml(
        "jobs:\n  full: {needs: [], retry: 2, script: [sleep 5, broken disk full]}\n  long: {needs: [], script: [hang]}\n  later: {needs: [long], script: [echo x]}\n",
        8,
        false,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Failed);
    assert_eq!(
        ran.result.pipe_failure.as_deref(),
        Some("job `full`: disk full")
    );
    let full = ran.result.jobs[0].as_ref().unwrap();
    assert_eq!((full.status, full.attempts), (JobStatus::Errored, 1));
    assert_eq!(
        ran.result.jobs[1].as_ref().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        skipped(&ran),
        [(
            "later".to_string(),
            "needs `long`, which was cancelled".to_string()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_kills_and_retry_reruns() {
    let ran = run_yaml(
        "jobs:\n  stuck: {needs: [], timeout: 1s, retry: 2, script: [hang]}\n",
        8,
        false,
        None,
    )
    .await;
    let stuck = ran.result.jobs[0].as_ref().unwrap();
    assert_eq!(stuck.status, JobStatus::TimedOut);
    assert_eq!(stuck.attempts, 3);
    let retries = ran
        .events
        .iter()
        .filter(|e| matches!(e, EventKind::JobRetrying { .. }))
        .count();
    assert_eq!(retries, 2);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_stops_running_jobs_and_skips_pending_ones() {
    let ran = run_yaml(
        "jobs:\n  long: {needs: [], script: [hang]}\n  next: {needs: [long], script: [echo x]}\n",
        8,
        false,
        Some(Duration::from_secs(1)),
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Interrupted);
    assert_eq!(
        ran.result.jobs[0].as_ref().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(skipped(&ran)[0].0, "next");
}

#[tokio::test(start_paused = true)]
async fn jobs_get_builtin_env_and_artifact_layers_of_what_they_need() {
    let ran = run_yaml(
        "env: {A: top}\njobs:\n  build: {needs: [], artifacts: [out], env: {A: job}, script: [keep]}\n  gen: {needs: [], artifacts: [gen], script: [keep]}\n  empty: {needs: [], artifacts: [none], script: [echo x]}\n  undeclared: {needs: [], script: [keep]}\n  unneeded: {needs: [], artifacts: [x], script: [keep]}\n  use: {needs: [gen, empty, undeclared, build], script: [echo x]}\n",
        8,
        false,
        None,
    )
    .await;
    let specs = ran.fake.specs.lock().unwrap();
    let build = specs.iter().find(|s| s.job == "build").unwrap();
    assert!(build.env.contains(&("PIPE_JOB".into(), "build".into())));
    assert_eq!(
        build.env.iter().rev().find(|(k, _)| k == "A").unwrap().1,
        "job"
    );
    let dest = |job: &str| {
        specs
            .iter()
            .find(|s| s.job == job)
            .unwrap()
            .artifacts_dest
            .clone()
    };
    let use_ = specs.iter().find(|s| s.job == "use").unwrap();
    // The source, then the kept artifacts of the jobs it needs that declare some, in file
    // order: not a job that kept none, nor one that declares none, nor one it does not need.
    assert!(use_.layers[0].ends_with("source"), "{:?}", use_.layers);
    assert_eq!(use_.layers[1..], [dest("build"), dest("gen")]);
}

#[tokio::test(start_paused = true)]
async fn a_job_is_prepared_while_its_needs_run_with_the_layers_to_come() {
    let ran = run_yaml(
        "jobs:\n  a: {needs: [], artifacts: [out], script: [sleep 100, keep]}\n  b: {needs: [], script: [sleep 300]}\n  c: {needs: [a, b], script: [sleep 10]}\n  d: {needs: [c], script: [echo d]}\n  e: {needs: [], script: [echo e]}\n",
        8,
        false,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Passed);
    let prepared = ran.fake.prepared.lock().unwrap();
    let when = |job: &str| {
        prepared
            .iter()
            .find(|(s, _)| s.job == job)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("{job} was not prepared"))
    };
    // Prepared while its needs still ran, not once they were done; jobs that wait for nothing
    // are never prepared, they start at once.
    assert!(
        when("c") < span(&ran, "a").1,
        "c was prepared after a ended"
    );
    assert!(when("d") < span(&ran, "c").1);
    assert!(prepared.iter().all(|(s, _)| s.job != "e" && s.job != "a"));
    // For the first attempt, with `a`'s artifact folder that did not exist yet: the spec the
    // job then runs with is the same.
    let specs = ran.fake.specs.lock().unwrap();
    let ran_c = specs.iter().find(|s| s.job == "c").unwrap();
    let (prepared_c, _) = prepared.iter().find(|(s, _)| s.job == "c").unwrap();
    assert_eq!(prepared_c.scratch, ran_c.scratch);
    assert_eq!(prepared_c.layers, ran_c.layers);
    assert_eq!(ran_c.layers.len(), 2, "{:?}", ran_c.layers);
}

#[tokio::test(start_paused = true)]
async fn a_prepared_job_that_never_runs_is_left_to_the_backends_shutdown() {
    let ran = run_yaml(
        "jobs:\n  a: {needs: [], script: [sleep 100]}\n  b: {needs: [a], script: [sleep 100]}\n  c: {needs: [b], script: [echo c]}\n",
        8,
        false,
        Some(Duration::from_millis(50)),
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Interrupted);
    let prepared = ran.fake.prepared.lock().unwrap();
    // `b` was prepared while `a` ran, then skipped by the interrupt; `c` never was (`b` never
    // ran). The backend removes what it prepared when it shuts down, which the run awaits.
    assert_eq!(
        prepared
            .iter()
            .map(|(s, _)| s.job.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(ran.fake.specs.lock().unwrap().iter().all(|s| s.job == "a"));
    assert!(ran.fake.shut_down.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_backend_errors_the_job_stops_the_run_and_still_tears_down() {
    let ran = run_yaml(
        "jobs:\n  buggy: {needs: [], retry: 2, script: [sleep 5, panic boom]}\n  long: {needs: [], script: [hang]}\n  later: {needs: [long], script: [echo x]}\n",
        8,
        false,
        None,
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Failed);
    let why = "pipe failed: a bug in pipe stopped the job (it panicked: boom)";
    assert_eq!(
        ran.result.pipe_failure.as_deref(),
        Some(format!("job `buggy`: {why}").as_str())
    );
    let buggy = ran.result.jobs[0].as_ref().unwrap();
    assert_eq!(buggy.status, JobStatus::Errored);
    assert_eq!(buggy.message.as_deref(), Some(why));
    assert_eq!(
        ran.result.jobs[1].as_ref().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        skipped(&ran),
        [(
            "later".to_string(),
            "needs `long`, which was cancelled".to_string()
        )]
    );
    assert!(ran.fake.shut_down.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_second_interrupt_kills_what_ignores_the_first() {
    let ran = run_yaml_interrupted(
        "jobs:\n  stubborn: {needs: [], script: [stubborn]}\n",
        8,
        false,
        vec![Duration::from_secs(1), Duration::from_secs(1)],
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Interrupted);
    let job = ran.result.jobs[0].as_ref().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.exit_code, Some(137));
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_while_images_are_pulled_stops_before_any_job() {
    let slow = FakeBackend {
        slow_prepare: true,
        ..FakeBackend::default()
    };
    let ran = run_with(
        slow,
        "jobs:\n  a: {script: [echo x]}\n",
        8,
        false,
        vec![Duration::from_secs(5)],
    )
    .await;
    assert_eq!(ran.result.status, RunStatus::Interrupted);
    assert_eq!(
        skipped(&ran),
        [("a".to_string(), "the run was interrupted".to_string())]
    );
    assert!(ran.fake.spans.lock().unwrap().is_empty());
}
