//! Tasks every data node does its share of: repair, scrub and optimize.
//!
//! The leader asks each node of the layout, all at once, to run the
//! maintenance on its own copies (`BlobService.Maintain`), and records each
//! node's counters in the task as its answer arrives. The task's cursor lists
//! the nodes that are done, so a new leader asks only the others. A node that
//! cannot be reached is asked again a few times; if it still fails the task
//! ends `failed` naming it, with what the others did recorded. Cancelling the
//! task drops the calls, which stops the work on every node.
//!
//! Optimize first waits for the layout to be synced (every new owner has its
//! copies), then asks every node to drop the copies no owner list names it for.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tonic::Code;

use flotilla_model::tasks::Command;
use flotilla_model::tasks::{TaskCounters, TaskKind, TaskRecord, TaskState, TaskUpdate};
use flotilla_raft::{MetaClient, NodeId};

use super::{commit, current_state};
use crate::blobs::peer::BlobPeers;
use crate::cluster::ClusterView;
use crate::proto::blobs::{MaintainReply, Maintenance};

/// How often the leader looks whether the task was cancelled (and, for
/// optimize, whether the layout is synced).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Calls to a node before the task gives up on it.
const ATTEMPTS: u32 = 10;
/// Pause between two calls to a node that did not answer.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Runs (or resumes) a repair, scrub or optimize task to its end.
pub async fn run(
    meta: &MetaClient,
    view: &ClusterView,
    peers: &BlobPeers,
    task: TaskRecord,
) -> Result<TaskState, String> {
    let id = task.id.clone();
    let maintenance = match task.kind {
        TaskKind::Repair => Maintenance::Repair,
        TaskKind::Scrub => Maintenance::Scrub,
        TaskKind::Optimize => Maintenance::DropOrphans,
        TaskKind::Gc => return Err("gc is not a per-node task".into()),
    };
    let started = TaskUpdate { node: Some(meta.node_id()), ..TaskUpdate::state(&id, TaskState::Running) };
    if !commit(meta, Command::UpdateTask(started)).await? {
        return Ok(current_state(meta, &id));
    }
    if task.kind == TaskKind::Optimize {
        while view.layout().is_some_and(|layout| layout.is_syncing()) {
            tokio::time::sleep(POLL_INTERVAL).await;
            if current_state(meta, &id).is_terminal() {
                return Ok(current_state(meta, &id));
            }
        }
    }
    let layout = view.layout().ok_or("the cluster has no layout yet")?;
    let mut done = parse_cursor(task.cursor.as_deref())?;
    let mut calls: FuturesUnordered<_> = layout
        .nodes()
        .into_iter()
        .filter(|node| !done.contains(node))
        .map(|node| async move { (node, call(view, peers, node, maintenance, task.options.dry_run).await) })
        .collect();
    let mut failures = Vec::new();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    while !calls.is_empty() {
        tokio::select! {
            Some((node, outcome)) = calls.next() => match outcome {
                Ok(reply) => {
                    done.insert(node);
                    if !record_share(meta, &id, node, &reply, &done).await? {
                        return Ok(current_state(meta, &id));
                    }
                }
                Err(error) => failures.push(format!("node {node}: {error}")),
            },
            _ = poll.tick() => {
                let state = current_state(meta, &id);
                if state.is_terminal() {
                    return Ok(state);
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    if !commit(meta, Command::UpdateTask(TaskUpdate::state(&id, TaskState::Finished))).await? {
        return Ok(current_state(meta, &id));
    }
    Ok(TaskState::Finished)
}

/// Adds one node's counters to the task and moves the cursor past it; `false`
/// if the task ended meanwhile.
async fn record_share(
    meta: &MetaClient,
    id: &str,
    node: NodeId,
    reply: &MaintainReply,
    done: &BTreeSet<NodeId>,
) -> Result<bool, String> {
    let &MaintainReply { scanned, blobs, bytes, failed } = reply;
    tracing::info!(task = %id, node, scanned, blobs, bytes, failed, "node finished its share");
    let counters = TaskCounters { scanned, blobs, bytes, failed, ..TaskCounters::default() };
    commit(meta, Command::UpdateTask(TaskUpdate::progress(id, counters, Some(render_cursor(done))))).await
}

/// Asks `node` to run `maintenance`, again while it cannot answer yet.
async fn call(
    view: &ClusterView,
    peers: &BlobPeers,
    node: NodeId,
    maintenance: Maintenance,
    dry_run: bool,
) -> Result<MaintainReply, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let addr = view.addr_of(node).ok_or_else(|| format!("no address for node {node}"))?;
        match peers.maintain(&addr.rpc_addr, maintenance, dry_run).await {
            Ok(reply) => return Ok(reply),
            Err(status) if attempt < ATTEMPTS && is_transient(&status) => {
                tracing::debug!(node, %status, attempt, "maintenance call failed; asking again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(status) => return Err(format!("{}: {}", status.code(), status.message())),
        }
    }
}

fn is_transient(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::FailedPrecondition | Code::Unknown | Code::Cancelled)
}

/// The nodes done, as the cursor records them: `1,3,4`.
fn parse_cursor(cursor: Option<&str>) -> Result<BTreeSet<NodeId>, String> {
    let Some(cursor) = cursor.filter(|cursor| !cursor.is_empty()) else { return Ok(BTreeSet::new()) };
    cursor.split(',').map(|node| node.parse().map_err(|_| format!("bad task cursor {cursor:?}"))).collect()
}

fn render_cursor(done: &BTreeSet<NodeId>) -> String {
    done.iter().map(NodeId::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_round_trips_the_nodes_done() {
        let done = BTreeSet::from([1, 3, 4]);
        assert_eq!(render_cursor(&done), "1,3,4");
        assert_eq!(parse_cursor(Some("1,3,4")).unwrap(), done);
        assert_eq!(parse_cursor(None).unwrap(), BTreeSet::new());
        assert_eq!(parse_cursor(Some("")).unwrap(), BTreeSet::new());
        assert!(parse_cursor(Some("1,x")).is_err());
    }
}
