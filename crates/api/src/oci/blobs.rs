//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use flotilla_model::oci::Command;
use flotilla_storage::blob_store::BlobError;
use flotilla_storage::{ByteRange, Digest};

use super::access::authorize;
use super::convert::{blob_error, header_value};
use super::error::{OciError, OciErrorCode, OciResult};
use super::names::RepoName;
use super::ranges::{parse_range, RangeRequest};
use super::OciRequest;
use crate::auth::Action;
use crate::sendfile;
use crate::state::AppState;

/// Serves a blob linked in `repo`, whole or one byte range.
pub async fn get(state: &AppState, request: &OciRequest, repo: &RepoName, digest: &Digest) -> OciResult {
    authorize(state, request, repo, Action::Read).await?;
    let size = linked_size(state, repo, digest).await?;
    let range = match request.header("range") {
        Some(value) => parse_range(value, size),
        None => RangeRequest::Whole,
    };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("docker-content-digest", header_value(&digest.to_string()))
        .header(header::ETAG, header_value(&format!("\"{digest}\"")))
        .header(header::ACCEPT_RANGES, "bytes");
    let (status, byte_range, length) = match range {
        RangeRequest::Whole => (StatusCode::OK, None, size),
        RangeRequest::Partial(byte_range) => {
            let content_range = format!("bytes {}-{}/{size}", byte_range.start, byte_range.end);
            builder = builder.header(header::CONTENT_RANGE, header_value(&content_range));
            (StatusCode::PARTIAL_CONTENT, Some(byte_range), byte_range.len())
        }
        RangeRequest::Unsatisfiable => {
            return Err(blob_error(BlobError::RangeNotSatisfiable { size }, OciErrorCode::BlobUnknown));
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, length);
    let body = if request.method == Method::HEAD {
        Body::empty()
    } else {
        blob_body(state, request, digest, byte_range).await.map_err(|e| blob_error(e, OciErrorCode::BlobUnknown))?
    };
    builder.body(body).map_err(OciError::internal)
}

/// The blob's bytes: sent from this node's own file with `sendfile` when the
/// connection can, streamed otherwise (from another node when none is here).
async fn blob_body(
    state: &AppState,
    request: &OciRequest,
    digest: &Digest,
    range: Option<ByteRange>,
) -> Result<Body, BlobError> {
    if let Some(sender) = &request.sendfile {
        if let Some(region) = state.blobs.open_region(digest, range).await? {
            return Ok(sendfile::file_body(sender.clone(), region));
        }
    }
    Ok(Body::from_stream(state.blobs.read(digest, range).await?))
}

/// The size of a blob linked in `repo`, 404 `BLOB_UNKNOWN` otherwise. Blobs
/// are immutable, so a local hit needs no read barrier; a miss re-checks
/// after one (the link may have just been committed elsewhere).
async fn linked_size(state: &AppState, repo: &RepoName, digest: &Digest) -> OciResult<u64> {
    if let Some(size) = state.meta.local().oci().linked_blob(repo.as_str(), digest)? {
        return Ok(size);
    }
    state
        .catalog()
        .await?
        .oci()
        .linked_blob(repo.as_str(), digest)?
        .ok_or_else(|| OciError::new(OciErrorCode::BlobUnknown, format!("blob {digest} unknown to {repo}")))
}

/// Unlinks a blob from `repo`; the bytes go at the next garbage collection.
pub async fn delete(state: &AppState, request: &OciRequest, repo: &RepoName, digest: &Digest) -> OciResult {
    authorize(state, request, repo, Action::Delete).await?;
    let command = Command::UnlinkBlob { repo: repo.to_string(), digest: digest.clone() };
    state.meta.write(command).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
