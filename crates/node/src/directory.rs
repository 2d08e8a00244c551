//! The user directory the authenticator reads: the replicated state.

use std::sync::OnceLock;

use flotilla_api::auth::UserDirectory;
use flotilla_model::identity::{Account, CredentialRecord};
use flotilla_model::{Catalog, StoreError};

/// Accounts, credentials and the token secret, read from the local replica.
pub struct CatalogDirectory {
    catalog: Catalog,
    /// The token secret, decoded once: the cluster settings never change it.
    token_secret: OnceLock<Vec<u8>>,
}

impl CatalogDirectory {
    pub fn new(catalog: Catalog) -> Self {
        CatalogDirectory { catalog, token_secret: OnceLock::new() }
    }
}

impl UserDirectory for CatalogDirectory {
    fn revision(&self) -> Result<u64, StoreError> {
        self.catalog.identity().revision()
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.catalog.identity().account(name)
    }

    fn credential(&self, hash: &[u8; 32]) -> Result<Option<CredentialRecord>, StoreError> {
        self.catalog.identity().credential(hash)
    }

    fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.catalog.identity().token_revoked(jti)
    }

    fn token_secret(&self) -> Option<Vec<u8>> {
        if let Some(secret) = self.token_secret.get() {
            return Some(secret.clone());
        }
        // Not bootstrapped yet is the only silent `None`; a storage error or a
        // corrupt secret is logged, since tokens are then refused everywhere.
        let settings = match self.catalog.system().settings() {
            Ok(settings) => settings?,
            Err(error) => {
                tracing::error!(%error, "reading the token secret failed");
                return None;
            }
        };
        match hex::decode(&settings.token_secret) {
            Ok(secret) if !secret.is_empty() => Some(self.token_secret.get_or_init(|| secret).clone()),
            _ => {
                tracing::error!("the cluster's token secret is not hex; tokens cannot be issued or checked");
                None
            }
        }
    }
}
