//! The agent's shared state and what its API (and the dashboard's pages) do through it: list and
//! show runs, follow a job's log, start, cancel, retry, approve, release and resume a fleet's
//! held job as a named actor.
//! Every run's life goes through [`crate::engine`], exactly as `pipe run --commit` does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, Notify};

use super::config::{Config, Repo};
use super::error::ApiError;
use super::metrics::Metrics;
use super::queue::{Item, ItemState, Queue};
use crate::engine::{
    self, BackendKind, Cancel, Clock, Context, EventSink, ExecOptions, Interrupt, Shown, StoreAt,
};
use crate::fleet::{Held, JobId};
use crate::mask::Masks;
use crate::store::{Approval, AuditEntry, JobRecord, RunId, RunRecord};

/// What the HTTP handlers and the pages share.
pub type AgentState = Arc<Agent>;

pub struct Agent {
    pub config: Config,
    pub(super) queue: Queue,
    pub(super) metrics: Metrics,
    /// Hides the configuration's secrets and every run's in all the agent writes.
    pub(super) masks: Masks,
    /// Runs (and releases, retries) going on, by repository and run id: their cancel handles.
    pub(super) running: Mutex<HashMap<(String, RunId), Cancel>>,
    /// Jobs claimed from the fleet's queue and running here: their cancel handles.
    pub(super) claims: Mutex<HashMap<JobId, Cancel>>,
    /// Requests the agent is working on: runs from the queue, releases, retries.
    pub(super) in_flight: AtomicUsize,
    /// Wakes the dispatcher: a run was queued, or one ended.
    pub(super) wake: Notify,
    /// A graceful stop is under way: nothing new starts.
    pub(super) stopping: AtomicBool,
    /// This agent leads its fleet's housekeeping (see `lead.rs`); only the leader polls.
    pub(super) leading: AtomicBool,
}

/// A run as listed: its repository and the fields `pipe runs --output json` gives.
#[derive(Debug, Serialize)]
pub struct ListedRun {
    pub repo: String,
    #[serde(flatten)]
    pub run: RunRecord,
}

/// Which runs to list.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct RunFilter {
    pub repo: Option<String>,
    /// A run state (`running`, `failed`, …).
    pub state: Option<String>,
    pub branch: Option<String>,
    pub limit: Option<usize>,
}

/// A run in full, for the API and the run's page.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub repo: String,
    pub run: RunRecord,
    pub jobs: Vec<JobRecord>,
    pub approvals: Vec<Approval>,
    pub audit: Vec<AuditEntry>,
    /// The job graph's edges, `[needed, needing]`.
    pub needs: Vec<(String, String)>,
    /// What the gate waits for, for a run waiting at it.
    pub gate: Option<String>,
    /// Jobs of a fleet's run held for a person, who may resume them.
    pub held: Vec<Held>,
}

/// A later phase of a recorded run, started through the API.
#[derive(Clone, Copy)]
enum Later {
    Release,
    Retry,
}

/// What an approval came to.
#[derive(Debug, Serialize)]
pub struct ApprovalView {
    pub run_id: RunId,
    /// False when this approver had approved before.
    pub new: bool,
    pub count: usize,
    pub needed: u32,
    pub next: String,
}

/// A piece of a followed log.
#[derive(Debug)]
pub enum LogEvent {
    /// Text of the log (masked as the log file is), and the byte offset after it.
    Text { text: String, next: u64 },
    /// The job is over and everything it logged was sent.
    End,
}

/// How often a followed log is looked at while its job runs: a line reaches the client within it.
const LOG_POLL: Duration = Duration::from_millis(25);
/// The same with a shared store (a fleet's job logs only once it is over).
const SHARED_LOG_POLL: Duration = Duration::from_millis(500);
/// The most a log piece carries.
const LOG_PIECE: usize = 64 * 1024;
const DEFAULT_LIMIT: usize = 50;

