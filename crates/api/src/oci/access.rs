//! Authorization of OCI requests, with the registry token challenge.
//!
//! A request that may not do what it asks is refused in one of three ways
//! ([`Refusal`]):
//!
//! - no credentials, or credentials that do not authenticate, or the anonymous
//!   account lacking the right: 401 `UNAUTHORIZED` with
//!   `WWW-Authenticate: Bearer realm=…,service=…,scope=…` (logging in may help);
//! - a valid token (Bearer, or sent as a Basic password) that lacks a scope its
//!   user holds: 401 `UNAUTHORIZED` whose challenge adds
//!   `error="insufficient_scope"`, as the distribution registry answers, so a
//!   token client fetches a token with the wider scope and retries;
//! - the same token presented again for the same request within a minute of
//!   that answer: 403 `DENIED` with the same challenge. Clients that follow the
//!   token flow never do this (they fetch a token for the named scope); oras-py
//!   does, and fetches a new token only after a 403;
//! - an authenticated user who lacks the right, by password or by token: 403
//!   `DENIED`. A token client that asked for the scope got a token without it
//!   (the token endpoint grants the permitted subset), so its retry ends here
//!   instead of in another 401.

use axum::http::{header, HeaderMap};
use serde_json::json;

use super::error::{OciError, OciErrorCode, OciResult};
use super::names::RepoName;
use super::OciRequest;
use crate::auth::{bearer_challenge, Action, BearerError, Principal};
use crate::state::AppState;

/// The scope a catalog listing needs (Docker token spec).
pub const CATALOG_SCOPE: &str = "registry:catalog:*";

/// Authenticates the request and checks `action` on `repo`; refuses as the
/// module documentation says.
pub async fn authorize(
    state: &AppState,
    request: &OciRequest,
    repo: &RepoName,
    action: Action,
) -> OciResult<Principal> {
    let scope = repository_scope(repo, action);
    let principal = authenticate(state, &request.headers, Some(&scope)).await?;
    if principal.can(repo.as_str(), action) {
        return Ok(principal);
    }
    let refusal =
        Refusal::of(principal.is_token(), principal.is_anonymous(), principal.user_can(repo.as_str(), action));
    let refusal = again(state, request, refusal, &scope);
    let denied = || format!("{} may not {} {repo}", principal.name, action.scope_action());
    Err(refuse(&state.service_name, &request.headers, refusal, &scope, denied))
}

/// Authenticates without a repository (the `/v2/` base check): anonymous
/// callers are challenged.
pub async fn authenticate_user(state: &AppState, headers: &HeaderMap) -> OciResult<Principal> {
    let principal = authenticate(state, headers, None).await?;
    if principal.is_anonymous() {
        return Err(challenge(&state.service_name, headers, None, None, "authentication required"));
    }
    Ok(principal)
}

/// Authenticates a catalog listing: challenges carry `scope="registry:catalog:*"`
/// (so a client following them gets a token that lists), and a token without
/// that scope is answered `insufficient_scope`.
pub async fn authorize_catalog(state: &AppState, request: &OciRequest) -> OciResult<Principal> {
    let principal = authenticate(state, &request.headers, Some(CATALOG_SCOPE)).await?;
    if principal.can_list_catalog() {
        return Ok(principal);
    }
    let refusal = Refusal::of(principal.is_token(), principal.is_anonymous(), principal.user_can_list_catalog());
    let refusal = again(state, request, refusal, CATALOG_SCOPE);
    let denied = || format!("{} may not list the catalog", principal.name);
    Err(refuse(&state.service_name, &request.headers, refusal, CATALOG_SCOPE, denied))
}

/// [`Refusal::InsufficientScopeAgain`] when this token was already answered
/// `insufficient_scope` for this scope on this very request (method and target).
fn again(state: &AppState, request: &OciRequest, refusal: Refusal, scope: &str) -> Refusal {
    if refusal != Refusal::InsufficientScope {
        return refusal;
    }
    let target = request.uri.path_and_query().map_or("", |target| target.as_str());
    let request_line = format!("{} {target}", request.method);
    if state.auth.insufficient_scope_again(&request.headers, scope, &request_line) {
        return Refusal::InsufficientScopeAgain;
    }
    refusal
}

