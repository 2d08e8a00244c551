//! Every Raft RPC names the sender's cluster, and a node refuses RPCs of
//! another cluster.
//!
//! Membership records peers by address. If an address is reused (a removed
//! node's IP handed to a node of another cluster, a mistyped peer in a test
//! rig), a leader would otherwise send its log to a stranger, which would
//! accept it if the term is high enough and mix two clusters' metadata. The
//! sender puts its cluster id in the `x-flotilla-cluster-id` metadata of every
//! call; the receiver compares it with its own and answers
//! `PERMISSION_DENIED` on a mismatch. A node that does not know its cluster id
//! yet (a new node still catching up) neither sends nor checks it; the join
//! handshake has checked the id already.

use std::sync::OnceLock;

use tonic::metadata::MetadataValue;
use tonic::Status;

/// The gRPC metadata key naming the sender's cluster.
pub const METADATA_KEY: &str = "x-flotilla-cluster-id";

static CLUSTER_ID: OnceLock<String> = OnceLock::new();

/// Records this process's cluster id, once known; a second call is ignored.
pub fn set(id: &str) {
    let _ = CLUSTER_ID.set(id.to_owned());
}

/// This process's cluster id, once known.
pub fn get() -> Option<&'static str> {
    CLUSTER_ID.get().map(String::as_str)
}

/// Names this node's cluster on an outgoing request.
pub(crate) fn stamp<T>(request: &mut tonic::Request<T>) {
    if let Some(value) = get().and_then(|id| MetadataValue::try_from(id).ok()) {
        request.metadata_mut().insert(METADATA_KEY, value);
    }
}

/// Refuses an incoming request that names another cluster than this node's.
pub(crate) fn check<T>(request: &tonic::Request<T>) -> Result<(), Status> {
    let theirs = request.metadata().get(METADATA_KEY).and_then(|value| value.to_str().ok());
    compare(get(), theirs)
}

/// The decision of [`check`]: only two known, different ids are refused.
fn compare(ours: Option<&str>, theirs: Option<&str>) -> Result<(), Status> {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(Status::permission_denied(format!(
            "this node belongs to cluster {ours}; the request came from cluster {theirs}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_known_different_ids_are_refused() {
        assert!(compare(Some("a"), Some("a")).is_ok());
        assert!(compare(None, Some("a")).is_ok());
        assert!(compare(Some("a"), None).is_ok());
        assert!(compare(None, None).is_ok());
        let refused = compare(Some("a"), Some("b")).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("cluster a") && refused.message().contains("cluster b"));
    }

    #[test]
    fn a_stamped_request_passes_the_check_of_its_own_cluster() {
        set("c0ffee");
        let mut request = tonic::Request::new(());
        stamp(&mut request);
        assert_eq!(request.metadata().get(METADATA_KEY).unwrap(), "c0ffee");
        assert!(check(&request).is_ok());
        let mut foreign = tonic::Request::new(());
        foreign.metadata_mut().insert(METADATA_KEY, MetadataValue::from_static("other"));
        assert_eq!(check(&foreign).unwrap_err().code(), tonic::Code::PermissionDenied);
    }
}
