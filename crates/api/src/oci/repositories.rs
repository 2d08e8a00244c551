//! `GET /v2/_catalog?n=&last=`: repositories the caller may read.
//!
//! Listing needs a password, or a token holding `registry:catalog:*` (which
//! lists every repository the token's user may read); challenges ask for that
//! scope, see [`authorize_catalog`].

use serde_json::json;

use super::access::authorize_catalog;
use super::error::OciResult;
use super::tags::{next_link, paged_json, Page};
use super::OciRequest;
use crate::state::AppState;

pub async fn list(state: &AppState, request: &OciRequest) -> OciResult {
    let principal = authorize_catalog(state, request).await?;
    let page = Page::from_request(request)?;
    let oci = state.catalog().await?.oci();
    let mut visible = Vec::with_capacity(page.n.min(1024));
    let mut cursor = page.last.clone();
    // Scan pages until n readable names (plus one, to know there are more) are found.
    loop {
        let batch = oci.repositories(cursor.as_deref(), 1000)?;
        let exhausted = batch.len() < 1000;
        cursor = batch.last().cloned();
        visible.extend(batch.into_iter().filter(|repo| principal.can_list(repo)));
        if exhausted || visible.len() > page.n {
            break;
        }
    }
    let more = visible.len() > page.n;
    visible.truncate(page.n);
    let link = (more && !visible.is_empty()).then(|| next_link("/v2/_catalog", page.n, visible.last()));
    Ok(paged_json(json!({"repositories": visible}), link))
}
