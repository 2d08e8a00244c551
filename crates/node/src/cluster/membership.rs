//! The membership control loop: the one place that changes Raft membership
//! and the partition layout. It runs on every node and acts only while that
//! node leads, so a new leader simply carries on where the old one stopped.
//!
//! Each round, in order:
//! 1. leave a joint configuration a crashed leader left behind;
//! 2. drop members whose record says `Removed`;
//! 3. promote caught-up learners to voters while there are fewer voters than
//!    configured (later nodes stay non-voting storage nodes);
//! 4. compute the next layout when the data-holding nodes changed (never while
//!    the current one is still syncing);
//! 5. sync a syncing layout: every member pushes the blobs of the partitions
//!    that gained owners (paced by its `copy_rate`), then the layout is marked
//!    synced and an optimize task is created to drop the copies no owner list
//!    names any more;
//! 6. finish drains: a draining node that owns nothing in a synced layout is
//!    marked `Removed` (and dropped from membership by step 2 next round).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::ChangeMembers;
use tokio_util::sync::CancellationToken;

use flotilla_model::system::{self, Layout, NodeRecord, NodeState};
use flotilla_model::tasks;
use flotilla_model::tasks::{TaskKind, TaskOptions, TaskRecord, Trigger};
use flotilla_raft::client::now_ms;
use flotilla_raft::{MetaClient, NodeId, WriteError};

use super::ClusterView;
use crate::blobs::peer::BlobPeers;
use crate::placement::{self, NodeSpec};

/// How often the loop looks at the cluster.
const ROUND_INTERVAL: Duration = Duration::from_millis(500);
/// A learner is caught up when it lags the leader's log by at most this many entries.
const CAUGHT_UP_ENTRIES: u64 = 100;
/// Partitions of a new cluster's first layout; fixed for the cluster's life.
pub const DEFAULT_PARTITIONS: u32 = 1024;

/// What the loop needs.
pub struct Membership {
    pub view: Arc<ClusterView>,
    pub meta: MetaClient,
    pub peers: BlobPeers,
    /// Voters wanted (1 to 5).
    pub voters: usize,
    /// Copies wanted per blob.
    pub replication_factor: u32,
}