/// How a request that may not do what it asks is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401 with a plain challenge: authenticating may help.
    Unauthenticated,
    /// 401 with `error="insufficient_scope"`: a token for the challenge's scope would do.
    InsufficientScope,
    /// The same, for a token presented again on the same request after that
    /// answer: 403 `DENIED` with the same challenge (what oras-py needs to
    /// fetch a new token).
    InsufficientScopeAgain,
    /// 403 `DENIED`: the user may not, whatever token it gets.
    Denied,
}

impl Refusal {
    /// The refusal for a principal that may not do something: `is_token` and
    /// `is_anonymous` describe it, `user_may` says whether its user may (what
    /// the token endpoint would grant to the user's credentials).
    pub fn of(is_token: bool, is_anonymous: bool, user_may: bool) -> Refusal {
        match (is_token, is_anonymous, user_may) {
            (true, _, true) => Refusal::InsufficientScope,
            (_, true, _) => Refusal::Unauthenticated,
            // A password principal's user_may is its own right, so a password
            // principal gets here only when it lacks the right.
            _ => Refusal::Denied,
        }
    }
}

/// The error answering `refusal` of a request that needed `scope`.
fn refuse(
    service: &str,
    headers: &HeaderMap,
    refusal: Refusal,
    scope: &str,
    denied_message: impl FnOnce() -> String,
) -> OciError {
    match refusal {
        Refusal::Unauthenticated => challenge(service, headers, Some(scope), None, "authentication required"),
        Refusal::InsufficientScope => {
            let message = format!("insufficient scope: the token does not grant {scope}");
            challenge(service, headers, Some(scope), Some(BearerError::InsufficientScope), &message)
                .with_detail(access_records(scope))
        }
        Refusal::InsufficientScopeAgain => {
            let message = format!("insufficient scope: the token does not grant {scope}; fetch a token for it");
            let challenge =
                bearer_challenge(&realm(headers), service, Some(scope), Some(BearerError::InsufficientScope));
            OciError::new(OciErrorCode::Denied, message)
                .with_detail(access_records(scope))
                .with_header(header::WWW_AUTHENTICATE, challenge)
        }
        Refusal::Denied => OciError::new(OciErrorCode::Denied, denied_message()),
    }
}

/// `repository:<name>:<actions>` for `action` (a push needs pull too, as docker asks).
fn repository_scope(repo: &RepoName, action: Action) -> String {
    let actions = match action {
        Action::Read => "pull",
        Action::Write => "pull,push",
        Action::Delete => "delete",
    };
    format!("repository:{repo}:{actions}")
}

/// The `detail` of an `insufficient_scope` error: the access records the request
/// needs, one per action, in the shape the distribution registry sends.
fn access_records(scope: &str) -> serde_json::Value {
    let Some((resource_type, rest)) = scope.split_once(':') else { return serde_json::Value::Null };
    let Some((name, actions)) = rest.rsplit_once(':') else { return serde_json::Value::Null };
    let records: Vec<_> =
        actions.split(',').map(|action| json!({"Type": resource_type, "Name": name, "Action": action})).collect();
    json!(records)
}

async fn authenticate(state: &AppState, headers: &HeaderMap, scope: Option<&str>) -> OciResult<Principal> {
    state
        .auth
        .principal(headers)
        .await
        .map_err(|error| challenge(&state.service_name, headers, scope, None, &error.to_string()))
}

fn challenge(
    service: &str,
    headers: &HeaderMap,
    scope: Option<&str>,
    error: Option<BearerError>,
    message: &str,
) -> OciError {
    OciError::new(OciErrorCode::Unauthorized, message.to_owned())
        .with_header(header::WWW_AUTHENTICATE, bearer_challenge(&realm(headers), service, scope, error))
}

