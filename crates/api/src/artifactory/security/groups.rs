//! `/artifactory/api/security/groups[/{name}]`: list, get (`?includeUsers=true`
//! adds the members), create or replace (PUT), update (POST) and delete groups.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use flotilla_model::identity::{self, GroupRecord, GroupUpdate};

use super::super::{body, require_admin, text, ArtifactoryError};
use super::{Listed, REALM};
use crate::state::AppState;

/// Longest group description (bytes).
const MAX_DESCRIPTION_BYTES: usize = 4096;

/// A group as Artifactory answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub name: String,
    pub description: String,
    pub auto_join: bool,
    pub new_user_default: bool,
    pub admin_privileges: bool,
    pub realm: &'static str,
    pub external: bool,
    pub watch_manager: bool,
    pub policy_manager: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_names: Option<Vec<String>>,
}

/// A group document as clients send it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub auto_join: Option<bool>,
    /// dohq-artifactory's name for `autoJoin`.
    pub new_user_default: Option<bool>,
    pub admin_privileges: Option<bool>,
    pub user_names: Option<Vec<String>>,
}

impl GroupBody {
    fn auto_join(&self) -> Option<bool> {
        self.auto_join.or(self.new_user_default)
    }

    fn members(&self) -> Option<BTreeSet<String>> {
        self.user_names.as_ref().map(|names| names.iter().cloned().collect())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupQuery {
    #[serde(default)]
    pub include_users: Option<String>,
}

/// `GET /api/security/groups`: `[{"name", "uri"}]`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let groups = state.catalog().await?.identity().groups()?;
    let listed: Vec<Listed> =
        groups.into_iter().map(|group| Listed::new(&headers, "security/groups", group.name, None)).collect();
    Ok(Json(listed).into_response())
}

/// `GET /api/security/groups/{name}[?includeUsers=true]`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<GroupQuery>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let include_users = query.include_users.as_deref().is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let catalog = state.catalog().await?;
    let reader = catalog.identity();
    let Some(group) = reader.group(&name)? else {
        return Err(ArtifactoryError::new(StatusCode::NOT_FOUND, format!("Group '{name}' does not exist")));
    };
    let user_names = if include_users { Some(reader.members_of(&name)?.into_iter().collect()) } else { None };
    Ok(Json(GroupView {
        name: group.name,
        description: group.description,
        auto_join: group.auto_join,
        new_user_default: group.auto_join,
        admin_privileges: group.admin_privileges,
        realm: REALM,
        external: false,
        watch_manager: false,
        policy_manager: false,
        user_names,
    })
    .into_response())
}

/// `PUT /api/security/groups/{name}`: creates the group (201) or replaces an
/// existing one's settings (200); `userNames`, when sent, replaces its members.
pub async fn create_or_replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let body: GroupBody = body::json(request).await?;
    check(&name, &body)?;
    let catalog = state.catalog().await?;
    let existed = catalog.identity().group(&name)?.is_some();
    let mut group = GroupRecord::new(name);
    group.description = body.description.clone().unwrap_or_default();
    group.auto_join = body.auto_join().unwrap_or(false);
    group.admin_privileges = body.admin_privileges.unwrap_or(false);
    let command = identity::Command::SaveGroup { group, members: body.members(), replace: true };
    state.meta.write(command).await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::CREATED }.into_response())
}

/// `POST /api/security/groups/{name}`: changes the fields given (200).
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let body: GroupBody = body::json(request).await?;
    check(&name, &body)?;
    let update = GroupUpdate {
        description: body.description.clone(),
        auto_join: body.auto_join(),
        admin_privileges: body.admin_privileges,
        members: body.members(),
    };
    state.meta.write(identity::Command::UpdateGroup { name, update }).await?;
    Ok(StatusCode::OK.into_response())
}

/// `DELETE /api/security/groups/{name}`: removes the group, its memberships
/// and its entries in permission targets.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    state.meta.write(identity::Command::DeleteGroup { name: name.clone() }).await?;
    Ok(text(StatusCode::OK, format!("Group '{name}' has been removed successfully.")))
}

fn check(name: &str, body: &GroupBody) -> Result<(), ArtifactoryError> {
    if let Some(body_name) = body.name.as_deref().filter(|body_name| *body_name != name) {
        let message = format!("the body names group '{body_name}' but the path names '{name}'");
        return Err(ArtifactoryError::new(StatusCode::BAD_REQUEST, message));
    }
    if body.description.as_ref().is_some_and(|description| description.len() > MAX_DESCRIPTION_BYTES) {
        let message = format!("a description is at most {MAX_DESCRIPTION_BYTES} bytes");
        return Err(ArtifactoryError::new(StatusCode::BAD_REQUEST, message));
    }
    Ok(())
}
