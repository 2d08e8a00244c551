//! The cluster as `GET /_cluster/state` shows it (admin Basic auth), and
//! waiting until it is formed: every node answers `/readyz`, and the leader's
//! own view has a leader, every node an active, alive voter, and the layout
//! synced. The leader is asked because liveness is the leader's view.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::nodes::LocalCluster;
use crate::registry::{ADMIN_PASSWORD, ADMIN_USER};

/// Deadline of one admin or readiness request.
const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two looks at the cluster.
const FORMED_POLL: Duration = Duration::from_millis(200);

/// The fields of `GET /_cluster/state` the benchmark reads
/// (`crates/api/src/cluster/model.rs`).
#[derive(Debug, Clone, Deserialize)]
pub struct StateDoc {
    /// The node that answered.
    pub node_id: u64,
    pub leader: Option<u64>,
    pub nodes: Vec<NodeDoc>,
    pub layout: Option<LayoutDoc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeDoc {
    pub id: u64,
    pub role: String,
    pub state: String,
    pub liveness: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LayoutDoc {
    pub replication_factor: u32,
    pub sync_state: String,
}

/// A formed cluster: who leads, and how many copies a blob gets.
#[derive(Debug, Clone, Copy)]
pub struct Formed {
    pub leader: u64,
    pub replication_factor: u32,
}

/// HTTP client of the admin API and `/readyz`.
#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
}

impl Admin {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Admin { http: reqwest::Client::builder().timeout(ADMIN_REQUEST_TIMEOUT).build()? })
    }

    /// Whether `url` (a node's `/readyz`) answers 2xx.
    pub async fn ready(&self, url: &str) -> bool {
        self.http.get(url).send().await.is_ok_and(|response| response.status().is_success())
    }

    /// `GET <base>/_cluster/state`.
    pub async fn state(&self, base: &str) -> anyhow::Result<StateDoc> {
        let url = format!("{base}/_cluster/state");
        let response =
            self.http.get(&url).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD)).send().await.context("no answer")?;
        let status = response.status();
        let body = response.text().await.context("reading the answer")?;
        if !status.is_success() {
            bail!("{status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("unexpected JSON: {body}"))
    }
}

/// Why `state` (the leader's own view) is not yet a formed cluster of the
/// nodes `expected`; `None` once it is.
pub fn formation_gap(state: &StateDoc, expected: &[u64]) -> Option<String> {
    if state.leader != Some(state.node_id) {
        return Some(format!("node {} no longer leads (leader {:?})", state.node_id, state.leader));
    }
    for id in expected {
        let Some(node) = state.nodes.iter().find(|node| node.id == *id) else {
            return Some(format!("node {id} is not a member yet"));
        };
        if node.role != "voter" || node.state != "active" || node.liveness != "alive" {
            return Some(format!("node {id} is {} / {} / {}", node.role, node.state, node.liveness));
        }
    }
    match &state.layout {
        None => Some("no layout yet".to_owned()),
        Some(layout) if layout.sync_state != "synced" => Some(format!("layout {}", layout.sync_state)),
        Some(_) => None,
    }
}

/// Polls until every node of `cluster` runs, answers `/readyz`, and the
/// leader sees the voters among them as alive voters with the layout synced.
pub async fn wait_formed(cluster: &mut LocalCluster, timeout: Duration) -> anyhow::Result<Formed> {
    let deadline = Instant::now() + timeout;
    let expected = cluster.voter_ids();
    let mut gap = String::from("not asked yet");
    while Instant::now() < deadline {
        cluster.check_running()?;
        match look(cluster, &expected).await {
            Ok(formed) => return Ok(formed),
            Err(why) => gap = why,
        }
        tokio::time::sleep(FORMED_POLL).await;
    }
    bail!("the cluster did not form within {timeout:?}: {gap}\n{}", cluster.log_tails())
}

/// One look: the formed cluster, or why not.
async fn look(cluster: &LocalCluster, expected: &[u64]) -> Result<Formed, String> {
    for node in &cluster.nodes {
        if !node.is_running() {
            return Err(format!("node {} is not running", node.id));
        }
        if !cluster.admin.ready(&format!("{}/readyz", node.base_url)).await {
            return Err(format!("node {} is not ready", node.id));
        }
    }
    let mut leader = None;
    for node in &cluster.nodes {
        if let Ok(state) = cluster.admin.state(&node.base_url).await {
            leader = state.leader;
            break;
        }
    }
    let leader = leader.ok_or("no node knows a leader")?;
    if !expected.contains(&leader) {
        return Err(format!("leader {leader} is not one of ours"));
    }
    let state = cluster
        .admin
        .state(&cluster.node(leader).base_url)
        .await
        .map_err(|error| format!("leader {leader}: {error:#}"))?;
    if let Some(gap) = formation_gap(&state, expected) {
        return Err(gap);
    }
    let replication_factor = state.layout.map_or(0, |layout| layout.replication_factor);
    Ok(Formed { leader, replication_factor })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMED: &str = r#"{
        "cluster_id": "c", "node_id": 2, "leader": 2, "term": 3, "last_applied": 40,
        "nodes": [
            {"id": 1, "role": "voter", "state": "active", "liveness": "alive", "http_addr": "a", "rpc_addr": "b",
             "zone": null, "capacity": 1, "partitions": 1024, "matched_index": 40, "joined_ms": 1},
            {"id": 2, "role": "voter", "state": "active", "liveness": "alive", "http_addr": "a", "rpc_addr": "b",
             "zone": null, "capacity": 1, "partitions": 1024, "matched_index": 40, "joined_ms": 1},
            {"id": 3, "role": "voter", "state": "active", "liveness": "alive", "http_addr": "a", "rpc_addr": "b",
             "zone": null, "capacity": 1, "partitions": 1024, "matched_index": 40, "joined_ms": 1}
        ],
        "layout": {"version": 3, "partitions": 1024, "replication_factor": 3, "sync_state": "synced",
                   "created_ms": 1}
    }"#;

    fn formed() -> StateDoc {
        serde_json::from_str(FORMED).unwrap()
    }

    #[test]
    fn a_formed_cluster_has_no_gap() {
        assert_eq!(formation_gap(&formed(), &[1, 2, 3]), None);
        assert_eq!(formed().layout.unwrap().replication_factor, 3);
    }

    #[test]
    fn gaps_name_what_is_missing() {
        let mut state = formed();
        state.nodes[0].liveness = "suspect".into();
        assert_eq!(formation_gap(&state, &[1, 2, 3]).unwrap(), "node 1 is voter / active / suspect");
        let mut state = formed();
        state.nodes[2].role = "learner".into();
        assert!(formation_gap(&state, &[1, 2, 3]).unwrap().contains("learner"));
        assert!(formation_gap(&formed(), &[1, 2, 3, 4]).unwrap().contains("node 4"));
        let mut state = formed();
        state.layout.as_mut().unwrap().sync_state = "syncing".into();
        assert_eq!(formation_gap(&state, &[1, 2, 3]).unwrap(), "layout syncing");
        let mut state = formed();
        state.leader = Some(1);
        assert!(formation_gap(&state, &[1, 2, 3]).unwrap().contains("no longer leads"));
        state.leader = None;
        assert!(formation_gap(&state, &[1, 2, 3]).is_some());
    }
}
