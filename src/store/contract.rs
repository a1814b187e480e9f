//! What every store does, written against the [`Store`] trait and run on each implementation
//! (the embedded one and PostgreSQL): a store that passes these can stand in for another.

use super::*;

pub(super) fn new_run() -> NewRun {
    NewRun {
        pipeline_name: "p".into(),
        pipeline_file: "pipe.yml".into(),
        pipeline_sha256: "00".into(),
        commit: Some("abc".into()),
        branch: Some("main".into()),
        tags: vec!["v1".into()],
        changed_paths: Some(2),
        trigger: "run".into(),
        actor: "tester".into(),
    }
}

fn jobs() -> Vec<(String, String, Phase, Option<String>)> {
    vec![
        ("b".into(), "build".into(), Phase::Main, None),
        (
            "a".into(),
            "deploy".into(),
            Phase::Main,
            Some("prod".into()),
        ),
        ("r".into(), "release".into(), Phase::Release, None),
    ]
}

/// Every check, each on stores that `open` makes (all on one database: several processes).
pub(super) fn holds(open: &dyn Fn() -> Box<dyn Store>) {
    runs_get_increasing_ids_and_jobs_keep_their_order(open().as_mut());
    a_finished_job_reads_back_whole(open().as_mut());
    only_one_process_takes_a_run_over(open().as_mut(), open().as_mut());
    approvals_count_distinct_people_in_the_audit_trail(open().as_mut());
    runs_that_deployed_to_an_environment_are_found(open().as_mut());
    release_steps_read_back_in_order_the_last_record_of_each_winning(open().as_mut());
}

fn runs_get_increasing_ids_and_jobs_keep_their_order(s: &mut dyn Store) {
    let first = s.create_run(&new_run(), &jobs()).unwrap();
    let second = s.create_run(&new_run(), &jobs()).unwrap();
    assert_eq!(second, first + 1);
    assert_eq!(s.resolve("last").unwrap(), second);
    assert_eq!(s.resolve(&format!("#{first}")).unwrap(), first);
    assert!(matches!(s.resolve("999"), Err(StoreError::NoSuchRun(_))));
    assert!(matches!(s.resolve("x"), Err(StoreError::NoSuchRun(_))));
    let names: Vec<String> = s.jobs(first).unwrap().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["b", "a", "r"]);
    let run = s.run(first).unwrap();
    assert_eq!(run.state, RunState::Running);
    assert_eq!(
        (run.commit.as_deref(), run.tags.as_slice()),
        (Some("abc"), &["v1".to_string()][..])
    );
    assert_eq!(run.changed_paths, Some(2));
    assert_eq!(s.audit_trail(first).unwrap()[0].action, "started");
}

fn a_finished_job_reads_back_whole(s: &mut dyn Store) {
    let id = s.create_run(&new_run(), &jobs()).unwrap();
    s.job_started(id, "b", 1, ".pipe/runs/1/b.log").unwrap();
    let mut job = s.jobs(id).unwrap().remove(0);
    assert_eq!((job.status.as_str(), job.attempts), ("running", 1));
    assert_eq!(job.epoch, crate::store::UNCLAIMED);
    job.status = "passed".into();
    // The claim of a fleet's queue whose outputs are the job's.
    job.epoch = 3;
    job.attempts = 2;
    job.exit_code = Some(0);
    job.duration_ms = Some(1500);
    job.artifacts = vec!["out/app".into()];
    s.job_finished(id, &job).unwrap();
    let back = s.jobs(id).unwrap().remove(0);
    assert_eq!(back.status, "passed");
    assert_eq!(
        (back.attempts, back.exit_code, back.duration_ms),
        (2, Some(0), Some(1500))
    );
    assert_eq!(back.artifacts, ["out/app"]);
    assert_eq!(back.log, ".pipe/runs/1/b.log");
    assert_eq!(back.epoch, 3);
    s.reset_jobs(id, &["b".into()]).unwrap();
    let reset = s.jobs(id).unwrap().remove(0);
    assert_eq!((reset.status.as_str(), reset.exit_code), ("pending", None));
    s.set_state(id, RunState::Released, true).unwrap();
    let run = s.run(id).unwrap();
    assert_eq!((run.state, run.releases), (RunState::Released, 1));
    assert!(run.ended_at.is_some());
}

