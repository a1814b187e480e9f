//! The pages' routes, merged into the agent's router: each handler asks the agent's state what
//! the API would, and answers with a page. Sign-in trades a configured token for a session;
//! approve, release and resume act as the session's name. A cookie that is `SameSite=Strict` keeps
//! other sites from posting these forms with it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use chrono::Utc;
use futures_util::Stream;
use serde::Deserialize;

use super::session::{self, Sessions};
use super::{layout, log, login, run, runs};
use crate::agent::http::{log_events, LogQuery};
use crate::agent::{AgentState, ApiError, RunFilter};
use crate::store::RunId;

/// Scripts and styles only from the agent itself, nothing inline: a value that escaped its
/// escaping still could not run.
const POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// How many runs the front page lists.
const RECENT: usize = 50;

/// The dashboard's routes; their sessions live as long as the router.
pub fn routes() -> Router<AgentState> {
    Router::new()
        .route("/", get(recent))
        .route("/login", get(login_form).post(sign_in))
        .route("/logout", axum::routing::post(sign_out))
        .route("/repos/{repo}/runs/{id}", get(show_run))
        .route(
            "/repos/{repo}/runs/{id}/approve",
            axum::routing::post(approve),
        )
        .route(
            "/repos/{repo}/runs/{id}/release",
            axum::routing::post(release),
        )
        .route(
            "/repos/{repo}/runs/{id}/jobs/{job}/resume",
            axum::routing::post(resume),
        )
        .route("/repos/{repo}/runs/{id}/jobs/{job}", get(show_job))
        .route("/repos/{repo}/runs/{id}/jobs/{job}/events", get(job_events))
        .route(
            "/assets/style.css",
            get(|| asset("text/css", include_str!("assets/style.css"))),
        )
        .route(
            "/assets/log.js",
            get(|| asset("text/javascript", include_str!("assets/log.js"))),
        )
        .layer(Extension(Arc::new(Sessions::default())))
}

/// Who is signed in on this request, and whether it may read at all.
struct Viewer {
    name: Option<String>,
}

