//! Looking at a sandbox as a cluster, through the `/_cluster` API.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::sandbox::{Sandbox, ADMIN_USER};
use crate::wait;

impl Sandbox {
    /// `GET /_cluster/<what>` on node `index`, as admin; the JSON answer.
    pub fn cluster_get(&self, index: usize, what: &str) -> anyhow::Result<Value> {
        let url = format!("{}/_cluster/{what}", self.node(index).base_url());
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build()?;
        let response = http.get(&url).basic_auth(ADMIN_USER, Some(self.admin_password())).send()?;
        let status = response.status();
        let body = response.text()?;
        anyhow::ensure!(status.is_success(), "GET {url}: {status}: {body}");
        serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
    }

    /// The value of an unlabelled metric in node `index`'s `/metrics`.
    pub fn metric(&self, index: usize, name: &str) -> anyhow::Result<f64> {
        let url = format!("{}/metrics", self.node(index).base_url());
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
        let text = http.get(&url).send()?.text()?;
        let line =
            text.lines().find(|line| line.starts_with(&format!("{name} "))).with_context(|| format!("no {name}"))?;
        Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
    }

    /// The index of the node that leads, as node `asking` sees it.
    pub fn leader_index(&self, asking: usize) -> anyhow::Result<usize> {
        let state = self.cluster_get(asking, "state")?;
        let leader = state["leader"].as_u64().context("no leader")?;
        // Sandbox node ids are index + 1.
        Ok(leader as usize - 1)
    }

    /// The liveness gossip reports for node `index` (`alive`, `suspect`,
    /// `down`, `unknown`), as node `asking` sees it.
    pub fn liveness_of(&self, asking: usize, index: usize) -> anyhow::Result<String> {
        let node = self.cluster_get(asking, &format!("nodes/{}", index + 1))?;
        node["liveness"].as_str().map(str::to_owned).context("no liveness in the node view")
    }

    /// Waits until every node in `asking` reports `liveness` for node `index`;
    /// how long that took.
    pub fn wait_for_liveness(
        &self,
        asking: &[usize],
        index: usize,
        liveness: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let started = std::time::Instant::now();
        wait::until_some(&format!("node {index} to be {liveness}"), timeout, Duration::from_millis(100), || {
            for &at in asking {
                let seen = self.liveness_of(at, index).map_err(|e| format!("{e:#}"))?;
                if seen != liveness {
                    return Err(format!("node {at} sees node {index} as {seen}"));
                }
            }
            Ok(Some(()))
        })?;
        Ok(started.elapsed())
    }

    /// Waits until every running node sees the same leader, `voters` voters,
    /// every node alive and the layout synced.
    pub fn wait_until_formed(&self, voters: usize, timeout: Duration) -> anyhow::Result<()> {
        wait::until_some("the cluster to form", timeout, Duration::from_millis(200), || {
            let state = self.cluster_get(0, "state").map_err(|e| format!("{e:#}"))?;
            let nodes = state["nodes"].as_array().cloned().unwrap_or_default();
            let count_voters = nodes.iter().filter(|node| node["role"] == "voter").count();
            let all_alive = nodes.iter().filter(|n| n["state"] != "removed").all(|node| node["liveness"] == "alive");
            let synced = state["layout"]["sync_state"] == "synced";
            if count_voters == voters && all_alive && synced && state["leader"].is_u64() {
                Ok(Some(()))
            } else {
                Err(format!("voters {count_voters}, all alive {all_alive}, synced {synced}: {state}"))
            }
        })
    }
}