fn only_one_process_takes_a_run_over(first: &mut dyn Store, second: &mut dyn Store) {
    let id = first.create_run(&new_run(), &[]).unwrap();
    first
        .set_state(id, RunState::AwaitingRelease, false)
        .unwrap();
    first
        .claim_run(id, RunState::AwaitingRelease, RunState::Releasing)
        .unwrap();
    let lost = second
        .claim_run(id, RunState::AwaitingRelease, RunState::Releasing)
        .unwrap_err();
    assert!(
        matches!(
            lost,
            StoreError::TakenOver {
                now: RunState::Releasing,
                ..
            }
        ),
        "{lost}"
    );
}

fn approvals_count_distinct_people_in_the_audit_trail(s: &mut dyn Store) {
    let id = s.create_run(&new_run(), &[]).unwrap();
    assert!(s.approve(id, "ann", Some("lgtm"), Utc::now()).unwrap());
    assert!(
        !s.approve(id, "Ann", None, Utc::now()).unwrap(),
        "the same person"
    );
    assert!(s.approve(id, "bob", None, Utc::now()).unwrap());
    assert_eq!(s.approvals(id).unwrap().len(), 2);
    s.audit(id, "carol", "note", "looked").unwrap();
    let trail: Vec<String> = s
        .audit_trail(id)
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} {}", e.actor, e.action, e.detail))
        .collect();
    assert_eq!(
        trail,
        [
            "tester started run of pipe.yml",
            "ann approve approved: lgtm",
            "Ann approve approved again (already counted)",
            "bob approve approved",
            "carol note looked",
        ]
    );
}

fn runs_that_deployed_to_an_environment_are_found(s: &mut dyn Store) {
    let deployed = s.create_run(&new_run(), &jobs()).unwrap();
    let other = s.create_run(&new_run(), &jobs()).unwrap();
    let mut job = s.jobs(deployed).unwrap().remove(1);
    job.status = "passed".into();
    s.job_finished(deployed, &job).unwrap();
    let found: Vec<RunId> = s
        .runs(Some("prod"), 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, [deployed]);
    assert_eq!(s.run(deployed).unwrap().environments, ["prod"]);
    let newest = s.runs(None, 1).unwrap();
    assert_eq!(newest.iter().map(|r| r.id).collect::<Vec<_>>(), [other]);
}

fn release_steps_read_back_in_order_the_last_record_of_each_winning(s: &mut dyn Store) {
    let id = s.create_run(&new_run(), &jobs()).unwrap();
    let other = s.create_run(&new_run(), &jobs()).unwrap();
    let step = |step: u32, status: StepStatus, detail: Option<&str>| StepRecord {
        step,
        name: (step == 1).then(|| "canary".to_string()),
        percent: step * 10,
        status,
        detail: detail.map(str::to_string),
        at: Utc::now(),
    };
    s.record_step(id, &step(2, StepStatus::Failed, Some("job failed")))
        .unwrap();
    s.record_step(id, &step(1, StepStatus::VerifyFailed, None))
        .unwrap();
    s.record_step(id, &step(1, StepStatus::Passed, Some("error rate 0.1%")))
        .unwrap();
    let back: Vec<_> = s
        .steps(id)
        .unwrap()
        .into_iter()
        .map(|r| (r.step, r.name, r.percent, r.status, r.detail))
        .collect();
    assert_eq!(
        back,
        [
            (
                1,
                Some("canary".to_string()),
                10,
                StepStatus::Passed,
                Some("error rate 0.1%".to_string())
            ),
            (
                2,
                None,
                20,
                StepStatus::Failed,
                Some("job failed".to_string())
            ),
        ]
    );
    assert!(s.steps(other).unwrap().is_empty(), "another run's steps");
    s.record_step(other, &step(1, StepStatus::Passed, None))
        .unwrap();
    s.clear_steps(id).unwrap();
    assert!(
        s.steps(id).unwrap().is_empty(),
        "a release that starts over"
    );
    assert_eq!(s.steps(other).unwrap().len(), 1, "another run's steps stay");
}
