//! Webhooks: GitHub and GitLab pushes. The signature (GitHub: HMAC-SHA256 of the raw body in
//! `X-Hub-Signature-256`; GitLab: the `X-Gitlab-Token` secret) is checked in constant time
//! against each watched repository's secret before the body is parsed: the secret that matches
//! says which repository may speak. A delivery is answered 2xx only once its run is queued, and
//! a delivery id seen before starts nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::config::Repo;
use super::error::ApiError;
use super::state::AgentState;

/// Whether `signature` (`sha256=HEX`) is the HMAC-SHA256 of `body` under `secret`.
pub fn github_signature_holds(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = unhex(hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A push, as both hosts say it once parsed.
struct Push {
    /// `refs/heads/main`.
    git_ref: String,
    /// The new head; all zeros when the branch was deleted.
    after: String,
    /// How the payload names its repository: names and URLs.
    names: Vec<String>,
}

pub async fn github(
    State(state): State<AgentState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let answer = github_delivery(&state, &headers, &body).await;
    state.metrics.delivery("github", outcome(&answer));
    answer
}

async fn github_delivery(
    state: &AgentState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let signature = header(headers, "x-hub-signature-256").ok_or(ApiError::Unauthorized)?;
    let signed: Vec<&Repo> = state
        .config
        .repos
        .iter()
        .filter(|r| {
            r.github_secret
                .as_ref()
                .is_some_and(|s| github_signature_holds(s.expose().as_bytes(), body, signature))
        })
        .collect();
    if signed.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    match header(headers, "x-github-event").unwrap_or("push") {
        "push" => {}
        "ping" => return Ok(ignored("ping")),
        other => return Ok(ignored(other)),
    }
    #[derive(Deserialize)]
    struct Payload {
        #[serde(rename = "ref")]
        git_ref: String,
        after: String,
        repository: GithubRepo,
    }
    #[derive(Deserialize)]
    struct GithubRepo {
        name: Option<String>,
        full_name: Option<String>,
        clone_url: Option<String>,
        ssh_url: Option<String>,
        html_url: Option<String>,
        git_url: Option<String>,
    }
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|e| ApiError::Invalid(format!("not a GitHub push payload: {e}")))?;
    let r = payload.repository;
    let push = Push {
        git_ref: payload.git_ref,
        after: payload.after,
        names: [
            r.name,
            r.full_name,
            r.clone_url,
            r.ssh_url,
            r.html_url,
            r.git_url,
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    queue(
        state,
        &signed,
        push,
        header(headers, "x-github-delivery"),
        "github",
    )
    .await
}

pub async fn gitlab(
    State(state): State<AgentState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let answer = gitlab_delivery(&state, &headers, &body).await;
    state.metrics.delivery("gitlab", outcome(&answer));
    answer
}

async fn gitlab_delivery(
    state: &AgentState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let token = header(headers, "x-gitlab-token").ok_or(ApiError::Unauthorized)?;
    let signed: Vec<&Repo> = state
        .config
        .repos
        .iter()
        .filter(|r| {
            r.gitlab_token
                .as_ref()
                .is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(token.as_bytes())))
        })
        .collect();
    if signed.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    #[derive(Deserialize)]
    struct Payload {
        object_kind: String,
        #[serde(rename = "ref")]
        git_ref: Option<String>,
        after: Option<String>,
        project: GitlabProject,
    }
    #[derive(Deserialize)]
    struct GitlabProject {
        name: Option<String>,
        path_with_namespace: Option<String>,
        git_http_url: Option<String>,
        git_ssh_url: Option<String>,
        web_url: Option<String>,
    }
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|e| ApiError::Invalid(format!("not a GitLab push payload: {e}")))?;
    if payload.object_kind != "push" {
        return Ok(ignored(&payload.object_kind));
    }
    let p = payload.project;
    let push = Push {
        git_ref: payload.git_ref.unwrap_or_default(),
        after: payload.after.unwrap_or_default(),
        names: [
            p.name,
            p.path_with_namespace,
            p.git_http_url,
            p.git_ssh_url,
            p.web_url,
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let delivery = header(headers, "x-gitlab-event-uuid").or(header(headers, "idempotency-key"));
    queue(state, &signed, push, delivery, "gitlab").await
}

/// Queues the push's run in the signed repository it names; a repository the agent does not
/// watch (under that secret) is 404, a branch it does not watch starts nothing.
async fn queue(
    state: &AgentState,
    signed: &[&Repo],
    push: Push,
    delivery: Option<&str>,
    trigger: &str,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let repo = signed
        .iter()
        .find(|r| push.names.iter().any(|n| names_repo(r, n)))
        .ok_or_else(|| ApiError::NotFound("the agent watches no such repository".into()))?;
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Ok(ignored("not a branch"));
    };
    if !repo.branches.iter().any(|b| b == branch) {
        return Ok(ignored("branch not watched"));
    }
    let valid_sha = push.after.len() == 40 && push.after.chars().all(|c| c.is_ascii_hexdigit());
    if !valid_sha || push.after.bytes().all(|b| b == b'0') {
        return Ok(ignored("no new commit"));
    }
    let item = state
        .queue
        .push_delivery(delivery, &repo.name, &push.after, branch, trigger)?;
    let Some(item) = item else {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "duplicate": true })),
        ));
    };
    tracing::info!(repo = repo.name, commit = push.after, trigger, "run queued");
    state.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "queued": item })),
    ))
}

/// A payload names a watched repository by its configured name, its URL, or its path on the host.
fn names_repo(repo: &Repo, name: &str) -> bool {
    let trim = |s: &str| s.trim_end_matches('/').trim_end_matches(".git").to_string();
    name == repo.name
        || trim(name) == trim(&repo.url)
        || trim(&repo.url).ends_with(&format!("/{}", trim(name)))
}

fn ignored(why: &str) -> (StatusCode, Json<serde_json::Value>) {
    (StatusCode::OK, Json(serde_json::json!({ "ignored": why })))
}

fn outcome(answer: &Result<(StatusCode, Json<serde_json::Value>), ApiError>) -> &'static str {
    match answer {
        Ok((StatusCode::ACCEPTED, _)) => "queued",
        Ok((_, Json(v))) if v.get("duplicate").is_some() => "duplicate",
        Ok(_) => "ignored",
        Err(ApiError::Unauthorized) => "unauthorized",
        Err(ApiError::NotFound(_)) => "unknown_repository",
        Err(ApiError::Invalid(_)) => "invalid",
        Err(_) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published example (docs: "Validating webhook deliveries").
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_test_vector_holds_and_nothing_else_does() {
        assert!(github_signature_holds(SECRET, b"Hello, World!", SIGNATURE));
        assert!(!github_signature_holds(SECRET, b"Hello, World?", SIGNATURE));
        assert!(!github_signature_holds(
            b"another secret",
            b"Hello, World!",
            SIGNATURE
        ));
        assert!(!github_signature_holds(
            SECRET,
            b"Hello, World!",
            &SIGNATURE[7..]
        ));
        assert!(!github_signature_holds(
            SECRET,
            b"Hello, World!",
            "sha256=zz"
        ));
    }
}
