//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use flotilla_model::oci::{Command, PutManifest, StoredManifest};
use flotilla_storage::{Algorithm, Digest};

use super::access::authorize;
use super::convert::{header_value, read_limited};
use super::error::{OciError, OciErrorCode, OciResult};
use super::manifest_parse::parse_manifest;
use super::names::{Reference, RepoName};
use super::OciRequest;
use crate::auth::Action;
use crate::state::AppState;

pub async fn get(state: &AppState, request: &OciRequest, repo: &RepoName, reference: &Reference) -> OciResult {
    authorize(state, request, repo, Action::Read).await?;
    let manifest = find(state, repo, reference).await?;
    let content = manifest.content.content;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, header_value(&manifest.record.media_type))
        .header(header::CONTENT_LENGTH, content.len())
        .header("docker-content-digest", header_value(&manifest.digest.to_string()))
        .header(header::ETAG, header_value(&format!("\"{}\"", manifest.digest)));
    let body = if request.method == Method::HEAD { Body::empty() } else { Body::from(content) };
    builder.body(body).map_err(OciError::internal)
}

/// Resolves a tag (behind a read barrier) or a digest (local first: a present
/// manifest never changes) to the stored manifest.
async fn find(state: &AppState, repo: &RepoName, reference: &Reference) -> OciResult<StoredManifest> {
    let unknown = || OciError::new(OciErrorCode::ManifestUnknown, format!("manifest {reference} unknown to {repo}"));
    match reference {
        Reference::Digest(digest) => {
            if let Some(manifest) = state.meta.local().oci().manifest(repo.as_str(), digest)? {
                return Ok(manifest);
            }
            state.catalog().await?.oci().manifest(repo.as_str(), digest)?.ok_or_else(unknown)
        }
        Reference::Tag(tag) => {
            // One snapshot: a delete between the two reads is a 404, never a tag without its manifest.
            let oci = state.catalog().await?.oci();
            let digest = oci.tag(repo.as_str(), tag)?.ok_or_else(unknown)?;
            oci.manifest(repo.as_str(), &digest)?.ok_or_else(unknown)
        }
    }
}

pub async fn put(
    state: &AppState,
    request: &OciRequest,
    body: Body,
    repo: &RepoName,
    reference: &Reference,
) -> OciResult {
    authorize(state, request, repo, Action::Write).await?;
    let content_type = request.header("content-type").map(str::to_owned);
    let body = read_limited(body, state.limits.max_manifest_bytes).await?;
    let (digest, tag) = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::compute(expected.algorithm(), &body);
            if &actual != expected {
                let message = format!("manifest hashes to {actual}, not {expected}");
                return Err(OciError::new(OciErrorCode::DigestInvalid, message));
            }
            (actual, None)
        }
        Reference::Tag(tag) => (Digest::compute(Algorithm::Sha256, &body), Some(tag.clone())),
    };
    let parsed = parse_manifest(&body, content_type.as_deref())
        .map_err(|reason| OciError::new(OciErrorCode::ManifestInvalid, reason))?;
    let content = String::from_utf8(body.to_vec())
        .map_err(|_| OciError::new(OciErrorCode::ManifestInvalid, "manifest is not UTF-8"))?;
    let subject = parsed.subject.clone();
    let command = Command::PutManifest(Box::new(PutManifest {
        repo: repo.to_string(),
        digest: digest.clone(),
        media_type: parsed.media_type,
        content,
        tag,
        blobs: parsed.blobs,
        manifests: parsed.manifests,
        subject: parsed.subject,
        artifact_type: parsed.artifact_type,
        annotations: parsed.annotations,
    }));
    state.meta.write(command).await?;
    let mut response = (
        StatusCode::CREATED,
        [
            (header::LOCATION, header_value(&format!("/v2/{repo}/manifests/{digest}"))),
            (header::HeaderName::from_static("docker-content-digest"), header_value(&digest.to_string())),
            (header::CONTENT_LENGTH, header_value("0")),
        ],
    )
        .into_response();
    if let Some(subject) = subject {
        response.headers_mut().insert("oci-subject", header_value(&subject.to_string()));
    }
    Ok(response)
}

/// A manifest route whose reference is neither a tag nor a digest, authorized
/// as a valid one would be: GET, HEAD and DELETE answer 404 `MANIFEST_UNKNOWN`
/// (no manifest has such a name; the conformance suite's "nonexistent
/// manifest" is `.INVALID_MANIFEST_NAME`), PUT 400 `MANIFEST_INVALID`.
pub async fn invalid_reference(state: &AppState, request: &OciRequest, repo: &RepoName) -> OciResult {
    let action = match request.method {
        Method::PUT => Action::Write,
        Method::DELETE => Action::Delete,
        _ => Action::Read,
    };
    authorize(state, request, repo, action).await?;
    Err(match action {
        Action::Write => OciError::new(OciErrorCode::ManifestInvalid, "invalid tag or digest"),
        Action::Read | Action::Delete => {
            OciError::new(OciErrorCode::ManifestUnknown, format!("manifest unknown to {repo}: invalid tag or digest"))
        }
    })
}

pub async fn delete(state: &AppState, request: &OciRequest, repo: &RepoName, reference: &Reference) -> OciResult {
    authorize(state, request, repo, Action::Delete).await?;
    let command = match reference {
        Reference::Digest(digest) => Command::DeleteManifest { repo: repo.to_string(), digest: digest.clone() },
        Reference::Tag(tag) => Command::DeleteTag { repo: repo.to_string(), tag: tag.clone() },
    };
    state.meta.write(command).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
