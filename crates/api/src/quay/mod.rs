//! Quay-style application tokens on `/api/v1/user/apptoken`: the first
//! surface on the shared identity model.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /api/v1/user/apptoken` | create a token (`{"title": …}`); 201 with the token value, shown once |
//! | `GET /api/v1/user/apptoken` | the caller's tokens (without values) |
//! | `GET /api/v1/user/apptoken/{uuid}` | one of them |
//! | `DELETE /api/v1/user/apptoken/{uuid}` | revoke it (204) |
//!
//! The caller authenticates with a password (Basic) or an access token
//! (`Authorization: Bearer`, for example one from the registry token
//! endpoint); an app token cannot manage app tokens. An app token is a
//! password for the registry on every node: `docker login -u <user>` or
//! `-u '$app'` with the token. Errors are Quay's `ApiError` documents.

pub mod apptokens;
pub mod error;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub use error::QuayError;

/// Routes of the Quay surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/user/apptoken", get(apptokens::list).post(apptokens::create))
        .route("/api/v1/user/apptoken/{uuid}", get(apptokens::get).delete(apptokens::revoke))
}
