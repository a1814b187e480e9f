//! An error budget: how much of what an objective allows to fail over a window has failed.

use crate::pipeline::signals::ErrorBudget;

/// What Prometheus said of a budget, with the figures the audit trail keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Spent {
    /// The share of events that failed over the window (the query's answer).
    pub error_ratio: f64,
    /// What is left of the budget, as a fraction: 1 is untouched, 0 or less is spent.
    pub left: f64,
}

/// The query with `$window` given as Prometheus writes durations.
pub fn query_for(budget: &ErrorBudget) -> String {
    budget
        .query
        .replace("$window", &format!("{}s", budget.window.as_secs()))
}

/// The budget left when `error_ratio` of the window's events failed.
pub fn judge(budget: &ErrorBudget, error_ratio: f64) -> Spent {
    Spent {
        error_ratio,
        left: 1.0 - error_ratio / budget.allowed(),
    }
}

impl Spent {
    pub fn is_spent(&self) -> bool {
        self.left <= 0.0
    }
}

/// `production's error budget is spent (−12% of 40m over 28d)`, or `… has 88% left (…)`.
pub fn describe(who: &str, budget: &ErrorBudget, spent: &Spent) -> String {
    let figures = format!(
        "{} of {} over {}",
        percent(spent.left),
        budget_time(budget),
        budget.window_text
    );
    if spent.is_spent() {
        format!("{who}'s error budget is spent ({figures})")
    } else {
        format!("{who}'s error budget holds ({figures} left)")
    }
}

/// The figures for the audit trail: the query's answer and what it comes to.
pub fn figures(who: &str, budget: &ErrorBudget, spent: &Spent) -> String {
    format!(
        "{}: error ratio {} over {} against an objective of {} (query `{}` at {})",
        describe(who, budget, spent),
        spent.error_ratio,
        budget.window_text,
        budget.objective_text,
        query_for(budget),
        budget.prometheus
    )
}

/// `-0.12` → `−12%` (a real minus sign: it reads as a figure, not a dash).
fn percent(fraction: f64) -> String {
    let p = (fraction * 100.0).round();
    if p < 0.0 {
        format!("\u{2212}{}%", -p)
    } else {
        format!("{p}%")
    }
}

/// The time the budget allows to fail over the window: 99.9% over 28d → `40m`.
fn budget_time(budget: &ErrorBudget) -> String {
    let secs = budget.allowed() * budget.window.as_secs_f64();
    let (n, unit) = match secs {
        s if s < 120.0 => (s, "s"),
        s if s < 120.0 * 60.0 => (s / 60.0, "m"),
        s if s < 48.0 * 3600.0 => (s / 3600.0, "h"),
        s => (s / 86400.0, "d"),
    };
    format!("{}{unit}", n.round())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::signals::{ErrorBudget, OnError};

    fn budget(objective: &str, window: &str) -> ErrorBudget {
        ErrorBudget::new(
            "http://127.0.0.1:9090".into(),
            "sum(rate(errors[$window])) / sum(rate(requests[$window]))".into(),
            objective,
            window,
            OnError::Refuse,
        )
        .unwrap()
    }

    #[test]
    fn a_budget_overspent_by_twelve_percent_says_so() {
        let b = budget("99.9%", "28d");
        let spent = judge(&b, 0.00112);
        assert!(spent.is_spent());
        assert_eq!(
            describe("production", &b, &spent),
            "production's error budget is spent (\u{2212}12% of 40m over 28d)"
        );
        assert_eq!(
            query_for(&b),
            "sum(rate(errors[2419200s])) / sum(rate(requests[2419200s]))"
        );
    }

    #[test]
    fn a_budget_partly_used_holds() {
        let b = budget("99%", "1m");
        let spent = judge(&b, 0.0025);
        assert!(!spent.is_spent());
        assert_eq!(
            describe("api", &b, &spent),
            "api's error budget holds (75% of 1s over 1m left)"
        );
        assert!(judge(&b, 0.01).is_spent(), "exactly spent is spent");
    }
}
