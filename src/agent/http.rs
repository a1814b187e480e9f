//! The agent's HTTP face (axum): the JSON API, a job's log as Server-Sent Events, webhooks,
//! `/metrics` and `/healthz`. Every change needs a bearer token, whose name is who acts;
//! reading needs one too unless the configuration opens reads.

use std::convert::Infallible;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;

use super::error::ApiError;
use super::hooks;
use super::state::{AgentState, LogEvent, RunFilter};
use crate::store::RunId;

/// The API's routes over the agent's state. The dashboard's pages merge into it.
pub fn router(state: AgentState) -> Router {
    let max_body = state.config.max_body;
    Router::new()
        .merge(super::web::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/runs", get(list_runs))
        .route("/api/queue", get(queue))
        .route("/api/repos/{repo}/queue/{item}/cancel", post(cancel_queued))
        .route("/api/repos/{repo}/runs", post(start_run))
        .route("/api/repos/{repo}/runs/{id}", get(show_run))
        .route("/api/repos/{repo}/runs/{id}/jobs/{job}/log", get(job_log))
        .route("/api/repos/{repo}/runs/{id}/cancel", post(cancel))
        .route("/api/repos/{repo}/runs/{id}/retry", post(retry))
        .route("/api/repos/{repo}/runs/{id}/approve", post(approve))
        .route("/api/repos/{repo}/runs/{id}/release", post(release))
        .route(
            "/api/repos/{repo}/runs/{id}/jobs/{job}/resume",
            post(resume),
        )
        .route("/hooks/github", post(hooks::github))
        .route("/hooks/gitlab", post(hooks::gitlab))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Who acts: the name of the request's bearer token.
pub fn actor(state: &AgentState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    state.actor(token.trim()).ok_or(ApiError::Unauthorized)
}

fn may_read(state: &AgentState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.open_reads() {
        return Ok(());
    }
    actor(state, headers).map(|_| ())
}

async fn metrics(State(state): State<AgentState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics_text(),
    )
}

async fn list_runs(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Query(filter): Query<RunFilter>,
) -> Result<impl IntoResponse, ApiError> {
    may_read(&state, &headers)?;
    let listed = tokio::task::spawn_blocking(move || state.list_runs(&filter))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(listed))
}

async fn queue(
    State(state): State<AgentState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    may_read(&state, &headers)?;
    Ok(Json(state.queued()?))
}

async fn show_run(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
) -> Result<impl IntoResponse, ApiError> {
    may_read(&state, &headers)?;
    let view = tokio::task::spawn_blocking(move || state.run_view(&repo, id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(view))
}

#[derive(Deserialize)]
pub(super) struct LogQuery {
    offset: Option<u64>,
}

async fn job_log(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id, job)): Path<(String, RunId, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    may_read(&state, &headers)?;
    log_events(&state, &headers, &repo, id, &job, &query)
}

/// A job's log as Server-Sent Events, each piece's id the offset after it: from where a client
/// that reconnects left off (`Last-Event-ID`), else from `?offset=`. The API and the pages'
/// script read it alike.
pub(super) fn log_events(
    state: &AgentState,
    headers: &HeaderMap,
    repo: &str,
    id: RunId,
    job: &str,
    query: &LogQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let offset = resumed.or(query.offset).unwrap_or(0);
    let rx = state.follow_log(repo, id, job, offset)?;
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await? {
            LogEvent::Text { text, next } => Event::default().id(next.to_string()).data(text),
            // A browser's EventSource drops an event with no data, so the end says so in words.
            LogEvent::End => Event::default().event("end").data("ended"),
        };
        Some((Ok(event), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartBody {
    branch: Option<String>,
    commit: Option<String>,
}

async fn start_run(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path(repo): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    let body: StartBody = json_body(&body)?;
    let item = state
        .start_run(&repo, body.branch, body.commit, &actor)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(item)))
}

async fn cancel(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    state.cancel(&repo, id, &actor)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "run_id": id, "cancel": "asked" })),
    ))
}

async fn cancel_queued(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, item)): Path<(String, i64)>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    Ok(Json(state.cancel_queued(&repo, item, &actor)?))
}

async fn retry(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    state.retry(&repo, id, &actor).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "run_id": id, "retry": "started" })),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    comment: Option<String>,
}

async fn approve(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    let body: ApproveBody = json_body(&body)?;
    Ok(Json(state.approve(&repo, id, &actor, body.comment).await?))
}

async fn release(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    state.release(&repo, id, &actor).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "run_id": id, "release": "started" })),
    ))
}

async fn resume(
    State(state): State<AgentState>,
    headers: HeaderMap,
    Path((repo, id, job)): Path<(String, RunId, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = actor(&state, &headers)?;
    Ok(Json(state.resume(&repo, id, &job, &actor).await?))
}

/// A JSON body; an empty one is the type's default.
fn json_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Invalid(format!("the body is not the JSON expected: {e}")))
}
