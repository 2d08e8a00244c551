//! `GET /v2/`: the API version check clients probe before anything else.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::access::authenticate_user;
use super::error::OciResult;
use super::OciRequest;
use crate::state::AppState;

/// Header every `/v2/` client looks for.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

pub async fn check(state: &AppState, request: &OciRequest) -> OciResult<Response> {
    let result = authenticate_user(state, &request.headers).await;
    let mut response = match result {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response(),
        Err(error) => error.into_response(),
    };
    response.headers_mut().insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    Ok(response)
}
