//! Polling: fetch a repository at its interval and queue a run of each watched branch's new head
//! (the run of that exact commit). A head queued before is never queued again, across restarts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::config::Repo;
use super::state::Agent;

pub async fn poll(agent: Arc<Agent>, repo: Repo, every: Duration) {
    while !agent.stopping.load(Ordering::SeqCst) {
        let dir = agent.config.clone_dir(&repo.name);
        let (url, branches) = (repo.url.clone(), repo.branches.clone());
        let heads =
            tokio::task::spawn_blocking(move || crate::git::fetch(&dir, &url, &branches)).await;
        match heads {
            Ok(Ok(heads)) => {
                for (branch, commit) in heads {
                    match agent.queue.push_new_head(&repo.name, &branch, &commit) {
                        Ok(Some(_)) => {
                            tracing::info!(
                                repo = repo.name,
                                branch,
                                commit,
                                trigger = "poll",
                                "run queued"
                            );
                            agent.wake.notify_one();
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!("{e}"),
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(repo = repo.name, "{e}"),
            Err(e) => tracing::error!(repo = repo.name, "the fetch stopped: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}
