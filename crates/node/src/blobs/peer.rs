//! Calls to other nodes' `BlobService`: one lazily connected channel per
//! address, a deadline on every unary call and an idle limit on streams (a
//! multi-gigabyte transfer has no total deadline, but a stalled one ends).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tonic::transport::Channel;
use tonic::Code;

use flotilla_raft::network::client::endpoint;
use flotilla_storage::blob_store::{BlobError, ByteStream};
use flotilla_storage::{ByteRange, Digest};

use crate::proto::blobs::blob_service_client::BlobServiceClient;
use crate::proto::blobs::{
    GetRequest, MaintainReply, MaintainRequest, Maintenance, PutChunk, StatRequest, SyncReply, SyncRequest,
};

/// Deadline of a stat.
const STAT_TIMEOUT: Duration = Duration::from_secs(3);
/// A transfer that moves no bytes for this long is abandoned.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline of a layout sync on one node (it may copy a lot).
const SYNC_TIMEOUT: Duration = Duration::from_secs(3600);
/// Messages queued between the body and a `Put` call.
const PUT_QUEUE_MESSAGES: usize = 8;
/// gRPC messages stay well under tonic's 4 MiB default.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Clients of the other nodes' blob services, shared by clones.
#[derive(Clone, Default)]
pub struct BlobPeers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl BlobPeers {
    fn client(&self, addr: &str) -> Result<BlobServiceClient<Channel>, BlobError> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(addr) {
            return Ok(BlobServiceClient::new(channel.clone()));
        }
        let channel = endpoint(addr)
            .map_err(|error| BlobError::Io(std::io::Error::other(format!("peer address {addr}: {error}"))))?
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(BlobServiceClient::new(channel))
    }

    /// The size of the blob on the peer, `None` if it has no copy.
    pub async fn stat(&self, addr: &str, digest: &Digest) -> Result<Option<u64>, BlobError> {
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(StatRequest { digest: digest.to_string() });
        request.set_timeout(STAT_TIMEOUT);
        let reply = client.stat(request).await.map_err(status_error)?.into_inner();
        Ok(reply.present.then_some(reply.size))
    }

    /// Streams `body` to the peer, which verifies and stores it; its size.
    ///
    /// A small task feeds the messages through a bounded channel: tonic gets a
    /// concrete stream type, which keeps the call's future `Send` for any
    /// caller, and the bound paces reading the body by the peer's speed.
    pub async fn put(&self, addr: &str, digest: &Digest, body: ByteStream) -> Result<u64, BlobError> {
        let mut client = self.client(addr)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(PUT_QUEUE_MESSAGES);
        let feeder = tokio::spawn(feed_put(digest.to_string(), body, sender));
        let reply = client.put(tokio_stream::wrappers::ReceiverStream::new(receiver)).await;
        feeder.abort();
        Ok(reply.map_err(status_error)?.into_inner().size)
    }

    /// Streams the blob (or `range` of it) from the peer.
    pub async fn get(&self, addr: &str, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream, BlobError> {
        let mut client = self.client(addr)?;
        let request = GetRequest {
            digest: digest.to_string(),
            start: range.map(|range| range.start),
            end: range.map(|range| range.end),
        };
        let mut request = tonic::Request::new(request);
        request.set_timeout(STAT_TIMEOUT);
        let stream = client.get(request).await.map_err(status_error)?.into_inner();
        let idle_limited = tokio_stream::StreamExt::timeout(stream, STREAM_IDLE_TIMEOUT);
        Ok(Box::pin(idle_limited.map(|item| match item {
            Ok(Ok(chunk)) => Ok(chunk.data),
            Ok(Err(status)) => Err(std::io::Error::other(status.message().to_owned())),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "peer stalled")),
        })))
    }

    /// Asks the peer to push its share of layout `version` to the new owners.
    pub async fn sync(&self, addr: &str, version: u64) -> Result<SyncReply, BlobError> {
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(SyncRequest { version });
        request.set_timeout(SYNC_TIMEOUT);
        Ok(client.sync(request).await.map_err(status_error)?.into_inner())
    }
}

impl BlobPeers {
    /// Runs maintenance on the peer and waits for it however long it takes
    /// (HTTP/2 keepalive notices a peer that died; dropping the future cancels it).
    pub async fn maintain(&self, addr: &str, kind: Maintenance, dry_run: bool) -> Result<MaintainReply, tonic::Status> {
        let mut client = self.client(addr).map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        Ok(client.maintain(MaintainRequest { kind: kind as i32, dry_run }).await?.into_inner())
    }
}

/// Sends the messages of a `Put`: the first names the blob (and carries no
/// bytes, so an empty blob still sends one), the rest carry the body in
/// chunks of at most [`CHUNK_BYTES`]. A failing body ends the stream early;
/// the peer then sees a short blob and refuses it, and the caller reports the
/// body's own error.
async fn feed_put(digest: String, mut body: ByteStream, sender: tokio::sync::mpsc::Sender<PutChunk>) {
    if sender.send(PutChunk { digest, data: Bytes::new() }).await.is_err() {
        return;
    }
    while let Some(Ok(data)) = body.next().await {
        for data in rechunk(data) {
            if sender.send(PutChunk { digest: String::new(), data }).await.is_err() {
                return;
            }
        }
    }
}

/// Maps a peer's status back to the blob store's errors.
pub fn status_error(status: tonic::Status) -> BlobError {
    match status.code() {
        Code::NotFound => BlobError::NotFound,
        Code::DeadlineExceeded => {
            BlobError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, status.message().to_owned()))
        }
        _ => BlobError::Io(std::io::Error::other(format!("peer: {}: {}", status.code(), status.message()))),
    }
}

/// Splits large chunks so gRPC messages stay under [`CHUNK_BYTES`].
pub fn rechunk(data: Bytes) -> impl Iterator<Item = Bytes> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = rest.len().min(CHUNK_BYTES);
        Some(rest.split_to(take))
    })
}
