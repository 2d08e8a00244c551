//! # flotilla-raft
//!
//! The replicated metadata service. Every write is a [`command::Request`]
//! committed through Raft (openraft 0.9, `storage-v2`) and applied by a pure
//! state machine into RocksDB; every read is a [`catalog::Catalog`] query on
//! the local replica.
//!
//! ```text
//!  handler ──MetaClient::write(cmd)──▶ leader? ──yes──▶ raft.client_write
//!                                        │                     │ append (one synced batch)
//!                                        no                    ▼
//!                                        │ gRPC Forward   replicate to a quorum
//!                                        ▼                     │ commit
//!                                  leader's raft ◀─────────────┘
//!                                        │ apply(request) — pure, checks preconditions
//!                                        ▼
//!                             RocksDB column family `sm`  ◀── Catalog reads
//! ```
//!
//! This crate never imports axum or anything HTTP.

// openraft's own trait signatures return its large `StorageError`; boxing it
// in our helpers would only add conversions at every call.
#![allow(clippy::result_large_err)]

pub mod catalog;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod election;
pub mod lease;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod task;
pub mod types;

pub use catalog::{Catalog, StoredManifest};
pub use client::{MetaClient, MetaError};
pub use cluster::{Layout, NodeRecord, NodeState};
pub use command::{Command, Request, RequestId, Response};
pub use types::{NodeAddr, NodeId, TypeConfig};
