//! The queue against a real PostgreSQL (see `pg::testdb`): many claimers at once, leases that
//! run out, fencing, held deploy jobs, labels nobody offers, wake-ups.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::*;
use crate::pg::testdb;

fn agent(name: &str, labels: &[&str], lease: Duration) -> Agent {
    Agent {
        name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        lease,
    }
}

fn job(name: &str, needs: &[&str]) -> JobSpec {
    JobSpec {
        name: name.into(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
        deploys: false,
        labels: vec![],
    }
}

const LONG: Duration = Duration::from_secs(600);

#[test]
fn each_of_500_jobs_is_claimed_exactly_once_by_8_claimers_and_only_after_its_needs() {
    let db = testdb::database();
    let mut setup = Fleet::connect(&db.url, agent("setup", &[], LONG)).unwrap();
    // 100 runs of a chain of 5: four of each five jobs are queued only when their need passes.
    for run in 1..=100 {
        let jobs: Vec<JobSpec> = (0..5)
            .map(|i| {
                let needs: Vec<String> =
                    (i > 0).then(|| format!("j{}", i - 1)).into_iter().collect();
                let needs: Vec<&str> = needs.iter().map(String::as_str).collect();
                job(&format!("j{i}"), &needs)
            })
            .collect();
        setup.enqueue("p", run, &jobs).unwrap();
    }
    let claimers: Vec<_> = (0..8)
        .map(|n| {
            let url = db.url.clone();
            thread::spawn(move || {
                let mut fleet = Fleet::connect(&url, agent(&format!("a{n}"), &[], LONG)).unwrap();
                fleet.listen().unwrap();
                let mut claimed = Vec::new();
                loop {
                    match fleet.claim().unwrap() {
                        Some(claim) => {
                            fleet.finish(&claim, true).unwrap();
                            claimed.push(claim.job);
                        }
                        None => {
                            let left: i64 = fleet
                                .db
                                .query_one(
                                    "SELECT COUNT(*) FROM fleet_jobs WHERE state <> 'passed'",
                                    &[],
                                )
                                .unwrap()
                                .get(0);
                            if left == 0 {
                                return claimed;
                            }
                            // Woken by a job becoming queued; the timeout only bounds a wait
                            // whose wake-up went to a claimer that lost the race for it.
                            fleet.wait(Duration::from_millis(200)).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    let claimed: Vec<JobId> = claimers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(claimed.len(), 500);
    assert_eq!(
        claimed.iter().collect::<HashSet<_>>().len(),
        500,
        "a job claimed twice"
    );
    let mut db_check = |sql: &str| -> i64 { setup.db.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        db_check("SELECT COUNT(*) FROM fleet_attempts WHERE epoch = 1 AND outcome = 'passed'"),
        500
    );
    assert_eq!(
        db_check("SELECT COUNT(*) FROM fleet_attempts WHERE epoch <> 1"),
        0
    );
    // No job was claimed before the attempt of its need had ended.
    assert_eq!(
        db_check(
            "SELECT COUNT(*) FROM fleet_needs n
             JOIN fleet_attempts mine ON mine.job = n.job JOIN fleet_attempts need ON need.job = n.needs
             WHERE mine.claimed_at < need.ended_at"
        ),
        0
    );
}

#[test]
fn a_stale_claim_is_refused_once_the_lease_ran_out_and_another_agent_took_over() {
    let db = testdb::database();
    // A lease of zero has run out by the next transaction: no waiting for time to pass.
    let mut paused = Fleet::connect(&db.url, agent("paused", &[], Duration::ZERO)).unwrap();
    let mut other = Fleet::connect(&db.url, agent("other", &[], LONG)).unwrap();
    let [id] = paused.enqueue("p", 1, &[job("build", &[])]).unwrap()[..] else {
        unreachable!()
    };
    let stale = paused.claim().unwrap().unwrap();
    assert_eq!((stale.job, stale.epoch), (id, 1));
    let swept = other.sweep().unwrap();
    assert_eq!(swept.len(), 1);
    assert!(!swept[0].held);
    let fresh = other.claim().unwrap().unwrap();
    assert_eq!((fresh.job, fresh.epoch), (id, 2));
    let refused = paused.heartbeat(&stale).unwrap_err();
    assert!(
        matches!(
            refused,
            FleetError::Fenced {
                epoch: 1,
                now: 2,
                ..
            }
        ),
        "{refused}"
    );
    let refused = paused.finish(&stale, false).unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("job {id} (`build`) was claimed again since this agent's claim 1: it is claimed at claim 2; this agent's write is refused")
    );
    other.finish(&fresh, true).unwrap();
    assert_eq!(
        other.state(id).unwrap().0,
        "passed",
        "the stale failure did not count"
    );
    let attempts: Vec<(i64, String, Option<String>)> = other
        .attempts(id)
        .unwrap()
        .into_iter()
        .map(|a| (a.epoch, a.agent, a.outcome))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, "paused".into(), Some("lease expired".into())),
            (2, "other".into(), Some("passed".into())),
        ]
    );
    // Late, even after the job is over.
    assert!(matches!(
        paused.finish(&stale, true),
        Err(FleetError::Fenced { .. })
    ));
}

#[test]
fn a_job_reads_for_each_need_the_epoch_of_the_claim_whose_pass_was_accepted() {
    let db = testdb::database();
    let mut paused = Fleet::connect(&db.url, agent("paused", &[], Duration::ZERO)).unwrap();
    let mut other = Fleet::connect(&db.url, agent("other", &[], LONG)).unwrap();
    let jobs = [
        job("build", &[]),
        job("lint", &[]),
        job("test", &["build", "lint"]),
    ];
    let test = paused.enqueue("p", 1, &jobs).unwrap()[2];
    let stale = paused.claim().unwrap().unwrap();
    assert_eq!((stale.name.as_str(), stale.epoch), ("build", 1));
    assert_eq!(other.sweep().unwrap().len(), 1);
    let first = other.claim().unwrap().unwrap();
    assert!(other.passed_needs(test).unwrap().is_empty());
    other.finish(&first, true).unwrap();
    let second = other.claim().unwrap().unwrap();
    other.finish(&second, true).unwrap();
    let expected = HashMap::from([("build".to_string(), 2), ("lint".to_string(), 1)]);
    assert_eq!(other.passed_needs(test).unwrap(), expected);
    // The stale claim's late pass changes nothing.
    assert!(paused.finish(&stale, true).is_err());
    assert_eq!(other.passed_needs(test).unwrap(), expected);
}

#[test]
fn an_expired_deploy_job_is_held_for_a_person_and_an_expired_test_job_runs_again() {
    let db = testdb::database();
    let mut lost = Fleet::connect(&db.url, agent("lost", &[], Duration::ZERO)).unwrap();
    let mut next = Fleet::connect(&db.url, agent("next", &[], LONG)).unwrap();
    let deploy = JobSpec {
        deploys: true,
        ..job("deploy", &[])
    };
    let ids = lost.enqueue("p", 1, &[deploy, job("test", &[])]).unwrap();
    let (deploy, test) = (ids[0], ids[1]);
    lost.claim().unwrap().unwrap();
    lost.claim().unwrap().unwrap();
    let swept = next.sweep().unwrap();
    assert_eq!(
        swept.iter().map(|e| (e.job, e.held)).collect::<Vec<_>>(),
        [(deploy, true), (test, false)]
    );
    let (state, note) = next.state(deploy).unwrap();
    assert_eq!(state, "held");
    assert!(note.unwrap().contains("may have deployed"));
    // Only the test job is there to claim.
    let again = next.claim().unwrap().unwrap();
    assert_eq!((again.job, again.epoch), (test, 2));
    assert_eq!(
        next.claim().unwrap(),
        None,
        "the held deploy job is not run again by itself"
    );
    next.finish(&again, true).unwrap();
    let outcomes: Vec<Option<String>> = next
        .attempts(test)
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [Some("lease expired".into()), Some("passed".into())]
    );
    // A person decides, on a connection that is no agent's.
    let mut ann = Fleet::connect_person(&db.url, "ann").unwrap();
    let held = ann.held("p", 1).unwrap();
    assert_eq!(
        held.iter()
            .map(|h| (h.job, h.name.as_str()))
            .collect::<Vec<_>>(),
        [(deploy, "deploy")]
    );
    assert_eq!(ann.job_named("p", 1, "deploy").unwrap(), Some(deploy));
    assert_eq!(ann.job_named("p", 2, "deploy").unwrap(), None);
    assert!(matches!(
        ann.resume(test, "ann"),
        Err(FleetError::NotHeld { .. })
    ));
    ann.resume(deploy, "ann").unwrap();
    assert!(ann.held("p", 1).unwrap().is_empty());
    assert_eq!(
        ann.state(deploy).unwrap(),
        ("queued".into(), Some("resumed by ann".into()))
    );
    let resumed = next.claim().unwrap().unwrap();
    assert_eq!((resumed.job, resumed.epoch), (deploy, 2));
}

#[test]
fn a_job_with_a_label_nobody_offers_waits_and_says_so() {
    let db = testdb::database();
    let mut plain = Fleet::connect(&db.url, agent("plain", &[], LONG)).unwrap();
    let mut arm = Fleet::connect(&db.url, agent("arm", &["arm64"], LONG)).unwrap();
    let gpu_job = JobSpec {
        labels: vec!["gpu".into()],
        ..job("train", &[])
    };
    let [id] = plain.enqueue("p", 1, &[gpu_job]).unwrap()[..] else {
        unreachable!()
    };
    assert_eq!(plain.claim().unwrap(), None);
    assert_eq!(arm.claim().unwrap(), None);
    let waiting = plain.unclaimable(Duration::from_secs(60)).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].job, id);
    assert_eq!(
        waiting[0].why,
        "job `train` waits for an agent offering labels gpu; none seen in the last 1m does (agents seen: arm [arm64], plain [])"
    );
    let mut gpu = Fleet::connect(&db.url, agent("gpu", &["gpu", "linux"], LONG)).unwrap();
    assert!(plain
        .unclaimable(Duration::from_secs(60))
        .unwrap()
        .is_empty());
    assert_eq!(gpu.claim().unwrap().unwrap().job, id);
}

#[test]
fn a_waiting_agent_is_woken_when_a_need_passes_and_a_failure_skips_what_is_below() {
    let db = testdb::database();
    let mut first = Fleet::connect(&db.url, agent("first", &[], LONG)).unwrap();
    let ids = first
        .enqueue(
            "p",
            1,
            &[
                job("build", &[]),
                job("test", &["build"]),
                job("ship", &["test"]),
            ],
        )
        .unwrap();
    let build = first.claim().unwrap().unwrap();
    let (listening_tx, listening_rx) = mpsc::channel();
    let url = db.url.clone();
    let waiter = thread::spawn(move || {
        let mut second = Fleet::connect(&url, agent("second", &[], LONG)).unwrap();
        second.listen().unwrap();
        assert_eq!(second.claim().unwrap(), None, "nothing queued yet");
        listening_tx.send(()).unwrap();
        // Not a pause: a wake-up ends it; the bound only stops a broken test.
        let woken = second.wait(LONG).unwrap();
        (woken, second.claim().unwrap(), second)
    });
    listening_rx.recv().unwrap();
    assert_eq!(
        first.finish(&build, true).unwrap(),
        Finished {
            queued: 1,
            skipped: vec![]
        }
    );
    let (woken, test, mut second) = waiter.join().unwrap();
    assert!(woken);
    let test = test.expect("the test job, queued by the build passing");
    assert_eq!(test.name, "test");
    assert_eq!(
        second.finish(&test, false).unwrap(),
        Finished {
            queued: 0,
            skipped: vec!["ship".into()]
        }
    );
    assert_eq!(
        second.state(ids[2]).unwrap(),
        ("skipped".into(), Some("needs `test`, which failed".into()))
    );
    assert_eq!(second.run_over("p", 1).unwrap(), Some(false));
}

#[test]
fn one_candidate_leads_until_its_connection_goes_and_then_another_does() {
    let db = testdb::database();
    let mut first = Candidate::new(&db.url);
    let mut second = Candidate::new(&db.url);
    assert!(first.lead().unwrap());
    assert!(!second.lead().unwrap(), "the lock is taken");
    assert!(first.lead().unwrap(), "the leader keeps it");
    drop(first);
    // The server lets the lock go once it has seen the session end.
    let mut tries = 0;
    while !second.lead().unwrap() {
        tries += 1;
        assert!(tries < 600, "the lock of a closed session was never let go");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_head_is_new_to_the_fleet_once_whichever_agent_sees_it() {
    let db = testdb::database();
    let mut a = Fleet::connect(&db.url, agent("a", &[], LONG)).unwrap();
    let mut b = Fleet::connect(&db.url, agent("b", &[], LONG)).unwrap();
    assert!(a.new_head("web", "main", "c1").unwrap());
    assert!(!b.new_head("web", "main", "c1").unwrap(), "seen by a");
    assert!(!a.new_head("web", "main", "c1").unwrap());
    assert!(b.new_head("web", "main", "c2").unwrap());
    assert!(a.new_head("web", "dev", "c1").unwrap(), "another branch");
    assert!(
        a.new_head("api", "main", "c1").unwrap(),
        "another repository"
    );
}

#[test]
fn a_claim_given_back_queues_a_test_job_again_and_holds_a_deploy_job_and_is_fenced_after() {
    let db = testdb::database();
    let mut a = Fleet::connect(&db.url, agent("a", &[], LONG)).unwrap();
    let deploy = JobSpec {
        deploys: true,
        ..job("deploy", &[])
    };
    let ids = a.enqueue("p", 1, &[job("test", &[]), deploy]).unwrap();
    let test = a.claim().unwrap().unwrap();
    let ship = a.claim().unwrap().unwrap();
    assert_eq!(a.run_over("p", 1).unwrap(), None);
    assert!(!a.release(&test, "agent stopping").unwrap().held);
    assert!(a.release(&ship, "agent stopping").unwrap().held);
    assert_eq!(a.state(ids[0]).unwrap().0, "queued");
    let (state, note) = a.state(ids[1]).unwrap();
    assert_eq!(state, "held");
    assert!(note.unwrap().contains("may have deployed"));
    let attempts = a.attempts(ids[0]).unwrap();
    assert_eq!(
        attempts[0].outcome.as_deref(),
        Some("given back: agent stopping")
    );
    let again = a.claim().unwrap().unwrap();
    assert_eq!(again.epoch, test.epoch + 1);
    assert!(matches!(
        a.finish(&test, true),
        Err(FleetError::Fenced { .. })
    ));
    assert!(matches!(
        a.release(&test, "late"),
        Err(FleetError::Fenced { .. })
    ));
    a.finish(&again, true).unwrap();
    assert_eq!(a.run_over("p", 1).unwrap(), None, "the deploy job is held");
}

#[test]
fn a_claim_reads_the_head_of_the_queued_jobs_index_on_a_fresh_long_queue() {
    let db = testdb::database();
    let mut a = Fleet::connect(&db.url, agent("a", &[], LONG)).unwrap();
    let jobs: Vec<JobSpec> = (0..2000).map(|i| job(&format!("j{i}"), &[])).collect();
    a.enqueue("p", 1, &jobs).unwrap();
    // The plan the claim's prepared statement gets (a generic one, as after a few claims), on
    // the queue's own connection and settings, with statistics never gathered.
    a.db.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan;
         PREPARE probe(text[], text, float8) AS {}",
        queue::CLAIM
    ))
    .unwrap();
    let plan: Vec<String> =
        a.db.query("EXPLAIN EXECUTE probe('{}', 'a', 1000)", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using fleet_jobs_queued") && !plan.contains("Sort"),
        "a claim would read and sort every queued job:\n{plan}"
    );
}
