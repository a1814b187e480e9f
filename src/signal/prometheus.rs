//! Asks a Prometheus server's HTTP API for one number: `GET /api/v1/query?query=…`. The one
//! place pipe speaks HTTP as a client (through hyper-util, which the Docker client brings
//! already); plain `http://` only.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::SignalError;

/// Longer than a healthy Prometheus ever takes for one instant query; a gate that waits longer
/// is better refused than hung.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: serde_json::Value,
}

/// The value of `query` now, as Prometheus at `server` evaluates it: a scalar, or a vector of
/// exactly one sample.
pub async fn query(server: &str, query: &str) -> Result<f64, SignalError> {
    let unreachable = |why: String| SignalError::Unreachable {
        server: server.to_string(),
        why,
    };
    let url = format!(
        "{}/api/v1/query?query={}",
        server.trim_end_matches('/'),
        encode(query)
    );
    let uri = url.parse().map_err(|e| unreachable(format!("{e}")))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<&'static [u8]>>();
    let asked = async {
        let response = client.get(uri).await.map_err(|e| unreachable(cause(&e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok::<_, SignalError>((status, body))
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, asked)
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", TIMEOUT.as_secs())))??;
    let bad = |why: String| SignalError::BadAnswer {
        server: server.to_string(),
        why,
    };
    let answer: Answer = serde_json::from_slice(&body).map_err(|_| {
        bad(format!(
            "HTTP {status} and not the JSON of Prometheus's query API"
        ))
    })?;
    if answer.status != "success" {
        return Err(bad(answer.error.unwrap_or(answer.status)));
    }
    // `[time, "value"]`, alone (a scalar) or in each sample of a vector.
    let result = &answer.data["result"];
    let value = match answer.data["resultType"].as_str() {
        Some("scalar") => &result[1],
        Some("vector") => match result.as_array().map(Vec::len) {
            Some(1) => &result[0]["value"][1],
            Some(0) => return Err(bad("the query returned no series".into())),
            Some(n) => {
                return Err(bad(format!(
                "the query returned {n} series, and the gate needs one number (wrap it in sum(…))"
            )))
            }
            None => &serde_json::Value::Null,
        },
        _ => &serde_json::Value::Null,
    };
    let Some(value) = value.as_str() else {
        return Err(bad("the query returned no number".into()));
    };
    let number: f64 = value
        .parse()
        .map_err(|_| bad(format!("the query returned `{value}`")))?;
    if number.is_nan() {
        // 0/0: nothing was counted in the window, so there is no ratio to judge.
        return Err(bad(
            "the query returned NaN (no events in the window?)".into()
        ));
    }
    Ok(number)
}

/// hyper-util's error says only "client error (Connect)": the cause says what failed.
fn cause(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out = format!("{out}: {s}");
        source = s.source();
    }
    out
}

/// Percent-encodes a query for a URL's query string (RFC 3986 unreserved characters stay).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded_for_the_url() {
        assert_eq!(
            encode("sum(rate(x{code=~\"5..\"}[1m]))"),
            "sum%28rate%28x%7Bcode%3D~%225..%22%7D%5B1m%5D%29%29"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = query(&format!("http://127.0.0.1:{port}"), "up")
            .await
            .unwrap_err();
        assert!(matches!(err, SignalError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
