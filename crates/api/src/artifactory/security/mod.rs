//! `/artifactory/api/security/…` and `/artifactory/api/v2/security/…`: the
//! administration of the one account model every surface shares.
//!
//! A user, group or permission target made here is the same one the OCI
//! registry (and every later surface) checks; changes apply to the next
//! request on every node. Reads are linearizable.

pub mod groups;
pub mod permissions;
pub mod permissions_v2;
pub mod users;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::base_url;
use crate::state::AppState;

/// Realm of every account (there are no external directories).
const REALM: &str = "internal";

/// Routes of the security API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/artifactory/api/security/users", get(users::list))
        .route(
            "/artifactory/api/security/users/{name}",
            get(users::get).put(users::create_or_replace).post(users::update).delete(users::delete),
        )
        .route("/artifactory/api/security/groups", get(groups::list))
        .route(
            "/artifactory/api/security/groups/{name}",
            get(groups::get).put(groups::create_or_replace).post(groups::update).delete(groups::delete),
        )
        .route("/artifactory/api/security/permissions", get(permissions::list))
        .route(
            "/artifactory/api/security/permissions/{name}",
            get(permissions::get).put(permissions::create_or_replace).delete(permissions_v2::delete),
        )
        .route("/artifactory/api/v2/security/permissions", get(permissions_v2::list))
        .route(
            "/artifactory/api/v2/security/permissions/{name}",
            get(permissions_v2::get)
                .head(permissions_v2::exists)
                .post(permissions_v2::create)
                .put(permissions_v2::create_or_replace)
                .delete(permissions_v2::delete),
        )
}

/// An entry of a listing: `{"name", "uri"}` (users add their realm).
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm: Option<&'static str>,
}

impl Listed {
    fn new(headers: &HeaderMap, collection: &str, name: String, realm: Option<&'static str>) -> Self {
        let uri = format!("{}/api/{collection}/{}", base_url(headers), encode_segment(&name));
        Listed { name, uri, realm }
    }
}

/// Percent-encodes a path segment (names may hold any character).
fn encode_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
