//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic with
//! `?digest=`, or cross-repository `?mount=&from=`), then `PATCH` chunks,
//! `PUT ?digest=` to finish, `GET` for status, `DELETE` to cancel.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use flotilla_model::oci::Command;
use flotilla_raft::client::now_ms;
use flotilla_raft::WriteError;
use flotilla_storage::upload::{UploadId, UploadSession};
use flotilla_storage::Digest;

use super::access::authorize;
use super::convert::{blob_error, body_stream, header_value, limit_stream, upload_range};
use super::error::{OciError, OciErrorCode, OciResult};
use super::names::RepoName;
use super::ranges::parse_content_range;
use super::OciRequest;
use crate::auth::Action;
use crate::state::AppState;

pub async fn start(state: &AppState, request: &OciRequest, body: Body, repo: &RepoName) -> OciResult {
    authorize(state, request, repo, Action::Write).await?;
    if let (Some(mount), Some(from)) = (request.query("mount"), request.query("from")) {
        if let Some(response) = try_mount(state, request, repo, &mount, &from).await? {
            return Ok(response);
        }
    }
    if let Some(digest) = request.query("digest") {
        let digest = parse_digest(&digest)?;
        return monolithic(state, body, repo, &digest).await;
    }
    let session = state
        .uploads
        .create(repo.as_str(), now_ms())
        .await
        .map_err(|e| blob_error(e, OciErrorCode::BlobUploadUnknown))?;
    Ok(session_response(StatusCode::ACCEPTED, repo, &session))
}

/// Links `mount` from `from` into `repo` when the caller may read `from` and it
/// holds the blob; otherwise the caller gets an ordinary session (spec: 202).
async fn try_mount(
    state: &AppState,
    request: &OciRequest,
    repo: &RepoName,
    mount: &str,
    from: &str,
) -> OciResult<Option<Response>> {
    let (Ok(digest), Some(from)) = (Digest::parse(mount), RepoName::parse(from)) else {
        return Ok(None);
    };
    if authorize(state, request, &from, Action::Read).await.is_err() {
        return Ok(None);
    }
    let command = Command::MountBlob { from: from.to_string(), repo: repo.to_string(), digest: digest.clone() };
    match state.meta.write(command).await {
        Ok(_) => Ok(Some(blob_created(repo, &digest))),
        Err(WriteError::Rejected(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn monolithic(state: &AppState, body: Body, repo: &RepoName, digest: &Digest) -> OciResult {
    let body = limit_stream(body_stream(body), state.limits.max_blob_bytes);
    let gc_epoch = state.meta.local().blobs().gc_state()?.epoch;
    let size = state.blobs.put(digest, body).await.map_err(|e| blob_error(e, OciErrorCode::BlobUploadInvalid))?;
    record_blob(state, repo, digest, size, gc_epoch).await
}

/// Records a blob whose bytes were stored after garbage-collection epoch `gc_epoch` was applied here.
async fn record_blob(state: &AppState, repo: &RepoName, digest: &Digest, size: u64, gc_epoch: u64) -> OciResult {
    let command = Command::PutBlob { repo: repo.to_string(), digest: digest.clone(), size, gc_epoch };
    state.meta.write(command).await?;
    Ok(blob_created(repo, digest))
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    let location = format!("/v2/{repo}/blobs/{digest}");
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, header_value(&location)),
            (header::HeaderName::from_static("docker-content-digest"), header_value(&digest.to_string())),
            (header::CONTENT_LENGTH, header_value("0")),
        ],
    )
        .into_response()
}

pub async fn status(state: &AppState, request: &OciRequest, repo: &RepoName, id: &str) -> OciResult {
    authorize(state, request, repo, Action::Write).await?;
    let session = session_of(state, repo, id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, repo, &session))
}

