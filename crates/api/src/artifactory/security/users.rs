//! `/artifactory/api/security/users[/{name}]`: list, get, create or replace
//! (PUT), update (POST) and delete users.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use flotilla_model::identity::{self, UserRecord, UserUpdate};

use super::super::{body, require_admin, text, ArtifactoryError};
use super::{Listed, REALM};
use crate::auth::hash_password;
use crate::error::ServiceError;
use crate::state::AppState;

/// Longest password accepted (bytes): argon2 runs over all of it.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest e-mail address (RFC 5321).
const MAX_EMAIL_BYTES: usize = 254;

/// A user as Artifactory answers it (`application/vnd.org.jfrog.artifactory.security.User+json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub name: String,
    pub email: String,
    pub admin: bool,
    pub profile_updatable: bool,
    #[serde(rename = "disableUIAccess")]
    pub disable_ui_access: bool,
    pub internal_password_disabled: bool,
    pub realm: &'static str,
    pub groups: Vec<String>,
    pub offline_mode: bool,
    pub locked: bool,
}

/// A user document as clients send it; every field optional (PUT of a new
/// user needs `email` and `password`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub admin: Option<bool>,
    pub profile_updatable: Option<bool>,
    #[serde(rename = "disableUIAccess")]
    pub disable_ui_access: Option<bool>,
    pub internal_password_disabled: Option<bool>,
    pub groups: Option<Vec<String>>,
}

/// `GET /api/security/users`: `[{"name", "uri", "realm"}]`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let users = state.catalog().await?.identity().users()?;
    let listed: Vec<Listed> =
        users.into_iter().map(|user| Listed::new(&headers, "security/users", user.name, Some(REALM))).collect();
    Ok(Json(listed).into_response())
}

/// `GET /api/security/users/{name}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    Ok(Json(view(&state, &name).await?).into_response())
}

/// `PUT /api/security/users/{name}`: creates the user (201; `email` and
/// `password` required), or replaces an existing one's settings (200; the
/// password is kept unless given).
pub async fn create_or_replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let body: UserBody = body::json(request).await?;
    check_name(&name, body.name.as_deref())?;
    let exists = state.catalog().await?.identity().user(&name)?;
    if exists.is_some() {
        let update = UserUpdate {
            email: Some(match body.email.as_deref() {
                Some(email) => checked_email(email)?,
                None => exists.map(|user| user.email).unwrap_or_default(),
            }),
            password_hash: password_hash(body.password).await?,
            admin: Some(body.admin.unwrap_or(false)),
            profile_updatable: Some(body.profile_updatable.unwrap_or(true)),
            disable_ui_access: Some(body.disable_ui_access.unwrap_or(false)),
            internal_password_disabled: Some(body.internal_password_disabled.unwrap_or(false)),
            locked: None,
            groups: body.groups.map(|groups| groups.into_iter().collect()),
        };
        state.meta.write(identity::Command::UpdateUser { name, update }).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let email = checked_email(body.email.as_deref().ok_or_else(|| bad("an e-mail address is required"))?)?;
    let hash = password_hash(body.password).await?.ok_or_else(|| bad("a password is required"))?;
    let mut user = UserRecord::new(name, email, hash);
    user.admin = body.admin.unwrap_or(false);
    user.profile_updatable = body.profile_updatable.unwrap_or(true);
    user.disable_ui_access = body.disable_ui_access.unwrap_or(false);
    user.internal_password_disabled = body.internal_password_disabled.unwrap_or(false);
    let groups = body.groups.map(|groups| groups.into_iter().collect::<BTreeSet<_>>());
    state.meta.write(identity::Command::SaveUser { user, groups, replace: false }).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /api/security/users/{name}`: changes the fields given (200).
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let body: UserBody = body::json(request).await?;
    check_name(&name, body.name.as_deref())?;
    let update = UserUpdate {
        email: body.email.as_deref().map(checked_email).transpose()?,
        password_hash: password_hash(body.password).await?,
        admin: body.admin,
        profile_updatable: body.profile_updatable,
        disable_ui_access: body.disable_ui_access,
        internal_password_disabled: body.internal_password_disabled,
        locked: None,
        groups: body.groups.map(|groups| groups.into_iter().collect()),
    };
    state.meta.write(identity::Command::UpdateUser { name, update }).await?;
    Ok(StatusCode::OK.into_response())
}

/// `DELETE /api/security/users/{name}`: removes the user with its group
/// memberships, permissions and credentials. An administrator cannot
/// remove their own account (someone must remain able to manage the others).
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    let caller = require_admin(&state, &headers).await?;
    if caller.name == name {
        return Err(bad("an administrator cannot delete their own account"));
    }
    state.meta.write(identity::Command::DeleteUser { name: name.clone() }).await?;
    Ok(text(StatusCode::OK, format!("User '{name}' has been removed successfully.")))
}

async fn view(state: &AppState, name: &str) -> Result<UserView, ArtifactoryError> {
    let catalog = state.catalog().await?;
    let reader = catalog.identity();
    let Some(user) = reader.user(name)? else {
        return Err(ArtifactoryError::new(StatusCode::NOT_FOUND, format!("User '{name}' does not exist")));
    };
    let groups = reader.groups_of(name)?.into_iter().collect();
    Ok(UserView {
        name: user.name,
        email: user.email,
        admin: user.admin,
        profile_updatable: user.profile_updatable,
        disable_ui_access: user.disable_ui_access,
        internal_password_disabled: user.internal_password_disabled,
        realm: REALM,
        groups,
        offline_mode: false,
        locked: user.locked,
    })
}

/// The name in the body, when there is one, must be the one in the path.
fn check_name(path: &str, body: Option<&str>) -> Result<(), ArtifactoryError> {
    match body {
        Some(body) if body != path => Err(bad(format!("the body names user '{body}' but the path names '{path}'"))),
        _ => Ok(()),
    }
}

/// A syntactically valid address: `local@domain.tld`, no spaces, at most 254 bytes.
fn checked_email(email: &str) -> Result<String, ArtifactoryError> {
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.split('.').count() >= 2
                && domain.split('.').all(|label| !label.is_empty())
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(bad(format!("'{email}' is not a valid e-mail address")))
    }
}

/// The argon2 hash of a new password (off the async threads), if one was given.
async fn password_hash(password: Option<String>) -> Result<Option<String>, ArtifactoryError> {
    let Some(password) = password else { return Ok(None) };
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(bad(format!("a password is 1 to {MAX_PASSWORD_BYTES} bytes")));
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(ServiceError::internal)?;
    Ok(Some(hash))
}

fn bad(message: impl Into<String>) -> ArtifactoryError {
    ArtifactoryError::new(StatusCode::BAD_REQUEST, message)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn email_addresses() {
        assert!(checked_email("bob@example.com").is_ok());
        assert!(checked_email("a.b+c@sub.example.org").is_ok());
        for bad in [
            "",
            "bob",
            "bob@",
            "@example.com",
            "bob@example",
            "bob@@example.com",
            "bo b@example.com",
            "bob@example..com",
        ] {
            assert!(checked_email(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn email_check_never_panics(text in "\\PC{0,300}") {
            let _ = checked_email(&text);
        }
    }
}
