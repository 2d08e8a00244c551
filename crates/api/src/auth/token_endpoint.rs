//! The registry token endpoint: `GET /v2/token?service=&scope=…&scope=…&account=`
//! (Docker token spec) and `POST` with an OAuth2 form (`grant_type=password`).
//!
//! Mount it on a router whose state is `Arc<Authenticator>`:
//! `Router::new().route("/v2/token", any(token_endpoint)).with_state(auth)`.

use std::sync::Arc;

use axum::extract::{FromRequest, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::authenticator::DEFAULT_TOKEN_TTL;
use super::{AuthError, Authenticator, IssuedToken, Principal, Scope};

/// `aud` of tokens requested without a `service` parameter.
pub const DEFAULT_SERVICE: &str = "flotilla";
/// Most scopes granted in one token; bounds the token's size.
const MAX_SCOPES_PER_REQUEST: usize = 32;
/// Longest `service` parameter accepted (bytes).
const MAX_SERVICE_BYTES: usize = 255;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

type Params = Vec<(String, String)>;

/// The `error` parameter of a Bearer challenge (RFC 6750 §3.1), as the Docker
/// token flow uses it. A closed set, so the value never needs escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// The token is valid but lacks the scope the request needs; a token asked
    /// for with the challenge's `scope` would hold it.
    InsufficientScope,
}

