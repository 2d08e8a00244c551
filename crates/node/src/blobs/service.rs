//! The gRPC `BlobService`: other nodes store blobs here, read them, ask this
//! node to push its share of a new layout, and (the leader's task runner) ask
//! it to repair, scrub or drop orphan copies. Every write goes through the
//! local store, which verifies the digest while streaming and fsyncs before
//! the rename, so a blob acknowledged here is durable and correct.

use std::sync::Arc;

use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use flotilla_storage::blob_store::{BlobError, BlobStore, ByteStream};
use flotilla_storage::fs::FsBlobStore;
use flotilla_storage::{ByteRange, Digest};

use super::maintain::{MaintainError, Maintainer};
use super::peer::{rechunk, STREAM_IDLE_TIMEOUT};
use super::sync::push_moved_blobs;
use crate::proto::blobs::blob_service_server::{BlobService, BlobServiceServer};
use crate::proto::blobs::{
    Chunk, GetRequest, MaintainReply, MaintainRequest, Maintenance, PutChunk, PutReply, StatReply, StatRequest,
    SyncReply, SyncRequest,
};

/// The blob service of this node over its local store.
pub fn blob_service(node: Maintainer) -> BlobServiceServer<BlobRpc> {
    BlobServiceServer::new(BlobRpc { local: node.local.clone(), node })
}

/// Serves `BlobService` from the local store.
pub struct BlobRpc {
    local: Arc<FsBlobStore>,
    node: Maintainer,
}

type ChunkStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Chunk, Status>> + Send>>;

#[tonic::async_trait]
impl BlobService for BlobRpc {
    async fn put(&self, request: Request<Streaming<PutChunk>>) -> Result<Response<PutReply>, Status> {
        let mut stream = request.into_inner();
        let first = next_chunk(&mut stream).await?.ok_or_else(|| Status::invalid_argument("empty put"))?;
        let digest = parse_digest(&first.digest)?;
        let leading = first.data;
        let rest = tokio_stream::StreamExt::timeout(stream, STREAM_IDLE_TIMEOUT).map(|item| match item {
            Ok(Ok(chunk)) => Ok(chunk.data),
            Ok(Err(status)) => Err(std::io::Error::other(status.message().to_owned())),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "sender stalled")),
        });
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(leading) }).chain(rest));
        let size = self.local.put(&digest, body).await.map_err(blob_status)?;
        Ok(Response::new(PutReply { size }))
    }

    type GetStream = ChunkStream;

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<ChunkStream>, Status> {
        let request = request.into_inner();
        let digest = parse_digest(&request.digest)?;
        let range = match (request.start, request.end) {
            (Some(start), Some(end)) if start <= end => Some(ByteRange { start, end }),
            (None, None) => None,
            _ => return Err(Status::invalid_argument("a range needs start <= end")),
        };
        let stream = self.local.read(&digest, range).await.map_err(blob_status)?;
        let chunks = stream.flat_map(|item| match item {
            Ok(data) => futures::stream::iter(rechunk(data).map(|data| Ok(Chunk { data })).collect::<Vec<_>>()),
            Err(error) => futures::stream::iter(vec![Err(Status::internal(error.to_string()))]),
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn stat(&self, request: Request<StatRequest>) -> Result<Response<StatReply>, Status> {
        let digest = parse_digest(&request.into_inner().digest)?;
        let size = self.local.stat(&digest).await.map_err(blob_status)?;
        Ok(Response::new(StatReply { present: size.is_some(), size: size.unwrap_or(0) }))
    }

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<SyncReply>, Status> {
        let version = request.into_inner().version;
        let view = &self.node.view;
        let layout = view.layout().filter(|layout| layout.version == version).ok_or_else(|| {
            Status::failed_precondition(format!("layout {version} is not applied on node {}", view.node_id()))
        })?;
        let pushed = push_moved_blobs(&self.node, &layout).await.map_err(blob_status)?;
        Ok(Response::new(SyncReply { blobs_copied: pushed.blobs, bytes_copied: pushed.bytes }))
    }

    async fn maintain(&self, request: Request<MaintainRequest>) -> Result<Response<MaintainReply>, Status> {
        let request = request.into_inner();
        let dry_run = request.dry_run;
        let counters = match Maintenance::try_from(request.kind) {
            Ok(Maintenance::Repair) => self.node.repair(dry_run).await,
            Ok(Maintenance::Scrub) => self.node.scrub(dry_run).await,
            Ok(Maintenance::DropOrphans) => self.node.drop_orphans(dry_run).await,
            Ok(Maintenance::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!("unknown maintenance kind {}", request.kind)))
            }
        }
        .map_err(|error| match error {
            MaintainError::NotReady(message) => Status::failed_precondition(message),
            MaintainError::Blob(error) => blob_status(error),
            MaintainError::Meta(message) => Status::unavailable(message),
        })?;
        Ok(Response::new(MaintainReply {
            scanned: counters.scanned,
            blobs: counters.blobs,
            bytes: counters.bytes,
            failed: counters.failed,
        }))
    }
}

async fn next_chunk(stream: &mut Streaming<PutChunk>) -> Result<Option<PutChunk>, Status> {
    tokio::time::timeout(STREAM_IDLE_TIMEOUT, stream.message())
        .await
        .map_err(|_| Status::deadline_exceeded("sender stalled"))?
}

fn parse_digest(text: &str) -> Result<Digest, Status> {
    Digest::parse(text).map_err(|error| Status::invalid_argument(format!("digest {text:?}: {error}")))
}

/// Maps a local store error to the status the caller maps back.
fn blob_status(error: BlobError) -> Status {
    match error {
        BlobError::NotFound => Status::not_found("blob not found"),
        BlobError::RangeNotSatisfiable { size } => Status::out_of_range(format!("blob has {size} bytes")),
        error @ (BlobError::DigestMismatch { .. } | BlobError::SizeMismatch { .. } | BlobError::TooLarge { .. }) => {
            Status::invalid_argument(error.to_string())
        }
        error => Status::internal(error.to_string()),
    }
}
