//! The OCI Distribution Spec v1.1 on `/v2/`.
//!
//! One route table ([`route::OciRoute`]) parses the path; `dispatch` pairs it
//! with the method and calls the handler of one resource file.

pub mod access;
pub mod base;
pub mod blobs;
pub mod convert;
pub mod error;
pub mod manifest_parse;
pub mod manifests;
pub mod names;
pub mod ranges;
pub mod referrers;
pub mod repositories;
pub mod route;
pub mod tags;
pub mod uploads;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};

use crate::sendfile::Sender;
use crate::state::AppState;
use error::{OciError, OciErrorCode, OciResult};
use route::{OciRoute, RouteError};

/// The `/v2/` router (the token endpoint included).
pub fn router(state: &AppState) -> Router<AppState> {
    let token = Router::new().route("/v2/token", any(crate::auth::token_endpoint)).with_state(state.auth.clone());
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .merge(token)
}

/// A request as every OCI handler sees it.
pub struct OciRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Set when the response can send stored files with `sendfile`.
    pub sendfile: Option<Sender>,
}

impl OciRequest {
    /// A query parameter (percent-decoded), the first if repeated.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.uri.query()?;
        url_pairs(query).find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// Whether a query parameter is present at all.
    pub fn has_query(&self, name: &str) -> bool {
        self.uri.query().is_some_and(|query| url_pairs(query).any(|(key, _)| key == name))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
        match (byte, hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                index += 3;
            }
            _ => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

async fn dispatch(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<Sender>>>,
    version: Version,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rest = uri.path().strip_prefix("/v2").unwrap_or("").trim_start_matches('/');
    let route = match OciRoute::parse(rest) {
        Ok(route) => route,
        Err(error) => return route_error(error).into_response(),
    };
    let sendfile = Sender::for_request(connection.as_ref().map(|info| &info.0 .0), version);
    let request = OciRequest { method, uri, headers, sendfile };
    match handle(&state, route, request, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(state: &AppState, route: OciRoute, request: OciRequest, body: Body) -> OciResult {
    use Method as M;
    match (&request.method, route) {
        (&M::GET | &M::HEAD, OciRoute::Base) => base::check(state, &request).await,
        (&M::GET, OciRoute::Catalog) => repositories::list(state, &request).await,
        (&M::GET, OciRoute::Tags(repo)) => tags::list(state, &request, &repo).await,
        (&M::GET | &M::HEAD, OciRoute::Manifest(repo, reference)) => {
            manifests::get(state, &request, &repo, &reference).await
        }
        (&M::PUT, OciRoute::Manifest(repo, reference)) => {
            manifests::put(state, &request, body, &repo, &reference).await
        }
        (&M::DELETE, OciRoute::Manifest(repo, reference)) => {
            manifests::delete(state, &request, &repo, &reference).await
        }
        (&M::GET | &M::HEAD | &M::PUT | &M::DELETE, OciRoute::ManifestReferenceInvalid(repo)) => {
            manifests::invalid_reference(state, &request, &repo).await
        }
        (&M::GET | &M::HEAD, OciRoute::Blob(repo, digest)) => blobs::get(state, &request, &repo, &digest).await,
        (&M::DELETE, OciRoute::Blob(repo, digest)) => blobs::delete(state, &request, &repo, &digest).await,
        (&M::POST, OciRoute::UploadStart(repo)) => uploads::start(state, &request, body, &repo).await,
        (&M::GET, OciRoute::Upload(repo, id)) => uploads::status(state, &request, &repo, &id).await,
        (&M::PATCH, OciRoute::Upload(repo, id)) => uploads::patch(state, &request, body, &repo, &id).await,
        (&M::PUT, OciRoute::Upload(repo, id)) => uploads::finish(state, &request, body, &repo, &id).await,
        (&M::DELETE, OciRoute::Upload(repo, id)) => uploads::cancel(state, &request, &repo, &id).await,
        (&M::GET, OciRoute::Referrers(repo, digest)) => referrers::list(state, &request, &repo, &digest).await,
        (method, route) => {
            // Unauthenticated callers are challenged first, as on every other route.
            if let Some(repo) = route.repo() {
                access::authorize(state, &request, repo, crate::auth::Action::Read).await?;
            }
            Err(OciError::new(OciErrorCode::Unsupported, format!("{method} is not supported on {}", route.label())))
        }
    }
}

fn route_error(error: RouteError) -> OciError {
    match error {
        RouteError::NotFound => {
            OciError::new(OciErrorCode::NameUnknown, "no such endpoint").with_status(axum::http::StatusCode::NOT_FOUND)
        }
        RouteError::NameInvalid => OciError::new(OciErrorCode::NameInvalid, "invalid repository name"),
        RouteError::DigestInvalid => OciError::new(OciErrorCode::DigestInvalid, "invalid digest"),
    }
}

/// The metrics label of a `/v2/` path (low cardinality).
pub fn route_label(path: &str) -> &'static str {
    let rest = path.strip_prefix("/v2").unwrap_or("").trim_start_matches('/');
    OciRoute::parse(rest).map(|route| route.label()).unwrap_or("invalid")
}
