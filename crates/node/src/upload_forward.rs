//! Upload sessions follow their origin: a chunked upload's later requests may
//! reach any node (a load balancer spreads them), but the session's bytes and
//! hash state live on the node that started it.
//!
//! Every session id names the node that created it (see
//! [`UploadId::with_origin`]). This middleware looks at each
//! `/v2/<name>/blobs/uploads/<id>` request: when the id names another member,
//! it streams the request to that node's HTTP address and streams the answer
//! back, unchanged. The origin authenticates and answers as if the client had
//! come straight to it, so the `Location` and `Range` headers it returns keep
//! working on every node. A forwarded request carries [`FORWARDED_BY`] and is
//! never forwarded again.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use flotilla_api::oci::error::{OciError, OciErrorCode};
use flotilla_api::oci::route::OciRoute;
use flotilla_raft::NodeId;
use flotilla_storage::upload::UploadId;

use crate::cluster::ClusterView;

/// Header naming the node that forwarded a request.
pub const FORWARDED_BY: &str = "x-flotilla-forwarded-by";
/// How long to wait for a TCP connection to the origin.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the origin may stay silent while answering.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends upload requests to the node holding their session.
pub struct UploadForwarder {
    view: Arc<ClusterView>,
    http: reqwest::Client,
}

impl UploadForwarder {
    /// Forwarding connections leave from `source` (the node's own address), so
    /// that per-node network rules apply to them too.
    pub fn new(view: Arc<ClusterView>, source: IpAddr) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        if !source.is_unspecified() {
            builder = builder.local_address(source);
        }
        Ok(UploadForwarder { view, http: builder.build()? })
    }

    /// The member holding the session `path` names, when that is another node.
    fn origin_elsewhere(&self, path: &str) -> Option<NodeId> {
        let rest = path.strip_prefix("/v2/")?;
        let Ok(OciRoute::Upload(_, id)) = OciRoute::parse(rest) else { return None };
        let origin = id.parse::<UploadId>().ok()?.origin()?;
        (origin != self.view.node_id()).then_some(origin)
    }

    async fn forward(&self, origin: NodeId, request: Request) -> Response {
        let member = self.view.metrics().membership_config.membership().get_node(&origin).cloned();
        let Some(addr) = member else {
            // Not a member (any more): the session is gone with it.
            return OciError::new(OciErrorCode::BlobUploadUnknown, format!("upload session of unknown node {origin}"))
                .into_response();
        };
        let (parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or(parts.uri.path(), |pq| pq.as_str());
        let url = format!("http://{}{path_and_query}", addr.http_addr);
        let mut headers = end_to_end(&parts.headers);
        headers.insert(HeaderName::from_static(FORWARDED_BY), HeaderValue::from(self.view.node_id()));
        let upstream = self
            .http
            .request(parts.method, &url)
            .headers(headers)
            .body(reqwest::Body::wrap_stream(body.into_data_stream()))
            .send()
            .await;
        match upstream {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                if let Some(target) = response.headers_mut() {
                    *target = end_to_end(answer.headers());
                }
                let stream = answer.bytes_stream().map_err(std::io::Error::other);
                response
                    .body(Body::from_stream(stream))
                    .unwrap_or_else(|error| OciError::internal(error).into_response())
            }
            Err(error) => {
                tracing::warn!(origin, %url, %error, "cannot forward an upload request to its node");
                OciError::new(
                    OciErrorCode::Unavailable,
                    format!("node {origin}, which holds this upload session, cannot be reached; retry later"),
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                .into_response()
            }
        }
    }
}

/// Middleware: forwards upload-session requests whose session lives elsewhere.
pub async fn forward_uploads(State(forwarder): State<Arc<UploadForwarder>>, request: Request, next: Next) -> Response {
    if request.headers().contains_key(FORWARDED_BY) {
        return next.run(request).await;
    }
    match forwarder.origin_elsewhere(request.uri().path()) {
        Some(origin) => forwarder.forward(origin, request).await,
        None => next.run(request).await,
    }
}

/// The end-to-end headers of `headers` (hop-by-hop ones and `Host` dropped).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    let named_in_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named_in_connection {
        kept.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::HOST,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
    ] {
        kept.remove(name);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_the_rest_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::HOST, HeaderValue::from_static("a:5000"));
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_static("0-9"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let kept = end_to_end(&headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(kept.contains_key(header::CONTENT_RANGE) && kept.contains_key(header::AUTHORIZATION));
    }
}
