//! `GET /v2/<name>/referrers/<digest>?artifactType=`: an image index of the
//! manifests whose `subject` is the digest (which need not exist).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use flotilla_model::oci::StoredManifest;
use flotilla_model::MAX_PAGE;
use flotilla_storage::Digest;

use super::access::authorize;
use super::error::OciResult;
use super::manifest_parse::OCI_INDEX;
use super::names::RepoName;
use super::OciRequest;
use crate::auth::Action;
use crate::state::AppState;

pub async fn list(state: &AppState, request: &OciRequest, repo: &RepoName, subject: &Digest) -> OciResult {
    authorize(state, request, repo, Action::Read).await?;
    let filter = request.query("artifactType").filter(|t| !t.is_empty());
    let referrers = state.catalog().await?.oci().referrers(repo.as_str(), subject, MAX_PAGE)?;
    let descriptors: Vec<Value> =
        referrers.iter().filter(|m| filter.is_none() || m.record.artifact_type == filter).map(descriptor).collect();
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors});
    let mut response: Response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        response.headers_mut().insert("oci-filters-applied", header::HeaderValue::from_static("artifactType"));
    }
    Ok(response)
}

fn descriptor(manifest: &StoredManifest) -> Value {
    let mut descriptor = json!({
        "mediaType": manifest.record.media_type,
        "digest": manifest.digest.to_string(),
        "size": manifest.record.size,
    });
    if let Some(artifact_type) = &manifest.record.artifact_type {
        descriptor["artifactType"] = json!(artifact_type);
    }
    if !manifest.record.annotations.is_empty() {
        descriptor["annotations"] = json!(manifest.record.annotations);
    }
    descriptor
}
