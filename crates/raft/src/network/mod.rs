//! The gRPC transport between nodes: Raft's own RPCs (append, vote, snapshot
//! chunks), client writes forwarded to the leader, and read-index requests.
//!
//! ```text
//!   caller (client.rs)                      callee (service.rs)
//!   PeerClient::append_entries ──AppendEntries──▶ raft.append_entries
//!   PeerClient::vote           ──Vote───────────▶ raft.vote
//!   PeerClient::install_snapshot ─InstallSnapshot▶ raft.install_snapshot (one chunk)
//!   rpc_forward                ──Forward────────▶ raft.client_write  (leader only)
//!   ReadIndexLink::ask         ══ReadIndexStream═▶ the leader's shared read-index round
//!   rpc_read_index             ──ReadIndex──────▶   (the same, one call; for peers without the stream)
//! ```
//! Every message is one `bytes` field holding serde_json of the Rust types on
//! both sides (openraft's requests and `Result`s, Flotilla's `Request`), so the
//! proto stays small; the generated protobuf types never leave this module.
//!
//! Every call names the sender's cluster ([`cluster_id`]), and a node refuses
//! calls of another cluster. [`tls`] makes every inter-node connection mutual TLS under a cluster CA
//! when the operator configures it ([`client::set_tls`] for the client side).

pub mod client;
pub mod cluster_id;
pub mod service;
pub mod tls;

use serde::{Deserialize, Serialize};

use crate::types::{NodeAddr, NodeId};

/// Generated protobuf types and service stubs.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("flotilla.raft.v1");
}

/// Largest RPC message sent or accepted: an append batch may carry several
/// large manifests; snapshot chunks are 3 MiB by default.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Why a forwarded write or read-index request did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// The receiving node is not the leader; it names the leader it knows, so
    /// the caller can retry there.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, NodeAddr)> },
    /// The call did not reach a node that could answer (no quorum, transport
    /// failure, timeout); retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The receiving node cannot serve any more (storage failure, shutdown).
    #[error("fatal: {0}")]
    Fatal(String),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    serde_json::to_vec(value).map_err(|error| tonic::Status::internal(format!("encode: {error}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    serde_json::from_slice(bytes).map_err(|error| tonic::Status::invalid_argument(format!("decode: {error}")))
}