impl BearerError {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

/// `WWW-Authenticate: Bearer realm="…",service="…"[,scope="…"][,error="…"]`.
/// Characters that would break the quoted values (`"`, `\`, controls,
/// non-ASCII) are dropped.
pub fn bearer_challenge(realm: &str, service: &str, scope: Option<&str>, error: Option<BearerError>) -> HeaderValue {
    let mut value = format!(r#"Bearer realm="{}",service="{}""#, quotable(realm), quotable(service));
    if let Some(scope) = scope {
        value.push_str(&format!(r#",scope="{}""#, quotable(scope)));
    }
    if let Some(error) = error {
        value.push_str(&format!(r#",error="{}""#, quotable(error.as_str())));
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

fn quotable(text: &str) -> String {
    text.chars().filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '"' && *c != '\\').collect()
}

/// The token endpoint handler; its state is `Arc<Authenticator>`.
///
/// Authenticates with the request's credentials (anonymous when none), or with
/// `username`/`password` of a `grant_type=password` form, grants of each
/// requested scope only what the principal may do, and answers 200
/// `{"token","access_token","expires_in","issued_at"}`. Bad credentials → 401
/// with an OCI error body.
pub async fn token_endpoint(State(auth): State<Arc<Authenticator>>, request: Request) -> Response {
    match issue(&auth, request).await {
        Ok(issued) => Json(TokenResponse::from(issued)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn issue(auth: &Authenticator, request: Request) -> Result<IssuedToken, EndpointError> {
    let headers = request.headers().clone();
    let params = read_params(request).await?;
    let principal = requesting_principal(auth, &headers, &params).await?;
    let service = param(&params, "service").unwrap_or(DEFAULT_SERVICE);
    if service.len() > MAX_SERVICE_BYTES {
        return Err(EndpointError::BadRequest("service is too long"));
    }
    let scopes = requested_scopes(&params)?;
    Ok(auth.issue_token(&principal, service, &scopes, DEFAULT_TOKEN_TTL)?)
}

async fn requesting_principal(
    auth: &Authenticator,
    headers: &http::HeaderMap,
    params: &Params,
) -> Result<Principal, EndpointError> {
    match param(params, "grant_type") {
        None => Ok(auth.principal(headers).await?),
        Some("password") => {
            let user = param(params, "username").unwrap_or_default();
            let password = param(params, "password").unwrap_or_default();
            Ok(auth.authenticate_password(user, password).await?)
        }
        Some(_) => Err(EndpointError::BadRequest("unsupported grant_type")),
    }
}

/// Query parameters, plus the form body of a `POST`.
async fn read_params(request: Request) -> Result<Params, EndpointError> {
    let Query(mut params) = Query::<Params>::try_from_uri(request.uri())
        .map_err(|_| EndpointError::BadRequest("malformed query string"))?;
    match *request.method() {
        Method::GET | Method::HEAD => Ok(params),
        Method::POST if has_form_body(&request) => {
            let Form(form) = Form::<Params>::from_request(request, &())
                .await
                .map_err(|_| EndpointError::BadRequest("malformed form body"))?;
            params.extend(form);
            Ok(params)
        }
        Method::POST => Ok(params),
        _ => Err(EndpointError::MethodNotAllowed),
    }
}

fn has_form_body(request: &Request) -> bool {
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
    content_type.is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with(FORM_CONTENT_TYPE))
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// Every `scope` parameter, each possibly space-separated; unparsable ones are
/// skipped (they grant nothing), too many are refused.
fn requested_scopes(params: &Params) -> Result<Vec<Scope>, EndpointError> {
    let texts = params.iter().filter(|(key, _)| key == "scope").flat_map(|(_, value)| value.split_ascii_whitespace());
    let mut scopes = Vec::new();
    for text in texts {
        if scopes.len() == MAX_SCOPES_PER_REQUEST {
            return Err(EndpointError::BadRequest("too many scopes"));
        }
        match Scope::parse(text) {
            Ok(scope) => scopes.push(scope),
            Err(error) => tracing::debug!(%error, "ignoring an unparsable scope"),
        }
    }
    Ok(scopes)
}

/// The 200 body; `token` and `access_token` are the same (clients read either).
#[derive(Serialize)]
struct TokenResponse {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

impl From<IssuedToken> for TokenResponse {
    fn from(issued: IssuedToken) -> Self {
        TokenResponse {
            access_token: issued.token.clone(),
            token: issued.token,
            expires_in: issued.expires_in,
            issued_at: issued.issued_at,
        }
    }
}

enum EndpointError {
    Auth(AuthError),
    BadRequest(&'static str),
    MethodNotAllowed,
}

impl From<AuthError> for EndpointError {
    fn from(error: AuthError) -> Self {
        EndpointError::Auth(error)
    }
}

impl IntoResponse for EndpointError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            EndpointError::Auth(error) => (error.status(), error.to_string()),
            EndpointError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.to_owned()),
            EndpointError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "use GET or POST".to_owned()),
        };
        let body = json!({"errors": [{"code": oci_code(status), "message": message, "detail": null}]});
        (status, Json(body)).into_response()
    }
}

fn oci_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => "UNSUPPORTED",
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_shapes() {
        let challenge = bearer_challenge("http://h:5000/v2/token", "flotilla", Some("repository:a/b:pull,push"), None);
        assert_eq!(
            challenge.to_str().unwrap(),
            r#"Bearer realm="http://h:5000/v2/token",service="flotilla",scope="repository:a/b:pull,push""#
        );
        let plain = bearer_challenge("r", "s", None, None);
        assert_eq!(plain.to_str().unwrap(), r#"Bearer realm="r",service="s""#);
        let hostile = bearer_challenge("r\"\r\n,x=\\", "sé", None, None);
        assert_eq!(hostile.to_str().unwrap(), r#"Bearer realm="r,x=",service="s""#);
    }

    #[test]
    fn challenge_with_error_parameter() {
        let insufficient = BearerError::InsufficientScope;
        let challenge = bearer_challenge("r", "s", Some("repository:a:delete"), Some(insufficient));
        assert_eq!(
            challenge.to_str().unwrap(),
            r#"Bearer realm="r",service="s",scope="repository:a:delete",error="insufficient_scope""#
        );
        let hostile = bearer_challenge("r", "s", Some("repository:a\",error=\"x:pull"), Some(insufficient));
        assert_eq!(
            hostile.to_str().unwrap(),
            r#"Bearer realm="r",service="s",scope="repository:a,error=x:pull",error="insufficient_scope""#,
            "a quote in the scope cannot open a parameter of its own"
        );
        let unscoped = bearer_challenge("r", "s", None, Some(insufficient));
        assert_eq!(unscoped.to_str().unwrap(), r#"Bearer realm="r",service="s",error="insufficient_scope""#);
    }

    proptest::proptest! {
        #[test]
        fn challenge_values_stay_quoted_strings(realm in "\\PC{0,40}", service in "\\PC{0,20}", scope in "\\PC{0,60}") {
            let value = bearer_challenge(&realm, &service, Some(&scope), Some(BearerError::InsufficientScope));
            let text = value.to_str().unwrap();
            // Exactly the eight quotes of four quoted parameters, none escaped.
            proptest::prop_assert_eq!(text.matches('"').count(), 8, "{}", text);
            proptest::prop_assert!(!text.contains('\\'));
            proptest::prop_assert!(text.ends_with(r#",error="insufficient_scope""#));
        }
    }
}
