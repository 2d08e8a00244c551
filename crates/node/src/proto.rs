//! Generated protobuf types and service stubs of the node's inter-node
//! services (the Raft service lives in `flotilla-raft`). They never leave the
//! `cluster` and `blobs` modules.

/// `proto/cluster.proto`: admitting nodes.
pub mod cluster {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("flotilla.cluster.v1");
}

/// `proto/blobs.proto`: streaming blobs between nodes.
pub mod blobs {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("flotilla.blobs.v1");
}
