//! The system domain: cluster settings, the nodes and the partition layout.
//!
//! Rules `apply` enforces: a removed node stays removed (its id can never
//! join again); layouts are well formed and advance one version at a time;
//! only the current layout can be marked synced.

mod reader;
mod records;

use serde::{Deserialize, Serialize};

use flotilla_storage::ErrorKind;

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::store::{get_json, key, put_json, tables, StateRead, Tx};

pub use reader::Reader;
pub use records::{ClusterSettings, Layout, ModelVersion, NodeRecord, NodeState};

/// A node's id, unique within a cluster and never reused.
pub type NodeId = u64;

/// Refusal codes of this domain.
pub mod code {
    pub const NODE_UNKNOWN: &str = "NODE_UNKNOWN";
    pub const NODE_REMOVED: &str = "NODE_REMOVED";
    /// A layout or node change that is malformed or out of order.
    pub const INVALID: &str = "INVALID";
    /// A command of a model version the cluster does not run yet.
    pub const MODEL_VERSION_INACTIVE: &str = "MODEL_VERSION_INACTIVE";
}

/// A change to the cluster's settings, nodes or layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Sets cluster-wide settings (first start, or an operator change).
    PutSettings(ClusterSettings),
    /// Records a node that joined, or its new addresses, zone or capacity.
    /// Refused for a removed node.
    PutNode(NodeRecord),
    /// Moves a node to `state` (drain, or remove for good). Refused for an
    /// unknown node and for leaving `Removed`.
    SetNodeState { id: NodeId, state: NodeState },
    /// Installs the next layout; refused unless its version is the current one plus one.
    PutLayout(Box<Layout>),
    /// The data of layout `version` has moved: drop its `previous` owners.
    MarkLayoutSynced { version: u64 },
    /// Makes `version` the cluster's model version; refused unless it is
    /// newer than the active one and every node that is not removed
    /// supports it.
    RaiseModelVersion { version: u32 },
    /// Does nothing, and needs the model version after this binary's
    /// ([`crate::PROBE_MODEL_VERSION`]): the gate's self-test, refused until
    /// every node supports that version.
    Probe { note: String },
}

/// The system domain.
pub struct System;

impl Domain for System {
    const NAME: &'static str = "system";
    type Command = Command;
    type Outcome = ();

    fn command_name(command: &Command) -> &'static str {
        match command {
            Command::PutSettings(_) => "system.put_settings",
            Command::PutNode(_) => "system.put_node",
            Command::SetNodeState { .. } => "system.set_node_state",
            Command::PutLayout(_) => "system.put_layout",
            Command::MarkLayoutSynced { .. } => "system.mark_layout_synced",
            Command::RaiseModelVersion { .. } => "system.raise_model_version",
            Command::Probe { .. } => "system.probe",
        }
    }

    fn apply(tx: &mut Tx<'_>, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::PutSettings(settings) => {
                put_json(tx, settings_key(), settings);
                Ok(())
            }
            Command::PutNode(node) => put_node(tx, node),
            Command::SetNodeState { id, state } => set_node_state(tx, *id, *state),
            Command::PutLayout(layout) => put_layout(tx, layout),
            Command::MarkLayoutSynced { version } => mark_layout_synced(tx, *version),
            Command::RaiseModelVersion { version } => raise_model_version(tx, *version),
            Command::Probe { .. } => Ok(()),
        }
    }

    fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
        let reader = Reader::new(store);
        if let Some(layout) = reader.layout().map_err(|error| error.to_string())? {
            if !layout.is_well_formed() {
                return Err(format!("layout {} is malformed", layout.version));
            }
        }
        for node in reader.nodes().map_err(|error| error.to_string())? {
            if store.get(&node_key(node.id)).map_err(|error| error.to_string())?.is_none() {
                return Err(format!("node {} is stored under another id", node.id));
            }
        }
        Ok(())
    }
}

fn put_node(tx: &mut Tx<'_>, node: &NodeRecord) -> Result<(), Refusal> {
    let key = node_key(node.id);
    if let Some(existing) = get_json::<NodeRecord>(tx, &key)? {
        if existing.state == NodeState::Removed {
            return Err(removed(node.id));
        }
    }
    put_json(tx, key, node);
    Ok(())
}

fn set_node_state(tx: &mut Tx<'_>, id: NodeId, state: NodeState) -> Result<(), Refusal> {
    let key = node_key(id);
    let Some(mut node) = get_json::<NodeRecord>(tx, &key)? else {
        let message = format!("node {id} is not in the cluster");
        return Err(Rejection::new(ErrorKind::NotFound, code::NODE_UNKNOWN, message).into());
    };
    if node.state == NodeState::Removed && state != NodeState::Removed {
        return Err(removed(id));
    }
    node.state = state;
    put_json(tx, key, &node);
    Ok(())
}

fn removed(id: NodeId) -> Refusal {
    Rejection::new(ErrorKind::Conflict, code::NODE_REMOVED, format!("node {id} was removed")).into()
}

fn invalid(message: impl Into<String>) -> Refusal {
    Rejection::new(ErrorKind::InvalidArgument, code::INVALID, message).into()
}

fn put_layout(tx: &mut Tx<'_>, layout: &Layout) -> Result<(), Refusal> {
    if !layout.is_well_formed() {
        return Err(invalid("malformed layout"));
    }
    let current = get_json::<Layout>(tx, &layout_key())?.map_or(0, |current| current.version);
    if layout.version != current + 1 {
        return Err(invalid(format!("layout version {} does not follow {current}", layout.version)));
    }
    put_json(tx, layout_key(), layout);
    Ok(())
}

fn mark_layout_synced(tx: &mut Tx<'_>, version: u64) -> Result<(), Refusal> {
    let Some(mut layout) = get_json::<Layout>(tx, &layout_key())? else {
        return Err(invalid("no layout"));
    };
    if layout.version != version {
        return Err(invalid(format!("layout {version} is not current (current: {})", layout.version)));
    }
    layout.previous = None;
    put_json(tx, layout_key(), &layout);
    Ok(())
}

fn raise_model_version(tx: &mut Tx<'_>, version: u32) -> Result<(), Refusal> {
    let active = Reader::new(&*tx as &dyn StateRead).model_version()?;
    if version <= active {
        return Err(invalid(format!("model version {version} is not newer than the active {active}")));
    }
    let nodes = Reader::new(&*tx as &dyn StateRead).nodes()?;
    if let Some(behind) = nodes.iter().find(|node| node.state != NodeState::Removed && node.model_version < version) {
        let message = format!("node {} supports model version {}, not {version}", behind.id, behind.model_version);
        return Err(invalid(message));
    }
    put_json(tx, model_version_key(), &ModelVersion { active: version });
    Ok(())
}

fn settings_key() -> Vec<u8> {
    key(tables::SETTINGS, &[b"cluster"])
}

fn node_key(id: NodeId) -> Vec<u8> {
    key(tables::NODE, &[&id.to_be_bytes()])
}

fn layout_key() -> Vec<u8> {
    key(tables::LAYOUT, &[b"current"])
}

fn model_version_key() -> Vec<u8> {
    key(tables::SETTINGS, &[b"model_version"])
}
