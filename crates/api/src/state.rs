//! `AppState`: the services every handler calls, shared by all surfaces.

use std::sync::Arc;

use flotilla_model::Catalog;
use flotilla_raft::{MetaClient, MetaError};
use flotilla_storage::blob_store::BlobStore;
use flotilla_storage::upload::Uploads;

use crate::auth::Authenticator;
use crate::cluster::SharedClusterAdmin;

/// Limits on what one request may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted (bytes); larger → 413. The spec asks for at least 4 MiB.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted (bytes).
    pub max_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_manifest_bytes: 8 << 20, max_blob_bytes: 1 << 40 }
    }
}

/// How reads are fenced against the replicated log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadConsistency {
    /// Read index from the leader, then read the local replica (default).
    #[default]
    Linearizable,
    /// Read the local replica as it is; may be stale on a lagging follower.
    Local,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub meta: MetaClient,
    pub blobs: Arc<dyn BlobStore>,
    pub uploads: Arc<Uploads>,
    pub auth: Arc<Authenticator>,
    pub limits: Limits,
    pub read_consistency: ReadConsistency,
    /// `service` in token challenges and tokens.
    pub service_name: String,
    /// Cluster facts and operations for `/_cluster`.
    pub cluster: SharedClusterAdmin,
}

impl AppState {
    /// The catalog, fenced as configured.
    pub async fn catalog(&self) -> Result<&Catalog, MetaError> {
        match self.read_consistency {
            ReadConsistency::Linearizable => self.meta.read().await,
            ReadConsistency::Local => Ok(self.meta.local()),
        }
    }
}
