//! Polling: fetch a repository at its interval and queue a run of each watched branch's new head
//! (the run of that exact commit). A head queued before is never queued again, across restarts.
//! Agents sharing a store poll through their leader only, and the heads they saw are the
//! fleet's (in the database): one run per commit, whichever agent leads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::config::Repo;
use super::state::Agent;
use crate::fleet::Fleet;

pub async fn poll(agent: Arc<Agent>, repo: Repo, every: Duration) {
    // The fleet's connection, made when first needed.
    let mut fleet: Option<Fleet> = None;
    while !agent.stopping.load(Ordering::SeqCst) {
        if agent.config.store.is_some() && !agent.leading.load(Ordering::SeqCst) {
            tokio::time::sleep(every).await;
            continue;
        }
        let dir = agent.config.clone_dir(&repo.name);
        let (url, branches) = (repo.url.clone(), repo.branches.clone());
        let heads =
            tokio::task::spawn_blocking(move || crate::git::fetch(&dir, &url, &branches)).await;
        match heads {
            Ok(Ok(heads)) => {
                for (branch, commit) in heads {
                    if !new_to_the_fleet(&agent, &mut fleet, &repo.name, &branch, &commit).await {
                        continue;
                    }
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

/// Whether the fleet has not seen `commit` as the head of `branch` yet (recording it); always
/// true without a shared store. When the database cannot say, the head waits for the next poll.
async fn new_to_the_fleet(
    agent: &Arc<Agent>,
    fleet: &mut Option<Fleet>,
    repo: &str,
    branch: &str,
    commit: &str,
) -> bool {
    let Some(url) = agent.config.store.as_ref().map(|s| s.expose().to_string()) else {
        return true;
    };
    let me = super::lead::member(&agent.config);
    let held = fleet.take();
    let (repo, branch, commit) = (repo.to_string(), branch.to_string(), commit.to_string());
    let asked = tokio::task::spawn_blocking(move || {
        let mut queue = match held.map_or_else(|| Fleet::connect(&url, me), Ok) {
            Ok(q) => q,
            Err(e) => return (Err(e), None),
        };
        let new = queue.new_head(&repo, &branch, &commit);
        (new, Some(queue))
    })
    .await;
    match asked {
        Ok((Ok(new), kept)) => {
            *fleet = kept;
            new
        }
        Ok((Err(e), _)) => {
            tracing::warn!("the fleet's heads cannot be read: {e}");
            false
        }
        Err(e) => {
            tracing::error!("the fleet's heads cannot be read: {e}");
            false
        }
    }
}