impl Membership {
    /// Runs rounds until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let sync = Arc::new(tokio::sync::Mutex::new(()));
        let mut interval = tokio::time::interval(ROUND_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if !self.view.is_leader() {
                continue;
            }
            if let Err(error) = self.round(&sync).await {
                tracing::warn!(error = format!("{error:#}"), "membership round failed; retrying");
            }
        }
    }

    async fn round(&self, sync: &Arc<tokio::sync::Mutex<()>>) -> anyhow::Result<()> {
        self.leave_joint_config().await?;
        let catalog = self.meta.read().await?;
        let records: BTreeMap<NodeId, NodeRecord> =
            catalog.system().nodes()?.into_iter().map(|node| (node.id, node)).collect();
        self.drop_removed_members(&records).await?;
        self.promote_learners(&records).await?;
        let active = catalog.system().model_version()?;
        self.raise_model_version(&records, active).await?;
        let layout = catalog.system().layout()?;
        match layout {
            Some(layout) if layout.is_syncing() => self.start_sync(Arc::new(layout), sync),
            layout => {
                self.update_layout(&records, layout.as_ref()).await?;
                if let Some(layout) = layout {
                    self.finish_drains(&records, &layout).await?;
                }
            }
        }
        Ok(())
    }

    /// Raises the cluster's model version to the newest every member (voter
    /// or learner) and every other node that is not removed supports; `apply`
    /// checks the same against the node records.
    async fn raise_model_version(&self, records: &BTreeMap<NodeId, NodeRecord>, active: u32) -> anyhow::Result<()> {
        let (voters, learners) = self.members();
        let members = voters.iter().chain(&learners);
        let member_versions = members.map(|id| records.get(id).map_or(0, |record| record.model_version));
        let record_versions =
            records.values().filter(|record| record.state != NodeState::Removed).map(|record| record.model_version);
        let Some(supported) = member_versions.chain(record_versions).min() else { return Ok(()) };
        if supported <= active {
            return Ok(());
        }
        self.meta.write(system::Command::RaiseModelVersion { version: supported }).await?;
        tracing::info!(from = active, to = supported, "raised the cluster's model version");
        Ok(())
    }

    fn members(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let metrics = self.view.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        (voters, learners)
    }

    async fn leave_joint_config(&self) -> anyhow::Result<()> {
        let metrics = self.view.metrics();
        let membership = metrics.membership_config.membership();
        let configs = membership.get_joint_config();
        if configs.len() <= 1 {
            return Ok(());
        }
        let last = configs.last().cloned().unwrap_or_default();
        tracing::info!(voters = ?last, "leaving a joint configuration");
        self.view
            .raft()
            .change_membership(ChangeMembers::ReplaceAllVoters(last), true)
            .await
            .context("leaving the joint configuration")?;
        Ok(())
    }

    async fn drop_removed_members(&self, records: &BTreeMap<NodeId, NodeRecord>) -> anyhow::Result<()> {
        let (voters, learners) = self.members();
        for (id, record) in records {
            if record.state != NodeState::Removed {
                continue;
            }
            let change = if voters.contains(id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([*id]))
            } else if learners.contains(id) {
                ChangeMembers::RemoveNodes(BTreeSet::from([*id]))
            } else {
                continue;
            };
            tracing::info!(node_id = id, "removing a node from Raft membership");
            self.view.raft().change_membership(change, false).await.context("removing a member")?;
        }
        Ok(())
    }

    async fn promote_learners(&self, records: &BTreeMap<NodeId, NodeRecord>) -> anyhow::Result<()> {
        let (voters, learners) = self.members();
        if voters.len() >= self.voters {
            return Ok(());
        }
        let metrics = self.view.metrics();
        let last_log = metrics.last_log_index.unwrap_or(0);
        let Some(replication) = metrics.replication.as_ref() else { return Ok(()) };
        let caught_up = learners.iter().copied().find(|id| {
            let active = records.get(id).is_some_and(|record| record.state == NodeState::Active);
            let matched = replication.get(id).copied().flatten().map_or(0, |log_id| log_id.index);
            active && matched + CAUGHT_UP_ENTRIES >= last_log
        });
        if let Some(id) = caught_up {
            tracing::info!(node_id = id, voters = voters.len() + 1, "promoting a learner to voter");
            self.view
                .raft()
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                .await
                .context("promoting a learner")?;
        }
        Ok(())
    }

    async fn update_layout(
        &self,
        records: &BTreeMap<NodeId, NodeRecord>,
        current: Option<&Layout>,
    ) -> anyhow::Result<()> {
        let (voters, learners) = self.members();
        let specs: Vec<NodeSpec> = records
            .values()
            .filter(|node| node.holds_data() && (voters.contains(&node.id) || learners.contains(&node.id)))
            .map(|node| NodeSpec { id: node.id, zone: node.zone.clone(), capacity: node.capacity })
            .collect();
        if specs.is_empty() {
            return Ok(());
        }
        let partitions = current.map_or(DEFAULT_PARTITIONS, |layout| layout.partitions);
        let previous = current.map(|layout| layout.owners.as_slice());
        let owners = placement::assign(partitions, self.replication_factor as usize, &specs, previous);
        if current.is_some_and(|layout| layout.owners == owners) {
            return Ok(());
        }
        let layout = Layout {
            version: current.map_or(1, |layout| layout.version + 1),
            partitions,
            replication_factor: self.replication_factor,
            previous: current.map(|layout| layout.owners.clone()),
            owners,
            created_ms: now_ms(),
        };
        let moved = layout.previous.as_ref().map_or(0, |old| placement::moved_replicas(old, &layout.owners));
        tracing::info!(version = layout.version, nodes = specs.len(), moved, "installing a new layout");
        self.meta.write(system::Command::PutLayout(Box::new(layout))).await?;
        Ok(())
    }

    /// Starts syncing `layout` in the background unless a sync is running.
    fn start_sync(&self, layout: Arc<Layout>, sync: &Arc<tokio::sync::Mutex<()>>) {
        let Ok(guard) = sync.clone().try_lock_owned() else { return };
        let (voters, learners) = self.members();
        let members: Vec<NodeId> = voters.union(&learners).copied().collect();
        let view = self.view.clone();
        let meta = self.meta.clone();
        let peers = self.peers.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(error) = sync_layout(&view, &meta, &peers, &layout, &members).await {
                tracing::warn!(
                    version = layout.version,
                    error = format!("{error:#}"),
                    "layout sync incomplete; retrying"
                );
            }
        });
    }

    async fn finish_drains(&self, records: &BTreeMap<NodeId, NodeRecord>, layout: &Layout) -> anyhow::Result<()> {
        for record in records.values().filter(|node| node.state == NodeState::Draining) {
            if layout.replicas_of(record.id) == 0 && !layout.is_syncing() {
                tracing::info!(node_id = record.id, "node drained; removing it");
                self.meta.write(system::Command::SetNodeState { id: record.id, state: NodeState::Removed }).await?;
            }
        }
        Ok(())
    }
}

/// Asks every member to push its share of `layout`, then marks it synced.
async fn sync_layout(
    view: &ClusterView,
    meta: &MetaClient,
    peers: &BlobPeers,
    layout: &Layout,
    members: &[NodeId],
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut copied = 0;
    let mut bytes = 0;
    for member in members {
        let addr = view.addr_of(*member).with_context(|| format!("no address for node {member}"))?;
        let reply = peers.sync(&addr.rpc_addr, layout.version).await.with_context(|| format!("node {member}"))?;
        copied += reply.blobs_copied;
        bytes += reply.bytes_copied;
    }
    meta.write(system::Command::MarkLayoutSynced { version: layout.version }).await?;
    let replicas_moved =
        layout.previous.as_ref().map_or(0, |previous| placement::moved_replicas(previous, &layout.owners));
    tracing::info!(
        version = layout.version,
        copied,
        bytes,
        replicas_moved,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "layout synced"
    );
    let optimize = TaskRecord::new(
        uuid::Uuid::new_v4().to_string(),
        TaskKind::Optimize,
        Trigger::Schedule,
        TaskOptions::default(),
        now_ms(),
    );
    match meta.write(tasks::Command::CreateTask(Box::new(optimize))).await {
        Ok(_) => tracing::info!(version = layout.version, "optimize task created to drop moved copies"),
        Err(WriteError::Rejected(rejection)) => {
            tracing::debug!(reason = %rejection.message, "no optimize task created")
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}
