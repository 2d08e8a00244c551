//! # flotilla-model
//!
//! What Flotilla replicates and the rules `apply` enforces: one module per
//! domain, each owning its commands, tables, apply functions and reader.
//!
//! ```text
//!  Request { request_id, time_ms, Command::<Domain>(command) }
//!       │ apply (pure: no clock, no randomness, no I/O but the store)
//!       ├─ request id seen before? ──▶ its first Response again
//!       ▼
//!  <Domain>::apply(&mut Tx, command) ─▶ Ok(outcome) ─▶ Response::Applied / Ok
//!       │ preconditions first            Err(Rejection) ─▶ Response::Rejected (nothing written)
//!       ▼
//!  one ordered key space (RocksDB CF `sm` on a node, MemoryState in tests)
//!       ▲
//!  Catalog ─ .system() .identity() .blobs() .tasks() .oci() ─ one snapshot each
//! ```
//!
//! | domain | owns | tables |
//! |---|---|---|
//! | [`system`] | cluster settings, nodes, partition layout | settings, node, layout |
//! | [`identity`] | user accounts and grants | user |
//! | [`blobs`] | the blob index, reference counts, GC tombstones (a kernel other domains call) | blob, tombstone, tombstone_epoch, gc |
//! | [`tasks`] | cluster tasks and their counters (a kernel for batch commands) | task |
//! | [`oci`] | repositories, blob links, manifests, tags, referrers | repo, repo_blob, blob_link, content, repo_manifest, tag, referrer |
//!
//! Table ids are registered once in [`store::tables`]. A domain writes only
//! its own tables and the kernels, and reads other domains through their
//! readers. The Artifactory, schema, projects and images domains will sit
//! beside these.
//!
//! This crate never imports openraft, tonic, axum or tokio: purity by Cargo.

pub mod apply;
pub mod blobs;
pub mod catalog;
pub mod domain;
pub mod identity;
mod legacy;
pub mod oci;
pub mod rejection;
pub mod request;
pub mod store;
pub mod system;
pub mod tasks;

/// The newest model version this binary supports: nodes report it, and the
/// leader makes it the cluster's once every node does (docs/operations.md,
/// rolling upgrades). Raise it with every release that adds a domain or a
/// command, and give those commands this version in `Command::model_version`.
pub const MODEL_VERSION: u32 = 1;
/// The version the gate's self-test command needs: always one past this binary's.
pub const PROBE_MODEL_VERSION: u32 = MODEL_VERSION + 1;

pub use apply::{apply, check_model_version};
pub use catalog::{Catalog, CatalogView, MAX_PAGE};
pub use domain::Domain;
pub use flotilla_storage::ErrorKind;
pub use rejection::Rejection;
pub use request::{Command, Outcome, Request, RequestId, Response};
pub use store::{StateRead, StateSource, StateWrite, StoreError};
pub use system::NodeId;
