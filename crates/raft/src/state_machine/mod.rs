//! The replicated state machine on RocksDB.
//!
//! The state itself, its commands and the pure `apply` are
//! [`flotilla_model`]'s; `rocks` adapts openraft's `RaftStateMachine` onto the
//! RocksDB column family [`flotilla_storage::engine::CF_STATE`], applying each
//! batch of entries as one write batch, with snapshots taken from a
//! point-in-time RocksDB view. The key space is listed in
//! [`flotilla_model::store::tables`].

pub mod rocks;