impl Agent {
    pub fn new(config: Config, queue: Queue, masks: Masks) -> Agent {
        masks.add(config.secrets());
        Agent {
            config,
            queue,
            metrics: Metrics::default(),
            masks,
            running: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            leading: AtomicBool::new(false),
        }
    }

    /// Whose token this is, compared in constant time with every configured token.
    pub fn actor(&self, token: &str) -> Option<String> {
        let mut found = None;
        for t in &self.config.tokens {
            if bool::from(t.token.expose().as_bytes().ct_eq(token.as_bytes())) {
                found = Some(t.name.clone());
            }
        }
        found
    }

    /// Reading runs and logs needs no token.
    pub fn open_reads(&self) -> bool {
        self.config.open_reads
    }

    pub fn repo(&self, name: &str) -> Result<&Repo, ApiError> {
        self.config
            .repo(name)
            .ok_or_else(|| ApiError::NotFound(format!("no repository `{name}` is watched")))
    }

    /// [`Self::have_commit`] for run `id`. Blocking.
    fn have_run_commit(&self, repo: &str, ctx: &Context, id: RunId) -> Result<(), ApiError> {
        if self.config.store.is_none() {
            return Ok(());
        }
        let shown = engine::show(ctx, &id.to_string())?;
        self.have_commit(repo, &shown.run)
    }

    /// Fetches the commit of run `run` into this agent's clone when it lacks it: in a fleet, the
    /// agent that started the run, or the ones that ran its jobs, may be others. Blocking.
    fn have_commit(&self, repo: &str, run: &RunRecord) -> Result<(), ApiError> {
        let repo = self.repo(repo)?;
        if let (Some(commit), Some(_)) = (&run.commit, &self.config.store) {
            let project = self.config.clone_dir(&repo.name);
            engine::fetch_commit(&project, &repo.url, &repo.branches, commit)?;
        }
        Ok(())
    }

    /// A request's context in repository `repo`, acting as `actor`.
    pub(super) fn context(&self, repo: &str, actor: &str, events: Option<EventSink>) -> Context {
        Context {
            project: self.config.clone_dir(repo),
            actor: actor.to_string(),
            clock: Clock::System,
            events,
            masks: self.masks.clone(),
            store: (self.config.store.as_ref())
                .map_or(StoreAt::Project, |url| StoreAt::Shared(url.expose().into())),
            objects: self.config.objects.clone(),
        }
    }

    pub(super) fn exec_options(&self) -> ExecOptions {
        ExecOptions {
            backend: self.config.local.then_some(BackendKind::Local),
            concurrency: self.config.jobs,
            cache_dir: Some(self.config.data_dir.join("cache")),
            ..ExecOptions::default()
        }
    }

