//! Gate conditions that read signals from outside the run: a service's error budget.

use std::time::Duration;

use super::duration;

/// `error_budget:` in a gate: release only while the service's error budget holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBudget {
    /// The Prometheus server, `http://host:port`.
    pub prometheus: String,
    /// PromQL whose value is the share of events that failed over the window (0.001 is 0.1%);
    /// `$window` stands for the window.
    pub query: String,
    /// The objective in millionths: `99.9%` is 999000.
    objective_ppm: u32,
    pub objective_text: String,
    pub window: Duration,
    pub window_text: String,
    pub on_error: OnError,
}

/// What the gate does when Prometheus cannot be asked or gives no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Refuse,
    Allow,
}

/// A `prometheus:` URL as pipe can ask it: plain `http://` and a server, nothing after it.
pub fn check_prometheus_url(prometheus: &str) -> Result<(), String> {
    let Some(rest) = prometheus.strip_prefix("http://") else {
        return Err(format!(
            "`prometheus` must be an `http://` URL, found `{prometheus}` (pipe speaks plain HTTP to Prometheus: put it on a trusted network or behind a local proxy)"
        ));
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(format!(
            "`prometheus` must be the server's URL, like `http://127.0.0.1:9090`, found `{prometheus}`"
        ));
    }
    Ok(())
}

impl ErrorBudget {
    /// Checks the parts that are text in YAML; each error is one sentence naming the key.
    pub fn new(
        prometheus: String,
        query: String,
        objective: &str,
        window: &str,
        on_error: OnError,
    ) -> Result<ErrorBudget, String> {
        check_prometheus_url(&prometheus)?;
        if query.trim().is_empty() {
            return Err("`query` must not be empty".into());
        }
        let objective_ppm = objective
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map(|p| (p * 10_000.0).round())
            .filter(|ppm| *ppm > 0.0 && *ppm < 1_000_000.0)
            .ok_or_else(|| {
                format!("`objective` must be a percentage below 100%, like `99.9%`, found `{objective}`")
            })? as u32;
        let window_len = duration::parse(window)
            .ok()
            .filter(|d| d.as_secs() > 0)
            .ok_or_else(|| {
                format!("`window` must be a duration, like `28d` or `1h`, found `{window}`")
            })?;
        Ok(ErrorBudget {
            prometheus,
            query,
            objective_ppm,
            objective_text: objective.trim().to_string(),
            window: window_len,
            window_text: window.trim().to_string(),
            on_error,
        })
    }

    /// The share of events the objective allows to fail: 99.9% → 0.001.
    pub fn allowed(&self) -> f64 {
        f64::from(1_000_000 - self.objective_ppm) / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(url: &str, objective: &str, window: &str) -> Result<ErrorBudget, String> {
        ErrorBudget::new(url.into(), "q".into(), objective, window, OnError::Refuse)
    }

    #[test]
    fn objectives_and_windows_as_people_write_them() {
        let b = new("http://prom:9090", "99.9%", "28d").unwrap();
        assert!((b.allowed() - 0.001).abs() < 1e-12);
        assert_eq!(b.window, Duration::from_secs(28 * 86400));
        assert!(new("http://prom:9090", "100%", "28d").is_err());
        assert!(new("http://prom:9090", "99.9", "28d").is_err());
        assert!(new("http://prom:9090", "99.9%", "a month").is_err());
        assert!(new("https://prom:9090", "99.9%", "28d")
            .unwrap_err()
            .contains("plain HTTP"));
    }
}
