//! Behaviour of the whole module: authenticator, tokens, grants, token endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::any;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use flotilla_model::identity;

use super::time::now_unix_secs;
use super::*;

const SECRET: &[u8] = b"test-secret-of-thirty-two-bytes!";
const HOUR: Duration = Duration::from_secs(3600);

fn grant(repository: &str, read: bool, write: bool, delete: bool) -> Grant {
    Grant { repository: repository.into(), read, write, delete }
}

fn user(name: &str, password: &str, admin: bool, grants: Vec<Grant>) -> UserRecord {
    let password_hash = if password.is_empty() { String::new() } else { hash_password(password) };
    UserRecord { admin, grants, ..UserRecord::new(name, format!("{name}@example.com"), password_hash) }
}

/// A directory with `admin` (admin), `alice` (read on team/app), `bob` (rw on team/*).
fn setup() -> (Arc<MemoryDirectory>, Authenticator) {
    let directory = Arc::new(MemoryDirectory::new(Some(SECRET.to_vec())));
    directory.put_user(user("admin", "admin-pw", true, vec![]));
    directory.put_user(user("alice", "alice-pw", false, vec![grant("team/app", true, false, false)]));
    directory.put_user(user("bob", "bob-pw", false, vec![grant("team/*", true, true, false)]));
    let authenticator = Authenticator::new(directory.clone());
    (directory, authenticator)
}

fn headers(name: &'static str, value: String) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(name, HeaderValue::from_str(&value).unwrap());
    headers
}

fn basic(user: &str, password: &str) -> HeaderMap {
    headers("authorization", format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))
}

fn bearer(token: &str) -> HeaderMap {
    headers("authorization", format!("Bearer {token}"))
}

fn scopes(texts: &[&str]) -> Vec<Scope> {
    texts.iter().map(|text| Scope::parse(text).unwrap()).collect()
}

async fn token_for(auth: &Authenticator, user: &str, password: &str, requested: &[&str]) -> String {
    let principal = auth.authenticate_password(user, password).await.unwrap();
    auth.issue_token(&principal, "flotilla", &scopes(requested), HOUR).unwrap().token
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (_, auth) = setup();
    let headers = HeaderMap::new();
    assert_send(&auth.principal(&headers));
    assert_send(&auth.authenticate_password("alice", "pw"));
}

#[tokio::test]
async fn password_login_and_failures() {
    let (_, auth) = setup();
    let alice = auth.principal(&basic("alice", "alice-pw")).await.unwrap();
    assert_eq!(alice.name, "alice");
    assert!(alice.can("team/app", Action::Read) && !alice.can("team/app", Action::Write));
    assert!(matches!(auth.authenticate(&basic("alice", "wrong")).await, Err(AuthError::BadCredentials)));
    assert!(matches!(auth.authenticate(&basic("mallory", "alice-pw")).await, Err(AuthError::BadCredentials)));
    let garbage = headers("authorization", "Basic !!!".into());
    assert!(matches!(auth.authenticate(&garbage).await, Err(AuthError::MalformedHeader(_))));
}

#[tokio::test]
async fn verified_credentials_are_cached_and_password_change_invalidates() {
    let (directory, auth) = setup();
    assert!(auth.authenticate(&basic("alice", "wrong")).await.is_err());
    assert_eq!(auth.cached_credentials(), 0, "failures are not cached");
    auth.authenticate(&basic("alice", "alice-pw")).await.unwrap();
    auth.authenticate(&basic("alice", "alice-pw")).await.unwrap();
    assert_eq!(auth.cached_credentials(), 1);
    directory.put_user(user("alice", "new-pw", false, vec![]));
    assert!(matches!(auth.authenticate(&basic("alice", "alice-pw")).await, Err(AuthError::BadCredentials)));
    assert!(auth.authenticate(&basic("alice", "new-pw")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_credential_share_one_verification() {
    let (_, auth) = setup();
    let auth = Arc::new(auth);
    let requests = |password: &'static str| {
        (0..24)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.authenticate(&basic("alice", password)).await.is_ok() })
            })
            .collect::<Vec<_>>()
    };
    for request in requests("alice-pw") {
        assert!(request.await.unwrap());
    }
    assert_eq!(auth.verifications_run(), 1, "24 requests with one cold credential ran argon2 once");
    for request in requests("wrong") {
        assert!(!request.await.unwrap());
    }
    let after_wrong = auth.verifications_run();
    assert!((2..=9).contains(&after_wrong), "24 concurrent wrong passwords shared their checks: {after_wrong} runs");
    assert!(auth.in_flight_is_empty(), "finished verifications leave nothing behind");
}

