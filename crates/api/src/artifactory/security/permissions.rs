//! `/artifactory/api/security/permissions[/{name}]`: permission targets in
//! Artifactory's v1 shape, which covers repositories only:
//!
//! ```json
//! {"name": "devs", "includesPattern": "**", "excludesPattern": "", "repositories": ["docker-local"],
//!  "principals": {"users": {"bob": ["r", "w"]}, "groups": {"devs": ["r"]}}}
//! ```
//!
//! A v1 PUT replaces the target's repository section and keeps its other
//! sections (builds, projects…) as they are.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use flotilla_model::identity::{self, ActionSet, PermissionSection, PermissionTarget, ResourceKind};

use super::super::{body, require_admin, ArtifactoryError};
use super::permissions_v2::{action_sets, list_in, load, not_found};
use crate::state::AppState;

/// A v1 permission target.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionV1 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub includes_pattern: Option<String>,
    #[serde(default)]
    pub excludes_pattern: Option<String>,
    #[serde(default)]
    pub repositories: Option<Vec<String>>,
    #[serde(default)]
    pub principals: Option<PrincipalsV1>,
}

/// Who holds which actions, by v1 letter.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PrincipalsV1 {
    #[serde(default)]
    pub users: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub groups: Option<BTreeMap<String, Vec<String>>>,
}

/// `GET /api/security/permissions`: `[{"name", "uri"}]`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    list_in(&state, &headers, "security/permissions").await
}

/// `GET /api/security/permissions/{name}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let target = load(&state, &name).await?.ok_or_else(|| not_found(&name))?;
    Ok(Json(view(&target)).into_response())
}

/// `PUT /api/security/permissions/{name}`: creates (201) or replaces the
/// repository section of (200) a target.
pub async fn create_or_replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let document: PermissionV1 = body::json(request).await?;
    if let Some(body_name) = document.name.as_deref().filter(|body_name| *body_name != name) {
        let message = format!("the body names permission target '{body_name}' but the path names '{name}'");
        return Err(ArtifactoryError::new(StatusCode::BAD_REQUEST, message));
    }
    let section = section(document)?;
    let existing = load(&state, &name).await?;
    let existed = existing.is_some();
    let mut target = existing.unwrap_or(PermissionTarget {
        name: name.clone(),
        sections: Vec::new(),
        created_ms: 0,
        modified_ms: 0,
    });
    target.sections.retain(|section| section.kind != ResourceKind::Repo);
    target.sections.insert(0, section);
    let command = identity::Command::SavePermissionTarget { target, replace: true };
    state.meta.write(command).await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::CREATED }.into_response())
}

/// The v1 document of a target: its repository section (empty if it has none).
fn view(target: &PermissionTarget) -> PermissionV1 {
    let letters = |holders: &BTreeMap<String, ActionSet>| -> BTreeMap<String, Vec<String>> {
        holders
            .iter()
            .map(|(name, actions)| (name.clone(), actions.actions().map(|a| a.letter().to_owned()).collect()))
            .collect()
    };
    let section = target.section(ResourceKind::Repo);
    let includes =
        section.map(|s| s.include_patterns.join(",")).filter(|p| !p.is_empty()).unwrap_or_else(|| "**".into());
    PermissionV1 {
        name: Some(target.name.clone()),
        includes_pattern: Some(includes),
        excludes_pattern: Some(section.map(|s| s.exclude_patterns.join(",")).unwrap_or_default()),
        repositories: Some(section.map(|s| s.targets.clone()).unwrap_or_default()),
        principals: Some(PrincipalsV1 {
            users: Some(section.map(|s| letters(&s.users)).unwrap_or_default()),
            groups: Some(section.map(|s| letters(&s.groups)).unwrap_or_default()),
        }),
    }
}

/// The repository section a v1 document describes; patterns are comma-separated.
fn section(document: PermissionV1) -> Result<PermissionSection, ArtifactoryError> {
    let patterns = |text: Option<String>| -> Vec<String> {
        text.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
    };
    let includes = patterns(document.includes_pattern);
    let principals = document.principals.unwrap_or_default();
    Ok(PermissionSection {
        kind: ResourceKind::Repo,
        targets: document.repositories.unwrap_or_default(),
        include_patterns: if includes.is_empty() { vec!["**".to_owned()] } else { includes },
        exclude_patterns: patterns(document.excludes_pattern),
        users: action_sets(principals.users.unwrap_or_default())?,
        groups: action_sets(principals.groups.unwrap_or_default())?,
    })
}
