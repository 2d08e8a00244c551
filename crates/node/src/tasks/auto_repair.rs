//! Starts a repair when copies may be missing, so that a cluster returns to
//! its replication factor after a fault with no operator step.
//!
//! Two signs that a copy is missing:
//! - this node acknowledged a blob below its replication factor (an owner
//!   was down or cut off during the write: [`RepairDebt`]);
//! - while this node leads, a data node came back (alive after suspect or
//!   down): it may have missed writes that other nodes took for it.
//!
//! Either way the repair is requested once every node of the layout is alive
//! again (a repair needs each of them) and no layout is syncing (the sync
//! copies what the new owners lack), through Raft like an operator's, and
//! the sign is cleared only when a repair task was created after it: if one
//! is already running it may have passed the missing copy, so the request is
//! repeated until a fresh one starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use flotilla_model::tasks::TaskKind;
use flotilla_raft::{MetaClient, NodeId};

use crate::blobs::RepairDebt;
use crate::cluster::liveness::{Liveness, LivenessTable};
use crate::cluster::ClusterView;

/// How often liveness and the debt are looked at.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The worker; one per node.
pub struct AutoRepair {
    pub meta: MetaClient,
    pub view: Arc<ClusterView>,
    pub liveness: LivenessTable,
    pub debt: RepairDebt,
}

impl AutoRepair {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_seen: BTreeMap<NodeId, Liveness> = BTreeMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
            let Some(layout) = self.view.layout() else { continue };
            let nodes = layout.nodes();
            let now: BTreeMap<NodeId, Liveness> = nodes.iter().map(|node| (*node, self.liveness.of(*node))).collect();
            if self.view.is_leader() && came_back(&last_seen, &now) {
                tracing::info!("a data node is back; a repair will check its copies");
                self.debt.incur();
            }
            last_seen = now;
            // While a layout syncs, the sync is what copies; the repair waits for it.
            let ready = !layout.is_syncing() && last_seen.values().all(|liveness| *liveness == Liveness::Alive);
            if !self.debt.is_owed() || !ready {
                continue;
            }
            if self.request_repair().await {
                self.debt.settle();
            }
        }
    }

    /// Creates a repair task; whether one was created.
    async fn request_repair(&self) -> bool {
        let created = super::create_by_cluster(&self.meta, TaskKind::Repair).await;
        if let Some(id) = &created {
            tracing::info!(task = %id, "repair started: copies may be missing after a fault");
        }
        created.is_some()
    }
}

/// Whether a node that was known and not alive is alive now.
fn came_back(before: &BTreeMap<NodeId, Liveness>, now: &BTreeMap<NodeId, Liveness>) -> bool {
    now.iter().any(|(node, liveness)| {
        *liveness == Liveness::Alive && matches!(before.get(node), Some(Liveness::Suspect | Liveness::Down))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(NodeId, Liveness)]) -> BTreeMap<NodeId, Liveness> {
        entries.iter().copied().collect()
    }

    #[test]
    fn only_a_return_from_not_alive_counts() {
        let all_alive = table(&[(1, Liveness::Alive), (2, Liveness::Alive)]);
        let two_down = table(&[(1, Liveness::Alive), (2, Liveness::Down)]);
        let two_suspect = table(&[(1, Liveness::Alive), (2, Liveness::Suspect)]);
        assert!(came_back(&two_down, &all_alive));
        assert!(came_back(&two_suspect, &all_alive));
        assert!(!came_back(&all_alive, &all_alive));
        assert!(!came_back(&all_alive, &two_down));
        assert!(!came_back(&two_down, &two_down));
        // A node first seen (a new leader's first look, gossip starting) is not a return.
        assert!(!came_back(&BTreeMap::new(), &all_alive));
        assert!(!came_back(&table(&[(1, Liveness::Alive), (2, Liveness::Unknown)]), &all_alive));
    }
}
