//! Authorization of OCI requests, with the registry token challenge.

use axum::http::{header, HeaderMap};

use super::error::{OciError, OciErrorCode, OciResult};
use super::names::RepoName;
use crate::auth::{bearer_challenge, Action, Principal};
use crate::state::AppState;

/// Authenticates the request and checks `action` on `repo`; on failure answers
/// 401 with a `WWW-Authenticate: Bearer` challenge (no or bad credentials) or
/// 403 `DENIED` (authenticated but not allowed).
pub async fn authorize(state: &AppState, headers: &HeaderMap, repo: &RepoName, action: Action) -> OciResult<Principal> {
    let scope = format!("repository:{repo}:{}", scope_actions(action));
    let principal = authenticate(state, headers, Some(&scope)).await?;
    if principal.can(repo.as_str(), action) {
        return Ok(principal);
    }
    if principal.is_anonymous() {
        return Err(challenge(state, headers, Some(&scope), "authentication required"));
    }
    let denied = OciError::new(OciErrorCode::Denied, format!("{} may not {action:?} {repo}", principal.name));
    if principal.token_expiry().is_some() {
        // A token lacking this scope: 403 with a challenge for a token that has it,
        // which token clients (oras) answer by fetching one.
        let challenge = challenge(state, headers, Some(&scope), "insufficient scope");
        return Err(challenge.headers.into_iter().fold(denied, |error, (name, value)| error.with_header(name, value)));
    }
    Err(denied)
}

/// Authenticates without a repository (the `/v2/` base check, the catalog):
/// anonymous callers are challenged.
pub async fn authenticate_user(state: &AppState, headers: &HeaderMap) -> OciResult<Principal> {
    let principal = authenticate(state, headers, None).await?;
    if principal.is_anonymous() {
        return Err(challenge(state, headers, None, "authentication required"));
    }
    Ok(principal)
}

async fn authenticate(state: &AppState, headers: &HeaderMap, scope: Option<&str>) -> OciResult<Principal> {
    state.auth.principal(headers).await.map_err(|error| challenge(state, headers, scope, &error.to_string()))
}

fn scope_actions(action: Action) -> &'static str {
    match action {
        Action::Read => "pull",
        Action::Write => "pull,push",
        Action::Delete => "delete",
    }
}

fn challenge(state: &AppState, headers: &HeaderMap, scope: Option<&str>, message: &str) -> OciError {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|proto| *proto == "https")
        .unwrap_or("http");
    let realm = format!("{scheme}://{host}/v2/token");
    OciError::new(OciErrorCode::Unauthorized, message.to_owned())
        .with_header(header::WWW_AUTHENTICATE, bearer_challenge(&realm, &state.service_name, scope, None))
}