    /// Runs of every watched repository (or of `filter.repo`), newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<ListedRun>, ApiError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        let repos: Vec<&Repo> = match &filter.repo {
            Some(name) => vec![self.repo(name)?],
            None => self.config.repos.iter().collect(),
        };
        // Filtered runs may be far apart: each repository is read whole when a filter is set.
        let read = if filter.state.is_some() || filter.branch.is_some() {
            usize::MAX
        } else {
            limit
        };
        let mut listed = Vec::new();
        for repo in repos {
            let runs = engine::list_runs(&self.context(&repo.name, "", None), None, read)?;
            listed.extend(
                runs.into_iter()
                    .filter(|r| {
                        filter
                            .state
                            .as_deref()
                            .is_none_or(|s| r.state.as_str() == s)
                    })
                    .filter(|r| {
                        filter
                            .branch
                            .as_deref()
                            .is_none_or(|b| r.branch.as_deref() == Some(b))
                    })
                    .map(|run| ListedRun {
                        repo: repo.name.clone(),
                        run,
                    }),
            );
        }
        listed.sort_by_key(|l| std::cmp::Reverse(l.run.started_at));
        listed.truncate(limit);
        Ok(listed)
    }

    /// The runs waiting in the queue, oldest first.
    pub fn queued(&self) -> Result<Vec<Item>, ApiError> {
        Ok(self.queue.queued()?)
    }

    pub fn run_view(&self, repo: &str, id: RunId) -> Result<RunView, ApiError> {
        let ctx = self.context(repo, "agent", None);
        let Shown {
            run,
            jobs,
            approvals,
            audit,
            gate,
        } = engine::show(&ctx, &id.to_string())?;
        self.have_commit(repo, &run)?;
        Ok(RunView {
            repo: repo.to_string(),
            held: engine::held_jobs(&ctx, id)?,
            needs: engine::job_needs(&ctx, id)?,
            run,
            jobs,
            approvals,
            audit,
            gate,
        })
    }

    /// Follows run `id`'s log of `job` from byte `offset`: pieces as they are written, then
    /// [`LogEvent::End`]. A reader that is slow holds back only its own stream, never the job:
    /// the log is read from its file.
    pub fn follow_log(
        &self,
        repo: &str,
        id: RunId,
        job: &str,
        offset: u64,
    ) -> Result<mpsc::Receiver<LogEvent>, ApiError> {
        self.repo(repo)?;
        let ctx = self.context(repo, "agent", None);
        // Unknown runs and jobs are refused now, not as a broken stream.
        engine::log_since(&ctx, id, job, offset, 0)?;
        // A shared store is a connection per look: looked at less often.
        let poll = match ctx.store {
            StoreAt::Project => LOG_POLL,
            StoreAt::Shared(_) => SHARED_LOG_POLL,
        };
        let (tx, rx) = mpsc::channel(8);
        let job = job.to_string();
        tokio::spawn(async move {
            let mut offset = offset;
            let mut pending = Vec::new();
            loop {
                let (c, j) = (ctx.clone(), job.clone());
                let read = tokio::task::spawn_blocking(move || {
                    engine::log_since(&c, id, &j, offset, LOG_PIECE)
                })
                .await;
                let Ok(Ok(piece)) = read else {
                    return;
                };
                offset = piece.next;
                pending.extend_from_slice(&piece.text);
                let text = whole_chars(&mut pending, piece.ended);
                if !text.is_empty()
                    && tx
                        .send(LogEvent::Text {
                            text,
                            next: offset - pending.len() as u64,
                        })
                        .await
                        .is_err()
                {
                    return;
                }
                if piece.ended {
                    let _ = tx.send(LogEvent::End).await;
                    return;
                }
                if piece.text.is_empty() {
                    tokio::time::sleep(poll).await;
                }
            }
        });
        Ok(rx)
    }

    /// Queues a run of `branch`'s head (fetched now) or of `commit`, as `actor`.
    pub async fn start_run(
        &self,
        repo: &str,
        branch: Option<String>,
        commit: Option<String>,
        actor: &str,
    ) -> Result<Item, ApiError> {
        let config = self.repo(repo)?.clone();
        let dir = self.config.clone_dir(repo);
        let fetched = tokio::task::spawn_blocking(move || {
            crate::git::fetch(&dir, &config.url, &config.branches).map(|_| dir)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let dir = fetched.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let (commit, branch) = match (commit, branch) {
            (Some(commit), branch) => (commit, branch),
            (None, Some(branch)) => {
                let head = crate::git::head_of(&dir, &branch).ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "branch `{branch}` of `{repo}` is not watched or has no commit"
                    ))
                })?;
                (head, Some(branch))
            }
            (None, None) => {
                return Err(ApiError::Invalid(
                    "say what to run: {\"branch\": NAME} or {\"commit\": SHA}".into(),
                ))
            }
        };
        let item = self
            .queue
            .push(repo, &commit, branch.as_deref(), "api", actor)?;
        self.wake.notify_one();
        Ok(item)
    }

    /// Approves run `id`'s release as `actor`.
    pub async fn approve(
        self: &Arc<Self>,
        repo: &str,
        id: RunId,
        actor: &str,
        comment: Option<String>,
    ) -> Result<ApprovalView, ApiError> {
        self.repo(repo)?;
        let ctx = self.context(repo, actor, None);
        let (me, repo) = (self.clone(), repo.to_string());
        let approved = tokio::task::spawn_blocking(move || {
            me.have_run_commit(&repo, &ctx, id)?;
            Ok::<_, ApiError>(engine::approve(&ctx, &id.to_string(), comment.as_deref())?)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        Ok(ApprovalView {
            run_id: approved.run,
            new: approved.new,
            count: approved.count,
            needed: approved.needed,
            next: approved.next,
        })
    }

    /// Resumes held job `job` of run `id` as `actor`: queued for the fleet's agents.
    pub async fn resume(
        &self,
        repo: &str,
        id: RunId,
        job: &str,
        actor: &str,
    ) -> Result<engine::Resumed, ApiError> {
        self.repo(repo)?;
        let ctx = self.context(repo, actor, None);
        let job = job.to_string();
        let resumed =
            tokio::task::spawn_blocking(move || engine::resume(&ctx, &id.to_string(), &job))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??;
        tracing::info!(repo, run = id, job = resumed.job, actor, "held job resumed");
        Ok(resumed)
    }

    /// Asks run `id`'s jobs (or its release's) to stop; it ends interrupted.
    pub fn cancel(&self, repo: &str, id: RunId, actor: &str) -> Result<(), ApiError> {
        self.repo(repo)?;
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let cancel = running.get(&(repo.to_string(), id)).ok_or_else(|| {
            ApiError::Refused(format!("run {id} of `{repo}` is not running here"))
        })?;
        tracing::info!(repo, run = id, actor, "cancel asked");
        cancel.request(Interrupt::Terminate);
        Ok(())
    }

    /// Cancels queued item `item` of `repo` as `actor`: it never starts. A run that started
    /// already is cancelled as a run ([`Agent::cancel`]).
    pub fn cancel_queued(&self, repo: &str, item: i64, actor: &str) -> Result<Item, ApiError> {
        self.repo(repo)?;
        let not_found = || ApiError::NotFound(format!("`{repo}` has no queued run {item}"));
        let found = self.queue.item(item)?.filter(|i| i.repo == repo);
        let found = found.ok_or_else(not_found)?;
        if !self.queue.leave_queue(item, ItemState::Cancelled)? {
            let now = self.queue.item(item)?.ok_or_else(not_found)?;
            let run = now
                .run_id
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default();
            return Err(ApiError::Refused(format!(
                "queued run {item} of `{repo}` is no longer queued: it is {}{run}",
                now.state.as_str()
            )));
        }
        tracing::info!(
            repo,
            item,
            actor,
            commit = found.commit,
            "queued run cancelled"
        );
        self.wake.notify_one();
        Ok(Item {
            state: ItemState::Cancelled,
            ..found
        })
    }

    /// Releases run `id` as `actor` when its gate holds: answers once the release is under way
    /// (or refused), while its jobs go on.
    pub async fn release(
        self: &Arc<Self>,
        repo: &str,
        id: RunId,
        actor: &str,
    ) -> Result<(), ApiError> {
        self.later(repo, id, actor, Later::Release).await
    }

    /// Retries run `id` (as a new run) as `actor`.
    pub async fn retry(
        self: &Arc<Self>,
        repo: &str,
        id: RunId,
        actor: &str,
    ) -> Result<(), ApiError> {
        self.later(repo, id, actor, Later::Retry).await
    }

    /// Starts `phase` of recorded run `id` as `actor`, in the background.
    async fn later(
        self: &Arc<Self>,
        repo: &str,
        id: RunId,
        actor: &str,
        phase: Later,
    ) -> Result<(), ApiError> {
        self.repo(repo)?;
        if matches!(phase, Later::Release) {
            let (me, r, ctx) = (
                self.clone(),
                repo.to_string(),
                self.context(repo, actor, None),
            );
            tokio::task::spawn_blocking(move || me.have_run_commit(&r, &ctx, id))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??;
        }
        let exec = self.exec_options();
        let run = id.to_string();
        self.background(repo, actor, move |ctx, cancel| async move {
            match phase {
                Later::Release => engine::release(engine::ReleaseRequest {
                    ctx,
                    run,
                    again: false,
                    exec,
                    cancel,
                })
                .await
                .map(|o| o.run),
                Later::Retry => engine::retry(engine::RetryRequest {
                    ctx,
                    run,
                    failed: false,
                    exec,
                    cancel,
                })
                .await
                .map(|o| o.run),
            }
        })
        .await
    }

    /// Starts an engine request in the background and answers once it refused or began (its
    /// first event): refusals are the caller's to see, the jobs are not theirs to wait for.
    async fn background<F, Fut>(
        self: &Arc<Self>,
        repo: &str,
        actor: &str,
        request: F,
    ) -> Result<(), ApiError>
    where
        F: FnOnce(Context, Cancel) -> Fut,
        Fut: std::future::Future<Output = Result<RunId, engine::EngineError>> + Send + 'static,
    {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(ApiError::Unavailable("the agent is stopping".into()));
        }
        let (events, mut seen) = mpsc::unbounded_channel();
        let (began_tx, began) = tokio::sync::oneshot::channel();
        let cancel = Cancel::new();
        let fut = request(self.context(repo, actor, Some(events)), cancel.clone());
        let agent = self.clone();
        let repo = repo.to_string();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let watcher = {
            let agent = agent.clone();
            let repo = repo.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut began_tx = Some(began_tx);
                let mut follower = super::executor::Follower::default();
                while let Some(event) = seen.recv().await {
                    if let Some(tx) = began_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                    if let Some(id) = follower.see(&agent.metrics, &event) {
                        agent.track(&repo, id, &cancel);
                    }
                }
                follower.untrack(&agent, &repo);
                began_tx
            })
        };
        tokio::spawn(async move {
            let ended = fut.await;
            if let Err(e) = &ended {
                tracing::warn!(repo, "{}", agent.masks.current().text(&e.to_string()));
            }
            // The request's sink is dropped with it: the watcher ends.
            let unsent = watcher.await.ok().flatten();
            if let Some(tx) = unsent {
                let _ = tx.send(ended.map(|_| ()).map_err(ApiError::from));
            }
            agent.in_flight.fetch_sub(1, Ordering::SeqCst);
            agent.wake.notify_one();
        });
        began.await.unwrap_or_else(|_| {
            Err(ApiError::Internal(
                "the request ended without a word".into(),
            ))
        })
    }

    pub(super) fn track(&self, repo: &str, id: RunId, cancel: &Cancel) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert((repo.to_string(), id), cancel.clone());
    }

    pub(super) fn untrack(&self, repo: &str, id: RunId) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&(repo.to_string(), id));
    }

    /// A job claimed from the fleet's queue, running here: a graceful stop cancels it.
    pub(super) fn track_claim(&self, job: JobId, cancel: &Cancel) {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        claims.insert(job, cancel.clone());
    }

    pub(super) fn untrack_claim(&self, job: JobId) {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        claims.remove(&job);
    }

    /// The cancel handles of the runs and claimed jobs going on.
    pub(super) fn cancels(&self) -> Vec<Cancel> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        running.values().chain(claims.values()).cloned().collect()
    }

    /// Whether nothing is going on: no request in flight, no claimed job running.
    pub(super) fn idle(&self) -> bool {
        let claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        self.in_flight.load(Ordering::SeqCst) == 0 && claims.is_empty()
    }

    /// `/metrics`' text.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(self.queue.depth().unwrap_or(0))
    }
}

/// The text of the whole characters at the start of `bytes`, taken out of it; a character cut
/// by the end of a piece waits for the next (unless `all`, when it is replaced).
fn whole_chars(bytes: &mut Vec<u8>, all: bool) -> String {
    let upto = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() && !all => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    let text = String::from_utf8_lossy(&bytes[..upto]).into_owned();
    bytes.drain(..upto);
    text
}
