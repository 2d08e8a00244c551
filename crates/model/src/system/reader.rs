//! Reads of the system domain.

use super::{
    layout_key, model_version_key, node_key, settings_key, ClusterSettings, Layout, ModelVersion, NodeId, NodeRecord,
};
use crate::store::{decode, get_json, tables, StoreError, View};

/// Most nodes one cluster records (removed ones included); far above any real cluster.
const MAX_NODES: usize = 10_000;

/// Reads cluster settings, nodes and the layout.
pub struct Reader<'s> {
    store: View<'s>,
}

impl<'s> Reader<'s> {
    pub fn new(store: impl Into<View<'s>>) -> Self {
        Reader { store: store.into() }
    }

    /// Cluster settings, once the cluster is initialised.
    pub fn settings(&self) -> Result<Option<ClusterSettings>, StoreError> {
        get_json(&*self.store, &settings_key())
    }

    /// What the cluster knows about node `id`.
    pub fn node(&self, id: NodeId) -> Result<Option<NodeRecord>, StoreError> {
        get_json(&*self.store, &node_key(id))
    }

    /// Every node ever recorded, removed ones included, by id.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let entries = self.store.scan(&[tables::NODE], None, MAX_NODES + 1)?;
        if entries.len() > MAX_NODES {
            return Err(StoreError(format!("more than {MAX_NODES} node records")));
        }
        entries.iter().map(|(_, value)| decode(value)).collect()
    }

    /// The model version the cluster runs (0 until the leader first raises it).
    pub fn model_version(&self) -> Result<u32, StoreError> {
        Ok(get_json::<ModelVersion>(&*self.store, &model_version_key())?.unwrap_or_default().active)
    }

    /// The current partition layout, once one was computed.
    pub fn layout(&self) -> Result<Option<Layout>, StoreError> {
        get_json(&*self.store, &layout_key())
    }
}