impl Viewer {
    fn of(
        state: &AgentState,
        sessions: &Sessions,
        headers: &HeaderMap,
    ) -> Result<Viewer, Box<Response>> {
        let name = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::from_header)
            .and_then(|id| sessions.name(id));
        if name.is_none() && !state.open_reads() {
            return Err(Box::new(see_other("/login", None)));
        }
        Ok(Viewer { name })
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

async fn recent(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Query(filter): Query<runs::Filter>,
) -> Response {
    let viewer = match Viewer::of(&state, &sessions, &headers) {
        Ok(v) => v,
        Err(to_login) => return *to_login,
    };
    // An empty field of the filter form means "any".
    let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let filter = runs::Filter {
        repo: given(&filter.repo),
        state: given(&filter.state),
        branch: given(&filter.branch),
    };
    let asked = RunFilter {
        repo: filter.repo.clone(),
        state: filter.state.clone(),
        branch: filter.branch.clone(),
        limit: Some(RECENT),
    };
    let listed = blocking(move || state.list_runs(&asked)).await;
    match listed {
        Ok(listed) => {
            let rows: Vec<runs::Row> = listed
                .iter()
                .map(|l| runs::Row {
                    repo: &l.repo,
                    run: &l.run,
                })
                .collect();
            html(
                StatusCode::OK,
                runs::render(&rows, &filter, viewer.name(), Utc::now()),
            )
        }
        Err(e) => failed(e, viewer.name()),
    }
}

async fn show_run(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
) -> Response {
    let viewer = match Viewer::of(&state, &sessions, &headers) {
        Ok(v) => v,
        Err(to_login) => return *to_login,
    };
    match blocking(move || state.run_view(&repo, id)).await {
        Ok(v) => {
            let view = run::View {
                repo: &v.repo,
                run: &v.run,
                jobs: &v.jobs,
                needs: &v.needs,
                approvals: &v.approvals,
                audit: &v.audit,
                gate: v.gate.as_deref(),
                held: &v.held,
            };
            html(
                StatusCode::OK,
                run::render(&view, viewer.name(), Utc::now()),
            )
        }
        Err(e) => failed(e, viewer.name()),
    }
}

async fn show_job(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((repo, id, job)): Path<(String, RunId, String)>,
) -> Response {
    let viewer = match Viewer::of(&state, &sessions, &headers) {
        Ok(v) => v,
        Err(to_login) => return *to_login,
    };
    let wanted = job.clone();
    match blocking(move || state.run_view(&repo, id)).await {
        Ok(v) => match v.jobs.iter().find(|j| j.name == wanted) {
            Some(job) => html(
                StatusCode::OK,
                log::render(&v.repo, &v.run, job, viewer.name()),
            ),
            None => failed(
                ApiError::NotFound(format!("run {id} of `{}` has no job `{wanted}`", v.repo)),
                viewer.name(),
            ),
        },
        Err(e) => failed(e, viewer.name()),
    }
}

/// A job's log for the page's script, as the API streams it, readable with the session.
async fn job_events(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((repo, id, job)): Path<(String, RunId, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    Viewer::of(&state, &sessions, &headers).map_err(|to_login| *to_login)?;
    log_events(&state, &headers, &repo, id, &job, &query).map_err(IntoResponse::into_response)
}

async fn login_form() -> Response {
    html(StatusCode::OK, login::render(None))
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Form(form): Form<SignIn>,
) -> Response {
    let name = state.actor(form.token.trim());
    let Some(name) = name else {
        let page = login::render(Some("That is not one of the agent's tokens."));
        return html(StatusCode::UNAUTHORIZED, page);
    };
    match sessions.open(&name) {
        Ok(id) => see_other("/", Some(session::set_cookie(&id))),
        Err(e) => failed(ApiError::Internal(e.to_string()), None),
    }
}

async fn sign_out(Extension(sessions): Extension<Arc<Sessions>>, headers: HeaderMap) -> Response {
    if let Some(id) = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_header)
    {
        sessions.close(id);
    }
    see_other("/", Some(session::clear_cookie()))
}

#[derive(Deserialize)]
struct Approve {
    comment: Option<String>,
}

async fn approve(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
    Form(form): Form<Approve>,
) -> Response {
    let Some(name) = signed_in(&state, &sessions, &headers) else {
        return see_other("/login", None);
    };
    let comment = form.comment.filter(|c| !c.trim().is_empty());
    match state.approve(&repo, id, &name, comment).await {
        Ok(_) => see_other(&run_link(&repo, id), None),
        Err(e) => failed(e, Some(&name)),
    }
}

async fn release(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((repo, id)): Path<(String, RunId)>,
) -> Response {
    let Some(name) = signed_in(&state, &sessions, &headers) else {
        return see_other("/login", None);
    };
    match state.release(&repo, id, &name).await {
        Ok(()) => see_other(&run_link(&repo, id), None),
        Err(e) => failed(e, Some(&name)),
    }
}

async fn resume(
    State(state): State<AgentState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    Path((repo, id, job)): Path<(String, RunId, String)>,
) -> Response {
    let Some(name) = signed_in(&state, &sessions, &headers) else {
        return see_other("/login", None);
    };
    match state.resume(&repo, id, &job, &name).await {
        Ok(_) => see_other(&run_link(&repo, id), None),
        Err(e) => failed(e, Some(&name)),
    }
}

fn signed_in(state: &AgentState, sessions: &Sessions, headers: &HeaderMap) -> Option<String> {
    Viewer::of(state, sessions, headers).ok()?.name
}

fn run_link(repo: &str, id: RunId) -> String {
    format!("/repos/{}/runs/{id}", super::escape::segment(repo))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// A refusal or failure of the agent, as a page with the API's status.
fn failed(e: ApiError, viewer: Option<&str>) -> Response {
    if let ApiError::Internal(why) = &e {
        tracing::error!("{why}");
    }
    let title = match e.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Refused",
        StatusCode::UNAUTHORIZED => "Sign in",
        _ => "Could not do that",
    };
    html(e.status(), layout::message(title, &e.to_string(), viewer))
}

fn html(status: StatusCode, page: String) -> Response {
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert("content-security-policy", HeaderValue::from_static(POLICY));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// After a form: back to a page by GET, so reloading does not post again.
fn see_other(to: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(to) = HeaderValue::from_str(to) {
        headers.insert(LOCATION, to);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(SET_COOKIE, cookie);
    }
    response
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
