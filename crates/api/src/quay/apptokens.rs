//! `/api/v1/user/apptoken[/{uuid}]`: the caller's application tokens.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use flotilla_model::identity::{self, secret_hash, CredentialKind, CredentialRecord};

use super::QuayError;
use crate::auth::secrets;
use crate::auth::time::rfc2822;
use crate::auth::Principal;
use crate::error::ServiceError;
use crate::state::AppState;

/// Largest request body (the document holds a title).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest title (bytes).
const MAX_TITLE_BYTES: usize = 255;
const MILLIS_PER_SEC: u64 = 1000;

/// A token as Quay answers it; `token_code` only in the answer that created it.
#[derive(Debug, Serialize)]
pub struct AppTokenView {
    pub uuid: String,
    pub title: String,
    pub last_accessed: Option<String>,
    pub created: String,
    pub expiration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_code: Option<String>,
}

impl AppTokenView {
    fn of(record: &CredentialRecord, token_code: Option<String>) -> Self {
        AppTokenView {
            uuid: record.id.clone(),
            title: record.title.clone(),
            last_accessed: None,
            created: rfc2822(record.created_ms / MILLIS_PER_SEC),
            expiration: record.expires_ms.map(|expires| rfc2822(expires / MILLIS_PER_SEC)),
            token_code,
        }
    }
}

/// `POST /api/v1/user/apptoken`: `{"title": "…"}` in; 201 with the token,
/// whose `token_code` is shown this once.
pub async fn create(State(state): State<AppState>, headers: HeaderMap, request: Body) -> Result<Response, QuayError> {
    let principal = caller(&state, &headers).await?;
    let title = title(request).await?;
    let secret = secrets::generate(CredentialKind::AppToken);
    let record = CredentialRecord {
        id: uuid::Uuid::new_v4().to_string(),
        user: principal.name.clone(),
        kind: CredentialKind::AppToken,
        title,
        created_ms: flotilla_raft::clock::now_ms(),
        expires_ms: None,
    };
    let hash = hex::encode(secret_hash(&secret));
    let command = identity::Command::AddCredential { hash, credential: record.clone() };
    state.meta.write(command).await.map_err(ServiceError::from)?;
    let body = json!({ "token": AppTokenView::of(&record, Some(secret)) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/user/apptoken`: `{"tokens": […]}`, the caller's tokens without values.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, QuayError> {
    let principal = caller(&state, &headers).await?;
    let tokens = tokens_of(&state, &principal.name).await?;
    let views: Vec<AppTokenView> = tokens.iter().map(|record| AppTokenView::of(record, None)).collect();
    Ok(Json(json!({ "tokens": views })).into_response())
}

/// `GET /api/v1/user/apptoken/{uuid}`: `{"token": …}` without its value.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Result<Response, QuayError> {
    let principal = caller(&state, &headers).await?;
    let tokens = tokens_of(&state, &principal.name).await?;
    let record = tokens.iter().find(|record| record.id == uuid).ok_or_else(|| not_found(&uuid))?;
    Ok(Json(json!({ "token": AppTokenView::of(record, None) })).into_response())
}

/// `DELETE /api/v1/user/apptoken/{uuid}`: revokes the token on every node (204).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Result<Response, QuayError> {
    let principal = caller(&state, &headers).await?;
    let command =
        identity::Command::RevokeCredential { user: principal.name, kind: CredentialKind::AppToken, id: uuid.clone() };
    match state.meta.write(command).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(error) => {
            let error = ServiceError::from(error);
            if error.status() == StatusCode::NOT_FOUND {
                return Err(not_found(&uuid));
            }
            Err(error.into())
        }
    }
}

/// The authenticated caller: 401 without credentials, 403 for an app token.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Principal, QuayError> {
    let Some(principal) = state.auth.authenticate(headers).await? else {
        return Err(QuayError::new(StatusCode::UNAUTHORIZED, "Session required"));
    };
    if principal.is_anonymous() {
        return Err(QuayError::new(StatusCode::UNAUTHORIZED, "Session required"));
    }
    if principal.credential().is_some() {
        return Err(QuayError::new(StatusCode::FORBIDDEN, "an app token cannot manage app tokens"));
    }
    Ok(principal)
}

async fn tokens_of(state: &AppState, user: &str) -> Result<Vec<CredentialRecord>, QuayError> {
    let catalog = state.catalog().await.map_err(ServiceError::from)?;
    let tokens = catalog.identity().credentials_of(user, CredentialKind::AppToken).map_err(ServiceError::from)?;
    Ok(tokens)
}

/// The `title` of the request document: a string of 1 to 255 bytes.
async fn title(request: Body) -> Result<String, QuayError> {
    let bytes = axum::body::to_bytes(request, MAX_BODY_BYTES).await.map_err(|_| {
        QuayError::new(StatusCode::BAD_REQUEST, format!("the body must be at most {MAX_BODY_BYTES} bytes"))
    })?;
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|error| QuayError::new(StatusCode::BAD_REQUEST, format!("invalid JSON document: {error}")))?;
    match document.get("title") {
        Some(Value::String(title)) if !title.trim().is_empty() && title.len() <= MAX_TITLE_BYTES => Ok(title.clone()),
        Some(Value::String(_)) => {
            Err(QuayError::new(StatusCode::BAD_REQUEST, format!("'title' must be 1 to {MAX_TITLE_BYTES} bytes")))
        }
        Some(_) => Err(QuayError::new(StatusCode::BAD_REQUEST, "'title' must be a string")),
        None => Err(QuayError::new(StatusCode::BAD_REQUEST, "'title' is required")),
    }
}

fn not_found(uuid: &str) -> QuayError {
    QuayError::new(StatusCode::NOT_FOUND, format!("app token {uuid} does not exist"))
}
