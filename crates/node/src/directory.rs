//! The user directory the authenticator reads: the replicated state.

use flotilla_api::auth::UserDirectory;
use flotilla_raft::command::UserRecord;
use flotilla_raft::Catalog;

/// Users and the token secret, read from the local replica.
pub struct CatalogDirectory {
    catalog: Catalog,
}

impl CatalogDirectory {
    pub fn new(catalog: Catalog) -> Self {
        CatalogDirectory { catalog }
    }
}

impl UserDirectory for CatalogDirectory {
    fn user(&self, name: &str) -> Option<UserRecord> {
        self.catalog.user(name).unwrap_or_else(|error| {
            tracing::error!(%error, "reading user failed");
            None
        })
    }

    fn token_secret(&self) -> Option<Vec<u8>> {
        let settings = self.catalog.settings().ok().flatten()?;
        (0..settings.token_secret.len())
            .step_by(2)
            .map(|i| settings.token_secret.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect()
    }
}
