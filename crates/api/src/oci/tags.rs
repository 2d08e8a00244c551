//! `GET /v2/<name>/tags/list?n=&last=`, paginated with `Link`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::access::authorize;
use super::convert::header_value;
use super::error::{OciError, OciErrorCode, OciResult};
use super::names::RepoName;
use super::OciRequest;
use crate::auth::Action;
use crate::state::AppState;

/// Page size when the client gives no `n`.
pub const DEFAULT_PAGE: usize = 1000;

pub async fn list(state: &AppState, request: &OciRequest, repo: &RepoName) -> OciResult {
    authorize(state, request, repo, Action::Read).await?;
    let page = Page::from_request(request)?;
    let oci = state.catalog().await?.oci();
    if !oci.repo_exists(repo.as_str())? {
        return Err(OciError::new(OciErrorCode::NameUnknown, format!("repository {repo} unknown")));
    }
    let mut tags = oci.tags(repo.as_str(), page.last.as_deref(), page.n.saturating_add(1))?;
    let more = tags.len() > page.n;
    tags.truncate(page.n);
    let link = (more && !tags.is_empty()).then(|| next_link(&format!("/v2/{repo}/tags/list"), page.n, tags.last()));
    Ok(paged_json(json!({"name": repo.as_str(), "tags": tags}), link))
}

/// `n` and `last` of a paginated list.
pub struct Page {
    pub n: usize,
    pub last: Option<String>,
}

impl Page {
    pub fn from_request(request: &OciRequest) -> OciResult<Self> {
        let n = match request.query("n") {
            Some(text) => text.parse::<usize>().map_err(|_| {
                OciError::new(OciErrorCode::Unsupported, "n must be a non-negative integer")
                    .with_status(StatusCode::BAD_REQUEST)
            })?,
            None => DEFAULT_PAGE,
        };
        let n = n.min(flotilla_model::MAX_PAGE);
        Ok(Page { n, last: request.query("last").filter(|last| !last.is_empty()) })
    }
}

/// `Link: <path?n=..&last=..>; rel="next"`.
pub fn next_link(path: &str, n: usize, last: Option<&String>) -> String {
    let last = last.map(|l| l.replace('/', "%2F")).unwrap_or_default();
    format!("<{path}?n={n}&last={last}>; rel=\"next\"")
}

pub fn paged_json(body: serde_json::Value, link: Option<String>) -> Response {
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, header_value(&link));
    }
    response
}
