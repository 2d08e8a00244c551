//! # flotilla-raft
//!
//! The replicated metadata service: consensus only. Every write is a
//! [`flotilla_model::Request`] committed through Raft (openraft 0.9,
//! `storage-v2`) and applied by the model's pure `apply` into RocksDB; every
//! read is a [`flotilla_model::Catalog`] query on the local replica, fenced
//! by [`MetaClient`] when it must be linearizable.
//!
//! ```text
//!  handler ──MetaClient::write(cmd)──▶ leader? ──yes──▶ raft.client_write
//!                                        │                     │ append (one synced batch)
//!                                        no                    ▼
//!                                        │ gRPC Forward   replicate to a quorum
//!                                        ▼                     │ commit
//!                                  leader's raft ◀─────────────┘
//!                                        │ flotilla_model::apply(request) — pure, checks preconditions
//!                                        ▼
//!                             RocksDB column family `sm`  ◀── Catalog reads
//! ```
//!
//! This crate never imports axum or anything HTTP.

// openraft's own trait signatures return its large `StorageError`; boxing it
// in our helpers would only add conversions at every call.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod clock;
pub mod election;
pub mod lease;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use client::{MetaClient, MetaError, WriteError};
pub use types::{NodeAddr, NodeId, TypeConfig};
