//! The gate's conditions that are read from outside the run when it is released: each release
//! job's error budget, asked of Prometheus. Asked only once every recorded condition holds, and
//! every answer (or failure to get one) goes into the audit trail with its figures.

use super::gate::{Condition, Unmet};
use super::{Context, EngineError};
use crate::pipeline::gate::Gate;
use crate::pipeline::signals::OnError;
use crate::pipeline::Pipeline;
use crate::signal::{budget, prometheus};
use crate::store::{RunId, Store};

/// What the release jobs' error budgets refuse, after asking Prometheus for each.
pub(super) async fn error_budgets(
    ctx: &Context,
    store: &mut dyn Store,
    id: RunId,
    pipeline: &Pipeline,
    gates: &[(&str, Gate)],
) -> Result<Vec<Unmet>, EngineError> {
    let mut out = Vec::new();
    for (job, gate) in gates {
        let Some(wanted) = &gate.error_budget else {
            continue;
        };
        // The budget is the service's: named after where the job deploys, else the job.
        let who = pipeline
            .jobs
            .iter()
            .find(|j| j.name == *job)
            .and_then(|j| j.environment.clone())
            .unwrap_or_else(|| job.to_string());
        let refuse = |why: String| Unmet {
            condition: Condition::ErrorBudget,
            job: Some(job.to_string()),
            why,
        };
        match prometheus::query(&wanted.prometheus, &budget::query_for(wanted)).await {
            Ok(ratio) => {
                let spent = budget::judge(wanted, ratio);
                store.audit(
                    id,
                    &ctx.actor,
                    "error budget",
                    &budget::figures(&who, wanted, &spent),
                )?;
                if spent.is_spent() {
                    out.push(refuse(format!(
                        "{}: releases are frozen until it recovers",
                        budget::describe(&who, wanted, &spent)
                    )));
                }
            }
            Err(e) => {
                let allowed = wanted.on_error == OnError::Allow;
                let verdict = if allowed {
                    "released anyway (on_error: allow)"
                } else {
                    "refused (on_error: refuse)"
                };
                store.audit(
                    id,
                    &ctx.actor,
                    "error budget",
                    &format!("{who}'s error budget is unknown: {e}; {verdict}"),
                )?;
                if !allowed {
                    out.push(refuse(format!(
                        "{who}'s error budget cannot be read, and the gate refuses until it can ({e}); `on_error: allow` would release anyway"
                    )));
                }
            }
        }
    }
    Ok(out)
}
