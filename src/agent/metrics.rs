//! `/metrics` in Prometheus's text format: runs and jobs by status, their durations, the queue's
//! depth, jobs running, webhook deliveries by result.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Delivery {
    source: String,
    result: String,
}

/// Seconds, from a quick check to a long deploy.
const BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    runs: Family<Status, Counter>,
    run_seconds: Family<Status, Histogram, fn() -> Histogram>,
    jobs: Family<Status, Counter>,
    job_seconds: Family<Status, Histogram, fn() -> Histogram>,
    queue_depth: Gauge,
    jobs_running: Gauge,
    deliveries: Family<Delivery, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pipe_agent");
        let runs = Family::<Status, Counter>::default();
        let run_seconds = Family::new_with_constructor(histogram as fn() -> Histogram);
        let jobs = Family::<Status, Counter>::default();
        let job_seconds = Family::new_with_constructor(histogram as fn() -> Histogram);
        let queue_depth = Gauge::default();
        let jobs_running = Gauge::default();
        let deliveries = Family::<Delivery, Counter>::default();
        registry.register("runs", "Runs ended, by status", runs.clone());
        registry.register(
            "run_duration_seconds",
            "How long runs took, by status",
            run_seconds.clone(),
        );
        registry.register("jobs", "Jobs ended, by status", jobs.clone());
        registry.register(
            "job_duration_seconds",
            "How long jobs took, by status",
            job_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Runs queued, not started yet",
            queue_depth.clone(),
        );
        registry.register("jobs_running", "Jobs running now", jobs_running.clone());
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries, by source and result",
            deliveries.clone(),
        );
        Metrics {
            registry,
            runs,
            run_seconds,
            jobs,
            job_seconds,
            queue_depth,
            jobs_running,
            deliveries,
        }
    }
}

impl Metrics {
    pub fn run_ended(&self, status: &str, seconds: f64) {
        let label = Status {
            status: status.into(),
        };
        self.runs.get_or_create(&label).inc();
        self.run_seconds.get_or_create(&label).observe(seconds);
    }

    pub fn job_started(&self) {
        self.jobs_running.inc();
    }

    /// A job ended; `ran`: it had started (a reused job never runs).
    pub fn job_ended(&self, status: &str, seconds: f64, ran: bool) {
        if ran {
            self.jobs_running.dec();
        }
        let label = Status {
            status: status.into(),
        };
        self.jobs.get_or_create(&label).inc();
        self.job_seconds.get_or_create(&label).observe(seconds);
    }

    /// An attempt ended and another follows.
    pub fn job_retrying(&self) {
        self.jobs_running.dec();
    }

    pub fn delivery(&self, source: &str, result: &str) {
        self.deliveries
            .get_or_create(&Delivery {
                source: source.into(),
                result: result.into(),
            })
            .inc();
    }

    pub fn render(&self, queue_depth: i64) -> String {
        self.queue_depth.set(queue_depth);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