pub async fn patch(state: &AppState, request: &OciRequest, body: Body, repo: &RepoName, id: &str) -> OciResult {
    authorize(state, request, repo, Action::Write).await?;
    let session = session_of(state, repo, id).await?;
    let expected_start = match request.header("content-range") {
        Some(value) => {
            let (start, end) =
                parse_content_range(value).ok_or_else(|| range_error(&session, "malformed Content-Range"))?;
            let declared = request.header("content-length").and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length != end - start + 1) {
                return Err(range_error(&session, "Content-Range and Content-Length disagree"));
            }
            Some(start)
        }
        None => None,
    };
    let body = body_stream(body);
    let session = state
        .uploads
        .append(session.id, expected_start, body, state.limits.max_blob_bytes)
        .await
        .map_err(|e| with_location(blob_error(e, OciErrorCode::BlobUploadUnknown), repo, &session))?;
    Ok(session_response(StatusCode::ACCEPTED, repo, &session))
}

pub async fn finish(state: &AppState, request: &OciRequest, body: Body, repo: &RepoName, id: &str) -> OciResult {
    authorize(state, request, repo, Action::Write).await?;
    let session = session_of(state, repo, id).await?;
    let digest = parse_digest(
        &request
            .query("digest")
            .ok_or_else(|| OciError::new(OciErrorCode::DigestInvalid, "digest parameter missing"))?,
    )?;
    let has_body = request.header("content-length").is_none_or(|length| length != "0");
    if has_body {
        let body = body_stream(body);
        state
            .uploads
            .append(session.id, None, body, state.limits.max_blob_bytes)
            .await
            .map_err(|e| blob_error(e, OciErrorCode::BlobUploadUnknown))?;
    }
    let gc_epoch = state.meta.local().blobs().gc_state()?.epoch;
    let size = state
        .uploads
        .finish(session.id, &digest, &*state.blobs)
        .await
        .map_err(|e| blob_error(e, OciErrorCode::BlobUploadUnknown))?;
    record_blob(state, repo, &digest, size, gc_epoch).await
}

pub async fn cancel(state: &AppState, request: &OciRequest, repo: &RepoName, id: &str) -> OciResult {
    authorize(state, request, repo, Action::Write).await?;
    let session = session_of(state, repo, id).await?;
    state.uploads.cancel(session.id).await.map_err(|e| blob_error(e, OciErrorCode::BlobUploadUnknown))?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// The session `id` of `repo`; any other id is `BLOB_UPLOAD_UNKNOWN`.
async fn session_of(state: &AppState, repo: &RepoName, id: &str) -> OciResult<UploadSession> {
    let unknown = || OciError::new(OciErrorCode::BlobUploadUnknown, "upload unknown");
    let id: UploadId = id.parse().map_err(|_| unknown())?;
    let session = state.uploads.get(id).await.map_err(|_| unknown())?;
    if session.repo != repo.as_str() {
        return Err(unknown());
    }
    Ok(session)
}

fn session_response(status: StatusCode, repo: &RepoName, session: &UploadSession) -> Response {
    (
        status,
        [
            (header::LOCATION, header_value(&session_location(repo, session))),
            (header::RANGE, header_value(&upload_range(session.offset))),
            (header::HeaderName::from_static("docker-upload-uuid"), header_value(&session.id.to_string())),
            (header::CONTENT_LENGTH, header_value("0")),
        ],
    )
        .into_response()
}

fn session_location(repo: &RepoName, session: &UploadSession) -> String {
    format!("/v2/{repo}/blobs/uploads/{}", session.id)
}

fn range_error(session: &UploadSession, message: &str) -> OciError {
    OciError::new(OciErrorCode::RangeInvalid, message.to_owned())
        .with_header(header::RANGE, header_value(&upload_range(session.offset)))
}

fn with_location(error: OciError, repo: &RepoName, session: &UploadSession) -> OciError {
    error.with_header(header::LOCATION, header_value(&session_location(repo, session)))
}

fn parse_digest(text: &str) -> OciResult<Digest> {
    Digest::parse(text).map_err(|error| OciError::new(OciErrorCode::DigestInvalid, error.to_string()))
}
