//! Claims per second on the fleet's queue (`pipe::fleet`) with N claimers against one
//! PostgreSQL, and the claim latency at the 50th and 99th percentile. Each claimer is a thread
//! with a connection of its own, as an agent would be; each claims a job and finishes it (passed)
//! until the queue is empty. Run by bench/fleet.sh, which starts the database.
//!   fleet_claims URL CLAIMERS JOBS

use std::time::{Duration, Instant};

use pipe::fleet::{Agent, Fleet, JobSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, claimers, jobs] = &args[..] else {
        eprintln!("usage: fleet_claims URL CLAIMERS JOBS");
        std::process::exit(2);
    };
    let (claimers, jobs): (usize, usize) = (claimers.parse().unwrap(), jobs.parse().unwrap());
    let agent = |name: String| Agent {
        name,
        labels: vec![],
        lease: Duration::from_secs(60),
    };
    let mut setup = Fleet::connect(url, agent("setup".into())).unwrap();
    // Runs of 10 independent jobs each.
    for run in 0..jobs.div_ceil(10) {
        let specs: Vec<JobSpec> = (0..10.min(jobs - run * 10))
            .map(|i| JobSpec {
                name: format!("j{i}"),
                needs: vec![],
                deploys: false,
                labels: vec![],
            })
            .collect();
        setup.enqueue("bench", run as i64 + 1, &specs).unwrap();
    }
    let start = Instant::now();
    let threads: Vec<_> = (0..claimers)
        .map(|n| {
            let (url, agent) = (url.clone(), agent(format!("a{n}")));
            std::thread::spawn(move || {
                let mut fleet = Fleet::connect(&url, agent).unwrap();
                let mut latencies = Vec::new();
                loop {
                    let asked = Instant::now();
                    let Some(claim) = fleet.claim().unwrap() else {
                        return latencies;
                    };
                    latencies.push(asked.elapsed());
                    fleet.finish(&claim, true).unwrap();
                }
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let wall = start.elapsed();
    assert_eq!(latencies.len(), jobs, "every job claimed once");
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "{claimers}\t{jobs}\t{:.0}\t{:.2}\t{:.2}",
        jobs as f64 / wall.as_secs_f64(),
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    );
}
