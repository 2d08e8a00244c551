//! The origin a client reached this node by (`http(s)://host[:port]`), for
//! the absolute URLs the surfaces hand back (token realms, `uri` fields).

use http::{header, HeaderMap};

/// `https://<Host>` when a proxy says `X-Forwarded-Proto: https`, else
/// `http://<Host>`; `localhost` without a `Host` header.
pub fn origin(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|proto| *proto == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}
