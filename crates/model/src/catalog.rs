//! `Catalog`: the read side of the replicated state, one reader per domain.
//!
//! Each accessor (`catalog.oci()`, `catalog.tasks()`…) reads one
//! point-in-time snapshot, so a query that reads several keys (a manifest's
//! record and its bytes, a tombstone and its epoch) never sees half of a
//! command. [`Catalog::view`] shares one snapshot between domains.
//!
//! Whether a read is linearizable is the caller's choice, made before it
//! reads (the metadata client's read barrier); the catalog reads the local replica.

use std::sync::Arc;

use crate::store::{StateRead, StateSource};
use crate::{blobs, identity, oci, system, tasks};

/// The most entries one list call returns, whatever the client asks for.
pub const MAX_PAGE: usize = 10_000;

/// Read-only queries over the local replica.
#[derive(Clone)]
pub struct Catalog {
    source: Arc<dyn StateSource>,
}

impl Catalog {
    pub fn new(source: Arc<dyn StateSource>) -> Self {
        Catalog { source }
    }

    /// One snapshot for several readers.
    pub fn view(&self) -> CatalogView<'_> {
        CatalogView { snapshot: self.source.snapshot() }
    }

    pub fn system(&self) -> system::Reader<'_> {
        system::Reader::new(self.source.snapshot())
    }

    pub fn identity(&self) -> identity::Reader<'_> {
        identity::Reader::new(self.source.snapshot())
    }

    pub fn blobs(&self) -> blobs::Reader<'_> {
        blobs::Reader::new(self.source.snapshot())
    }

    pub fn tasks(&self) -> tasks::Reader<'_> {
        tasks::Reader::new(self.source.snapshot())
    }

    pub fn oci(&self) -> oci::Reader<'_> {
        oci::Reader::new(self.source.snapshot())
    }
}

/// One point-in-time snapshot read through any domain's reader.
pub struct CatalogView<'c> {
    snapshot: Box<dyn StateRead + 'c>,
}

impl CatalogView<'_> {
    pub fn system(&self) -> system::Reader<'_> {
        system::Reader::new(&*self.snapshot)
    }

    pub fn identity(&self) -> identity::Reader<'_> {
        identity::Reader::new(&*self.snapshot)
    }

    pub fn blobs(&self) -> blobs::Reader<'_> {
        blobs::Reader::new(&*self.snapshot)
    }

    pub fn tasks(&self) -> tasks::Reader<'_> {
        tasks::Reader::new(&*self.snapshot)
    }

    pub fn oci(&self) -> oci::Reader<'_> {
        oci::Reader::new(&*self.snapshot)
    }
}
