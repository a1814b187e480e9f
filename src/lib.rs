//! pipe: a CI/CD pipeline-as-code runner. YAML → typed pipeline → plan (DAG) → scheduler →
//! backend, with everything a user sees fed by the scheduler's stream of events.

pub mod scan;