#[tokio::test]
async fn accounts_without_password_cannot_log_in() {
    let (directory, auth) = setup();
    directory.put_user(user(ANONYMOUS_USER, "", false, vec![grant("*", true, false, false)]));
    assert!(matches!(auth.authenticate(&basic(ANONYMOUS_USER, "")).await, Err(AuthError::BadCredentials)));
}

#[tokio::test]
async fn token_round_trip_via_every_header() {
    let (_, auth) = setup();
    let token = token_for(&auth, "bob", "bob-pw", &["repository:team/a:pull,push"]).await;
    for request_headers in [bearer(&token), basic("bob", &token), headers("x-jfrog-art-api", token.clone())] {
        let principal = auth.principal(&request_headers).await.unwrap();
        assert_eq!(principal.name, "bob");
        assert!(principal.can("team/a", Action::Read) && principal.can("team/a", Action::Write));
        assert!(!principal.can("team/b", Action::Read), "the token covers team/a only");
    }
    assert!(matches!(auth.authenticate(&basic("alice", &token)).await, Err(AuthError::BadCredentials)));
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_invalid() {
    let (_, auth) = setup();
    let token = token_for(&auth, "alice", "alice-pw", &["repository:team/app:pull"]).await;
    let (header, rest) = token.split_once('.').unwrap();
    let (claims, signature) = rest.split_once('.').unwrap();
    let mut claims_json: serde_json::Value = serde_json::from_slice(&URL_SAFE.decode(claims).unwrap()).unwrap();
    claims_json["sub"] = "admin".into();
    let forged = format!("{header}.{}.{signature}", URL_SAFE.encode(claims_json.to_string()));
    assert!(matches!(auth.authenticate(&bearer(&forged)).await, Err(AuthError::InvalidToken)));
    assert!(matches!(auth.authenticate(&bearer("not-a-token")).await, Err(AuthError::InvalidToken)));
    let other = Authenticator::new(Arc::new(MemoryDirectory::new(Some(b"another-cluster-secret-123456789".to_vec()))));
    assert!(matches!(other.verify_token(&token), Err(AuthError::InvalidToken)));
}

const URL_SAFE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[tokio::test]
async fn expired_token_is_refused() {
    let (_, auth) = setup();
    let alice = auth.authenticate_password("alice", "alice-pw").await.unwrap();
    let issued_long_ago = now_unix_secs() - 2 * 3600;
    let ttl = Duration::from_secs(60);
    let old = auth.issue_token_at(&alice, "flotilla", &scopes(&["repository:team/app:pull"]), ttl, issued_long_ago);
    assert!(matches!(auth.authenticate(&bearer(&old.unwrap().token)).await, Err(AuthError::ExpiredToken)));
}

#[tokio::test]
async fn scope_downgrade_grants_only_what_the_user_may_do() {
    let (_, auth) = setup();
    let alice = auth.authenticate_password("alice", "alice-pw").await.unwrap();
    let requested = scopes(&["repository:team/app:pull,push,delete", "repository:other:pull", "repository:team/app:*"]);
    let access: Vec<Access> = requested.iter().filter_map(|scope| alice.grant(scope)).collect();
    let pull_only =
        Access { resource_type: "repository".into(), name: "team/app".into(), actions: vec!["pull".into()] };
    assert_eq!(access, vec![pull_only.clone(), pull_only]);
    let token = auth.issue_token(&alice, "flotilla", &requested, HOUR).unwrap().token;
    let principal = auth.verify_token(&token).unwrap();
    assert!(principal.can("team/app", Action::Read));
    assert!(!principal.can("team/app", Action::Write) && !principal.can("other", Action::Read));
}

#[tokio::test]
async fn admin_may_do_everything_but_tokens_carry_no_admin() {
    let (_, auth) = setup();
    let admin = auth.principal(&basic("admin", "admin-pw")).await.unwrap();
    assert!(admin.is_admin());
    assert!(Action::ALL.iter().all(|action| admin.can("any/repo", *action)));
    let token = auth.issue_token(&admin, "flotilla", &scopes(&["repository:x:*"]), HOUR).unwrap();
    let claims = super::token::verify(&token.token, SECRET, now_unix_secs()).unwrap();
    assert_eq!(claims.access[0].actions, ["*"]);
    let via_token = auth.verify_token(&token.token).unwrap();
    assert!(!via_token.is_admin());
    assert!(Action::ALL.iter().all(|action| via_token.can("x", *action)));
    assert!(!via_token.can("y", Action::Read));
}

#[tokio::test]
async fn anonymous_has_the_anonymous_users_grants() {
    let (directory, auth) = setup();
    let nobody = auth.principal(&HeaderMap::new()).await.unwrap();
    assert!(nobody.is_anonymous() && !nobody.can("public/x", Action::Read));
    directory.put_user(user(ANONYMOUS_USER, "", true, vec![grant("public/*", true, false, false)]));
    let anonymous = auth.principal(&HeaderMap::new()).await.unwrap();
    assert!(!anonymous.is_admin(), "the anonymous account is never admin");
    assert!(anonymous.can("public/x", Action::Read) && !anonymous.can("public/x", Action::Write));
    assert!(!anonymous.can("private/x", Action::Read));
    let token = auth.issue_token(&anonymous, "flotilla", &scopes(&["repository:public/x:pull,push"]), HOUR).unwrap();
    let via_token = auth.verify_token(&token.token).unwrap();
    assert!(via_token.is_anonymous() && via_token.can("public/x", Action::Read));
    assert!(!via_token.can("public/x", Action::Write));
}

#[tokio::test]
async fn prefix_grants_match_by_prefix_only() {
    let (directory, auth) = setup();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    assert!(bob.can("team/a", Action::Write) && bob.can("team/a/b", Action::Read));
    assert!(!bob.can("team", Action::Read) && !bob.can("teamx/a", Action::Read));
    assert!(!bob.can("team/a", Action::Delete));
    directory.put_user(user("carol", "", false, vec![grant("*", true, false, true)]));
    let everything = Principal::from_account(auth.account("carol").unwrap().unwrap());
    assert!(everything.can("anything", Action::Delete) && !everything.can("anything", Action::Write));
}

#[tokio::test]
async fn tokens_follow_the_users_current_grants() {
    let (directory, auth) = setup();
    let token = token_for(&auth, "bob", "bob-pw", &["repository:team/a:pull,push"]).await;
    directory
        .put_user(UserRecord { grants: vec![grant("team/*", true, false, false)], ..directory.user("bob").unwrap() });
    let principal = auth.verify_token(&token).unwrap();
    assert!(principal.can("team/a", Action::Read) && !principal.can("team/a", Action::Write));
    directory.remove_user("bob");
    assert!(matches!(auth.verify_token(&token), Err(AuthError::InvalidToken)));
    let recreated_ms = (now_unix_secs() + 3600) * 1000;
    let recreated = identity::Command::PutUser(user("bob", "", false, vec![grant("*", true, true, true)]));
    directory.apply_at(recreated, recreated_ms).unwrap();
    assert!(matches!(auth.verify_token(&token), Err(AuthError::InvalidToken)), "a new account of the same name");
}

#[tokio::test]
async fn tokens_from_tokens_never_outlive_their_parent() {
    let (_, auth) = setup();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    let short =
        auth.issue_token(&bob, "flotilla", &scopes(&["repository:team/a:pull"]), Duration::from_secs(30)).unwrap();
    let via_token = auth.verify_token(&short.token).unwrap();
    let child = auth.issue_token(&via_token, "flotilla", &scopes(&["repository:team/*:pull,push"]), HOUR).unwrap();
    assert!(child.expires_in <= 30);
    let grandchild = auth.verify_token(&child.token).unwrap();
    assert!(!grandchild.can("team/a", Action::Write), "push was never in the parent token");
}

#[tokio::test]
async fn catalog_scope_lists_what_the_user_may_read() {
    let (_, auth) = setup();
    let token = token_for(&auth, "bob", "bob-pw", &["registry:catalog:*"]).await;
    let principal = auth.verify_token(&token).unwrap();
    assert!(principal.can_list("team/a") && !principal.can_list("other"));
    assert!(!principal.can("team/a", Action::Read));
}

#[tokio::test]
async fn no_secret_no_tokens() {
    let (directory, auth) = setup();
    let token = token_for(&auth, "bob", "bob-pw", &[]).await;
    directory.set_secret(None);
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    assert!(matches!(auth.issue_token(&bob, "s", &[], HOUR), Err(AuthError::NoTokenSecret)));
    assert!(matches!(auth.verify_token(&token), Err(AuthError::NoTokenSecret)));
}

// ---- the HTTP endpoint -------------------------------------------------------------------------

fn endpoint(auth: Authenticator) -> Router {
    Router::new().route("/v2/token", any(token_endpoint)).with_state(Arc::new(auth))
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn get(uri: &str, credentials: Option<(&str, &str)>) -> Request<Body> {
    let mut builder = Request::get(uri);
    if let Some((user, password)) = credentials {
        builder = builder.header(AUTHORIZATION, format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))));
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn endpoint_issues_downgraded_tokens() {
    let (_, auth) = setup();
    let router = endpoint(auth);
    let uri = "/v2/token?service=reg&scope=repository:team/app:pull,push&scope=repository:x:pull&account=alice";
    let (status, body) = call(&router, get(uri, Some(("alice", "alice-pw")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], DEFAULT_TOKEN_TTL.as_secs());
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let claims = super::token::verify(body["token"].as_str().unwrap(), SECRET, now_unix_secs()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.aud.as_str()), ("alice", "reg"));
    assert_eq!(claims.access.len(), 1);
    assert_eq!(claims.access[0].actions, ["pull"]);
}

#[tokio::test]
async fn endpoint_rejects_bad_credentials_with_oci_error() {
    let (_, auth) = setup();
    let router = endpoint(auth);
    let (status, body) = call(&router, get("/v2/token?service=reg", Some(("alice", "nope")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert!(body["errors"][0]["detail"].is_null());
}

#[tokio::test]
async fn endpoint_serves_anonymous_and_oauth_form() {
    let (_, auth) = setup();
    let router = endpoint(auth);
    let (status, body) = call(&router, get("/v2/token?scope=repository:team/app:pull", None)).await;
    assert_eq!(status, StatusCode::OK);
    let claims = super::token::verify(body["token"].as_str().unwrap(), SECRET, now_unix_secs()).unwrap();
    assert_eq!(claims.sub, ANONYMOUS_USER);
    assert!(claims.access.is_empty());
    let form = "grant_type=password&username=bob&password=bob-pw&service=reg&scope=repository%3Ateam%2Fa%3Apush%20repository%3Ateam%2Fb%3Apull";
    let post = Request::post("/v2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, body) = call(&router, post).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = super::token::verify(body["access_token"].as_str().unwrap(), SECRET, now_unix_secs()).unwrap();
    assert_eq!(claims.sub, "bob");
    assert_eq!(claims.access.len(), 2);
    let put = Request::put("/v2/token").body(Body::empty()).unwrap();
    assert_eq!(call(&router, put).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn endpoint_grants_the_catalog_only_to_passwords_and_catalog_tokens() {
    let (_, auth) = setup();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    let repo_token = auth.issue_token(&bob, "flotilla", &scopes(&["repository:team/a:pull"]), HOUR).unwrap().token;
    let router = endpoint(auth);
    let catalog_uri = "/v2/token?service=flotilla&scope=registry:catalog:*";
    let access = |body: &serde_json::Value| {
        super::token::verify(body["token"].as_str().unwrap(), SECRET, now_unix_secs()).unwrap().access
    };

    let (status, body) = call(&router, get(catalog_uri, Some(("bob", "bob-pw")))).await;
    assert_eq!(status, StatusCode::OK);
    let catalog = Access { resource_type: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] };
    assert_eq!(access(&body), vec![catalog]);

    let with_token = Request::get(catalog_uri).header(AUTHORIZATION, format!("Bearer {repo_token}"));
    let (status, body) = call(&router, with_token.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "asking for more than one may have is not an error");
    assert!(access(&body).is_empty(), "a token without the catalog scope mints none");

    let (status, body) = call(&router, get(catalog_uri, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(access(&body).is_empty(), "the anonymous account never lists the catalog");
}

#[tokio::test]
async fn user_can_looks_past_the_tokens_access_list() {
    let (_, auth) = setup();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    assert!(!bob.is_token() && bob.user_can("team/a", Action::Write) && !bob.user_can("team/a", Action::Delete));
    let pull = auth.verify_token(&token_for(&auth, "bob", "bob-pw", &["repository:team/a:pull"]).await).unwrap();
    assert!(pull.is_token() && !pull.can("team/a", Action::Write));
    assert!(pull.user_can("team/a", Action::Write), "a token for pull,push would be granted");
    assert!(!pull.user_can("team/a", Action::Delete) && !pull.user_can("other", Action::Read));
}

#[test]
fn a_narrow_token_presented_again_for_the_same_request_is_noticed() {
    let (_, auth) = setup();
    let narrow = bearer("eyJ.a.b");
    let scope = "repository:team/a:delete";
    let request = "DELETE /v2/team/a/manifests/v1";
    assert!(!auth.insufficient_scope_again(&narrow, scope, request), "first presentation");
    assert!(auth.insufficient_scope_again(&narrow, scope, request), "the same token, scope and request again");
    assert!(!auth.insufficient_scope_again(&narrow, scope, "DELETE /v2/team/a/manifests/v2"), "another request");
    assert!(!auth.insufficient_scope_again(&narrow, "repository:team/a:pull", request), "another scope");
    assert!(!auth.insufficient_scope_again(&bearer("eyJ.c.d"), scope, request), "another token");
    assert!(!auth.insufficient_scope_again(&basic("bob", "eyJ.a.b"), scope, request), "the token as a password");
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_others_are_not() {
    let (directory, auth) = setup();
    let kept = token_for(&auth, "bob", "bob-pw", &["repository:team/a:pull"]).await;
    let revoked = token_for(&auth, "bob", "bob-pw", &["repository:team/a:pull"]).await;
    let secret = directory.token_secret().unwrap();
    let jti = token::verify(&revoked, &secret, now_unix_secs()).unwrap().jti;
    let revocation = identity::RevokedToken { user: "bob".into(), expires_at_secs: now_unix_secs() + 3600 };
    directory.apply(identity::Command::RevokeToken { jti, revoked: revocation }).unwrap();
    assert!(matches!(auth.verify_token(&revoked), Err(AuthError::InvalidToken)));
    assert!(auth.verify_token(&kept).unwrap().can("team/a", Action::Read));
}

/// Adds an app token of `user` to the directory and returns its secret.
fn app_token(directory: &MemoryDirectory, user: &str, id: &str) -> String {
    let secret = secrets::generate(identity::CredentialKind::AppToken);
    let credential = identity::CredentialRecord {
        id: id.into(),
        user: user.into(),
        kind: identity::CredentialKind::AppToken,
        title: "ci".into(),
        created_ms: 0,
        expires_ms: None,
    };
    let hash = hex::encode(identity::secret_hash(&secret));
    directory.apply(identity::Command::AddCredential { hash, credential }).unwrap();
    secret
}

#[tokio::test]
async fn app_tokens_act_as_their_user_without_admin_until_revoked() {
    let (directory, auth) = setup();
    let secret = app_token(&directory, "bob", "t1");
    let verifications = auth.verifications_run();
    for headers in [basic("bob", &secret), basic("$app", &secret), bearer(&secret)] {
        let principal = auth.authenticate(&headers).await.unwrap().unwrap();
        assert_eq!(principal.name, "bob");
        assert!(principal.can("team/a", Action::Write) && !principal.can("other/a", Action::Read));
        assert!(!principal.is_token() && principal.credential().is_some());
    }
    assert_eq!(auth.verifications_run(), verifications, "app tokens are found by hash, never by argon2");
    assert!(auth.authenticate(&basic("alice", &secret)).await.is_err(), "another user's name is refused");

    let admin_secret = app_token(&directory, "admin", "t2");
    let admin = auth.authenticate(&bearer(&admin_secret)).await.unwrap().unwrap();
    assert!(admin.can("anything", Action::Delete) && !admin.is_admin(), "rights of an admin, no admin authority");

    directory
        .apply(identity::Command::RevokeCredential {
            user: "bob".into(),
            kind: identity::CredentialKind::AppToken,
            id: "t1".into(),
        })
        .unwrap();
    assert!(auth.authenticate(&basic("bob", &secret)).await.is_err());
    assert!(auth.authenticate(&bearer(&secret)).await.is_err());
}

#[tokio::test]
async fn locked_accounts_cannot_log_in() {
    let (directory, auth) = setup();
    let secret = app_token(&directory, "bob", "t1");
    let update = identity::UserUpdate { locked: Some(true), ..identity::UserUpdate::default() };
    directory.apply(identity::Command::UpdateUser { name: "bob".into(), update }).unwrap();
    assert!(matches!(auth.authenticate_password("bob", "bob-pw").await, Err(AuthError::BadCredentials)));
    assert!(auth.authenticate(&bearer(&secret)).await.is_err());
}

#[tokio::test]
async fn group_targets_apply_to_members_at_the_next_request() {
    let (directory, auth) = setup();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    assert!(!bob.can("docker-local/web", Action::Read));
    let group = identity::GroupRecord::new("devs");
    let members = Some(["bob".to_owned()].into());
    directory.apply(identity::Command::SaveGroup { group, members, replace: false }).unwrap();
    let section = identity::PermissionSection {
        kind: identity::ResourceKind::Repo,
        targets: vec!["docker-local".into()],
        include_patterns: vec!["**".into()],
        exclude_patterns: Vec::new(),
        users: Default::default(),
        groups: [("devs".to_owned(), identity::ActionSet::of(&[identity::Action::Read]))].into(),
    };
    let target =
        identity::PermissionTarget { name: "t".into(), sections: vec![section], created_ms: 0, modified_ms: 0 };
    directory.apply(identity::Command::SavePermissionTarget { target, replace: false }).unwrap();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    assert!(bob.can("docker-local/web", Action::Read) && !bob.can("docker-local/web", Action::Write));
    directory.apply(identity::Command::DeleteGroup { name: "devs".into() }).unwrap();
    let bob = auth.authenticate_password("bob", "bob-pw").await.unwrap();
    assert!(!bob.can("docker-local/web", Action::Read));
}