/// The token endpoint as the client reached this node.
fn realm(headers: &HeaderMap) -> String {
    format!("{}/v2/token", crate::origin::origin(headers))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;

    use super::*;
    use crate::auth::{hash_password, Authenticator, Grant, MemoryDirectory, Scope, UserRecord, ANONYMOUS_USER};

    const SECRET: &[u8] = b"test-secret-of-thirty-two-bytes!";
    const HOUR: Duration = Duration::from_secs(3600);

    fn grant(repository: &str, read: bool, write: bool, delete: bool) -> Grant {
        Grant { repository: repository.into(), read, write, delete }
    }

    fn user(name: &str, admin: bool, grants: Vec<Grant>) -> UserRecord {
        let password_hash = if name == ANONYMOUS_USER { String::new() } else { hash_password("pw") };
        UserRecord { admin, grants, ..UserRecord::new(name, "", password_hash) }
    }

    /// `admin`; `reader` (read on app); `writer` (read, write, delete on app); `anonymous` (read on *).
    fn setup() -> Authenticator {
        let directory = Arc::new(MemoryDirectory::new(Some(SECRET.to_vec())));
        directory.put_user(user("admin", true, vec![]));
        directory.put_user(user("reader", false, vec![grant("app", true, false, false)]));
        directory.put_user(user("writer", false, vec![grant("app", true, true, true)]));
        directory.put_user(user(ANONYMOUS_USER, false, vec![grant("*", true, false, false)]));
        Authenticator::new(directory)
    }

    async fn password(auth: &Authenticator, name: &str) -> Principal {
        auth.authenticate_password(name, "pw").await.unwrap()
    }

    /// A token principal of `principal` holding (the permitted part of) `scopes`.
    fn token(auth: &Authenticator, principal: &Principal, scopes: &[&str]) -> Principal {
        let scopes: Vec<Scope> = scopes.iter().map(|text| Scope::parse(text).unwrap()).collect();
        let issued = auth.issue_token(principal, "flotilla", &scopes, HOUR).unwrap();
        auth.verify_token(&issued.token).unwrap()
    }

    fn refusal(principal: &Principal, repo: &str, action: Action) -> Option<Refusal> {
        (!principal.can(repo, action))
            .then(|| Refusal::of(principal.is_token(), principal.is_anonymous(), principal.user_can(repo, action)))
    }

    #[tokio::test]
    async fn a_token_lacking_a_scope_its_user_holds_is_insufficient_scope() {
        let auth = setup();
        let writer = password(&auth, "writer").await;
        let pushed_with = token(&auth, &writer, &["repository:app:pull,push"]);
        assert_eq!(refusal(&pushed_with, "app", Action::Write), None);
        assert_eq!(refusal(&pushed_with, "app", Action::Delete), Some(Refusal::InsufficientScope));
        // The token a client fetches for the challenge's scope then suffices.
        let wider = token(&auth, &writer, &["repository:app:delete"]);
        assert_eq!(refusal(&wider, "app", Action::Delete), None);
        let admin = password(&auth, "admin").await;
        let admin_pull = token(&auth, &admin, &["repository:x:pull"]);
        assert_eq!(refusal(&admin_pull, "x", Action::Delete), Some(Refusal::InsufficientScope));
    }

    #[tokio::test]
    async fn a_user_lacking_the_right_is_denied_by_password_and_by_token() {
        let auth = setup();
        let reader = password(&auth, "reader").await;
        assert_eq!(refusal(&reader, "app", Action::Delete), Some(Refusal::Denied));
        let pull = token(&auth, &reader, &["repository:app:pull"]);
        assert_eq!(refusal(&pull, "app", Action::Delete), Some(Refusal::Denied), "no 401 the client cannot fix");
        // The token a client gets when it asks for delete anyway: the granted
        // subset (nothing), and the retry is refused with 403, not another 401.
        let asked = token(&auth, &reader, &["repository:app:delete"]);
        assert_eq!(refusal(&asked, "app", Action::Delete), Some(Refusal::Denied));
        assert_eq!(refusal(&asked, "app", Action::Read), Some(Refusal::InsufficientScope));
        assert_eq!(refusal(&reader, "other", Action::Read), Some(Refusal::Denied));
    }

    #[tokio::test]
    async fn the_anonymous_account_is_asked_to_authenticate() {
        let auth = setup();
        let anonymous = auth.principal(&HeaderMap::new()).await.unwrap();
        assert_eq!(refusal(&anonymous, "app", Action::Read), None, "anonymous read is on");
        assert_eq!(refusal(&anonymous, "app", Action::Write), Some(Refusal::Unauthenticated));
        let anonymous_token = token(&auth, &anonymous, &["repository:app:pull"]);
        assert_eq!(refusal(&anonymous_token, "other", Action::Read), Some(Refusal::InsufficientScope));
        assert_eq!(refusal(&anonymous_token, "app", Action::Delete), Some(Refusal::Unauthenticated));
    }

    #[tokio::test]
    async fn catalog_needs_the_catalog_scope_and_lists_what_the_user_reads() {
        let auth = setup();
        let reader = password(&auth, "reader").await;
        assert!(reader.can_list_catalog() && reader.can_list("app") && !reader.can_list("other"));
        let repo_token = token(&auth, &reader, &["repository:app:pull"]);
        assert!(!repo_token.can_list_catalog() && !repo_token.can_list("app"));
        assert_eq!(
            Refusal::of(repo_token.is_token(), repo_token.is_anonymous(), repo_token.user_can_list_catalog()),
            Refusal::InsufficientScope
        );
        let catalog = token(&auth, &reader, &[CATALOG_SCOPE]);
        assert!(catalog.can_list_catalog() && catalog.can_list("app") && !catalog.can_list("other"));
        // A token never mints a catalog token it lacks itself.
        let minted = token(&auth, &repo_token, &[CATALOG_SCOPE]);
        assert!(!minted.can_list_catalog());
        let anonymous = auth.principal(&HeaderMap::new()).await.unwrap();
        assert!(!anonymous.can_list_catalog() && !token(&auth, &anonymous, &[CATALOG_SCOPE]).can_list_catalog());
        let admin = password(&auth, "admin").await;
        assert!(token(&auth, &admin, &[CATALOG_SCOPE]).can_list("anything"));
    }

    async fn rendered(error: OciError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let challenge = response.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, challenge, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn refusals_render_as_the_distribution_registry_answers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("reg:5000"));
        let scope = "repository:team/app:delete";
        let denied = || "reader may not delete team/app".to_owned();

        let (status, challenge, body) =
            rendered(refuse("flotilla", &headers, Refusal::InsufficientScope, scope, denied)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.as_deref(),
            Some(
                r#"Bearer realm="http://reg:5000/v2/token",service="flotilla",scope="repository:team/app:delete",error="insufficient_scope""#
            )
        );
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        assert_eq!(
            body["errors"][0]["detail"],
            json!([{"Type": "repository", "Name": "team/app", "Action": "delete"}])
        );

        let (status, challenge, body) =
            rendered(refuse("flotilla", &headers, Refusal::Unauthenticated, scope, denied)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!challenge.unwrap().contains("error="));
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

        let (status, challenge, body) =
            rendered(refuse("flotilla", &headers, Refusal::InsufficientScopeAgain, scope, denied)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(challenge.unwrap().ends_with(r#",error="insufficient_scope""#), "oras-py fetches a token on this");
        assert_eq!(body["errors"][0]["code"], "DENIED");

        let (status, challenge, body) = rendered(refuse("flotilla", &headers, Refusal::Denied, scope, denied)).await;
        assert_eq!((status, challenge), (StatusCode::FORBIDDEN, None));
        assert_eq!(body["errors"][0]["code"], "DENIED");
        assert_eq!(body["errors"][0]["message"], "reader may not delete team/app");
    }

    #[test]
    fn scopes_and_access_records() {
        let repo = RepoName::parse("a/b").unwrap();
        assert_eq!(repository_scope(&repo, Action::Write), "repository:a/b:pull,push");
        assert_eq!(
            access_records("repository:a/b:pull,push"),
            json!([
                {"Type": "repository", "Name": "a/b", "Action": "pull"},
                {"Type": "repository", "Name": "a/b", "Action": "push"}
            ])
        );
        assert_eq!(access_records(CATALOG_SCOPE), json!([{"Type": "registry", "Name": "catalog", "Action": "*"}]));
    }
}
