//! # flotilla-api
//!
//! Flotilla's REST surfaces. One module per surface (`oci` for the OCI
//! Distribution API on `/v2/`; the Artifactory, Apicurio, projects, images and
//! token surfaces follow), the native cluster API in `cluster`, plus
//! authentication and authorization in `auth`, and `sendfile`, the
//! connections that send stored files to HTTP/1 clients without copying them.
//! Handlers are thin: they parse, authorize, make one service call on
//! [`state::AppState`] and render the surface's own error format.
//!
//! Every failure below the surfaces is one [`error::ServiceError`] (a generic
//! kind, the domain's code, a message) that each surface renders once in its
//! own format.
//!
//! This crate never names openraft, tonic or RocksDB types; it reaches the
//! replicated metadata only through `flotilla_raft::MetaClient` (writes and
//! read barriers) and `flotilla_model::Catalog` (one reader per domain), and
//! blob bytes through `flotilla_storage::blob_store::BlobStore`.

pub mod artifactory;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod oci;
pub mod origin;
pub mod quay;
pub mod sendfile;
pub mod state;
pub mod tasks;

pub use state::{AppState, Limits, ReadConsistency};
