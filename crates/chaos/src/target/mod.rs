//! Clusters the chaos runner can hurt: what a fault needs from one.
//!
//! - [`loopback`]: `flotilla` processes on 127.1.x.y addresses of this
//!   machine; partitions and loss with iptables, a tmpfs per node for a full
//!   disk.
//! - [`docker`]: the containers of `deploy/compose`; kill and pause through
//!   the engine, partitions and loss with iptables rules on the bridge.

pub mod docker;
pub mod loopback;

use std::time::Duration;

use flotilla_cluster_tests::{Credentials, OciClient};

use crate::schedule::FaultKind;

/// A running cluster whose nodes (numbered from 0) can be hurt and healed.
pub trait Target {
    /// How many nodes there are.
    fn nodes(&self) -> usize;
    /// `http://host:port` of node `node`'s REST surface, as the workload reaches it.
    fn base_url(&self, node: usize) -> String;
    /// An admin account.
    fn credentials(&self) -> Credentials;
    /// How many copies of each blob the cluster keeps.
    fn replication_factor(&self) -> usize;
    /// `Err(why)` if this target cannot inject faults of `kind`.
    fn supports(&self, kind: FaultKind) -> Result<(), String>;

    /// kill -9.
    fn kill(&mut self, node: usize) -> anyhow::Result<()>;
    /// Starts a killed node again (returns once it runs, not once it is ready).
    fn start(&mut self, node: usize) -> anyhow::Result<()>;
    /// SIGSTOP.
    fn pause(&mut self, node: usize) -> anyhow::Result<()>;
    /// SIGCONT.
    fn resume(&mut self, node: usize) -> anyhow::Result<()>;
    /// Drops every packet from `from` to `to`.
    fn cut(&mut self, from: usize, to: usize) -> anyhow::Result<()>;
    /// Drops each packet from `from` to `to` with `probability`.
    fn lossy(&mut self, from: usize, to: usize, probability: f64) -> anyhow::Result<()>;
    /// Removes every network fault.
    fn heal_network(&mut self) -> anyhow::Result<()>;
    /// Fills `node`'s data disk.
    fn fill_disk(&mut self, node: usize) -> anyhow::Result<()>;
    /// Frees what [`Target::fill_disk`] took.
    fn free_disk(&mut self, node: usize) -> anyhow::Result<()>;
    /// Moves `node`'s wall clock by `seconds` (from the true time).
    fn shift_clock(&mut self, node: usize, seconds: i64) -> anyhow::Result<()>;

    /// Acts as the nodes' supervisor (systemd, the container engine): starts
    /// every node whose process exited on its own, and says which.
    fn revive(&mut self) -> anyhow::Result<Vec<usize>>;

    /// Starts one more node that joins as a storage node, for rebalancing
    /// under faults: it gets partitions (data moves to it), then is drained
    /// (data moves off). Faults never hit it and clients never use it; it
    /// is not counted in [`Target::nodes`]. Its node id, or `Err(why)` if
    /// this target has no room for one.
    fn add_spare(&mut self) -> anyhow::Result<u64> {
        anyhow::bail!("this target cannot start another node")
    }
    /// `Err(why)` if [`Target::add_spare`] is not offered.
    fn supports_spare(&self) -> Result<(), String> {
        Err("this target cannot start another node".into())
    }
    /// Stops the spare once the cluster has removed it.
    fn stop_spare(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// How many of the [`Target::nodes`] hold a verified-looking copy of `digest` on disk.
    fn copies(&self, digest: &str) -> anyhow::Result<usize>;
    /// The tail of every node's log, for a failure report.
    fn log_tails(&self, lines: usize) -> String;

    /// An admin client for each node whose requests give up after `timeout`.
    fn clients(&self, timeout: Duration) -> Vec<OciClient> {
        (0..self.nodes())
            .map(|node| OciClient::with_timeout(&self.base_url(node), self.credentials(), timeout))
            .collect()
    }
}
