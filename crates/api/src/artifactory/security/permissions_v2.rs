//! `/artifactory/api/v2/security/permissions[/{name}]`: permission targets in
//! Artifactory's v2 shape (what pyartifactory sends with `api_version=2`).
//!
//! ```json
//! {"name": "devs",
//!  "repo": {"repositories": ["docker-local"], "include-patterns": ["**"], "exclude-patterns": [],
//!           "actions": {"users": {"bob": ["read", "write"]}, "groups": {"devs": ["read"]}}},
//!  "build": {…}, "releaseBundle": {…}}
//! ```
//!
//! Beside Artifactory's three sections, Flotilla's own resource kinds have
//! sections of the same shape: `ociRepository` (OCI repository name
//! patterns), `schemaGroup` and `project`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use flotilla_model::identity::{self, Action, ActionSet, PermissionSection, PermissionTarget, ResourceKind};

use super::super::{body, require_admin, text, ArtifactoryError};
use super::Listed;
use crate::state::AppState;

/// The v2 section names, in the order answers list them.
const SECTIONS: [(&str, ResourceKind); 6] = [
    ("repo", ResourceKind::Repo),
    ("build", ResourceKind::Build),
    ("releaseBundle", ResourceKind::ReleaseBundle),
    ("ociRepository", ResourceKind::OciRepository),
    ("schemaGroup", ResourceKind::SchemaGroup),
    ("project", ResourceKind::Project),
];

/// The repository list of a build section.
const BUILD_REPOSITORY: &str = "artifactory-build-info";

/// One v2 section.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SectionV2 {
    #[serde(default)]
    pub repositories: Vec<String>,
    #[serde(default)]
    pub actions: ActionsV2,
    #[serde(rename = "include-patterns", default, skip_serializing_if = "Option::is_none")]
    pub include_patterns: Option<Vec<String>>,
    #[serde(rename = "exclude-patterns", default, skip_serializing_if = "Option::is_none")]
    pub exclude_patterns: Option<Vec<String>>,
}

/// Who holds which actions, by v2 action word.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ActionsV2 {
    #[serde(default)]
    pub users: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub groups: Option<BTreeMap<String, Vec<String>>>,
}

/// A whole v2 permission target; sections are keyed by their v2 names.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PermissionV2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub sections: BTreeMap<String, Option<SectionV2>>,
}

/// `GET /api/v2/security/permissions`: `[{"name", "uri"}]`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ArtifactoryError> {
    list_in(&state, &headers, "v2/security/permissions").await
}

/// The targets as `[{"name", "uri"}]`, their `uri`s under `collection`.
pub(super) async fn list_in(
    state: &AppState,
    headers: &HeaderMap,
    collection: &str,
) -> Result<Response, ArtifactoryError> {
    require_admin(state, headers).await?;
    let targets = state.catalog().await?.identity().permission_targets()?;
    let listed: Vec<Listed> =
        targets.into_iter().map(|target| Listed::new(headers, collection, target.name, None)).collect();
    Ok(Json(listed).into_response())
}

/// `GET /api/v2/security/permissions/{name}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let target = load(&state, &name).await?.ok_or_else(|| not_found(&name))?;
    Ok(Json(view(&target)).into_response())
}

/// `HEAD /api/v2/security/permissions/{name}`: 200 if it exists, else 404.
pub async fn exists(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let found = load(&state, &name).await?.is_some();
    Ok(if found { StatusCode::OK } else { StatusCode::NOT_FOUND }.into_response())
}

/// `POST /api/v2/security/permissions/{name}`: creates a target (201; 409 if it exists).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let target = parse(&name, body::json(request).await?)?;
    let command = identity::Command::SavePermissionTarget { target, replace: false };
    state.meta.write(command).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `PUT /api/v2/security/permissions/{name}`: creates (201) or replaces (200) a target.
pub async fn create_or_replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Body,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    let target = parse(&name, body::json(request).await?)?;
    let existed = load(&state, &name).await?.is_some();
    let command = identity::Command::SavePermissionTarget { target, replace: true };
    state.meta.write(command).await?;
    Ok(if existed { StatusCode::OK } else { StatusCode::CREATED }.into_response())
}

/// `DELETE /api/v2/security/permissions/{name}` (and the v1 path).
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ArtifactoryError> {
    require_admin(&state, &headers).await?;
    state.meta.write(identity::Command::DeletePermissionTarget { name: name.clone() }).await?;
    Ok(text(StatusCode::OK, format!("Permission Target '{name}' has been removed successfully.")))
}

pub(super) async fn load(state: &AppState, name: &str) -> Result<Option<PermissionTarget>, ArtifactoryError> {
    let catalog = state.catalog().await?;
    Ok(catalog.identity().permission_target(name)?)
}

pub(super) fn not_found(name: &str) -> ArtifactoryError {
    ArtifactoryError::new(StatusCode::NOT_FOUND, format!("Permission target '{name}' does not exist"))
}

/// The v2 document of a target.
fn view(target: &PermissionTarget) -> PermissionV2 {
    let mut sections = BTreeMap::new();
    for (key, kind) in SECTIONS {
        if let Some(section) = target.section(kind) {
            let words = |holders: &BTreeMap<String, ActionSet>| -> BTreeMap<String, Vec<String>> {
                holders
                    .iter()
                    .map(|(name, actions)| (name.clone(), actions.actions().map(|a| a.word().to_owned()).collect()))
                    .collect()
            };
            let view = SectionV2 {
                repositories: section.targets.clone(),
                actions: ActionsV2 { users: Some(words(&section.users)), groups: Some(words(&section.groups)) },
                include_patterns: Some(section.include_patterns.clone()),
                exclude_patterns: Some(section.exclude_patterns.clone()),
            };
            sections.insert(key.to_owned(), Some(view));
        }
    }
    PermissionV2 { name: Some(target.name.clone()), sections }
}

/// The target a v2 document describes: unknown section names and action words are 400.
fn parse(name: &str, document: PermissionV2) -> Result<PermissionTarget, ArtifactoryError> {
    if let Some(body_name) = document.name.as_deref().filter(|body_name| *body_name != name) {
        return Err(bad(format!("the body names permission target '{body_name}' but the path names '{name}'")));
    }
    let mut sections = Vec::new();
    for (key, section) in document.sections {
        let Some((_, kind)) = SECTIONS.iter().find(|(section_key, _)| *section_key == key) else {
            return Err(bad(format!("unknown permission section '{key}'")));
        };
        let Some(section) = section else { continue };
        let default_include = if *kind == ResourceKind::Build { Vec::new() } else { vec!["**".to_owned()] };
        let mut targets = section.repositories;
        if *kind == ResourceKind::Build && targets.is_empty() {
            targets.push(BUILD_REPOSITORY.to_owned());
        }
        sections.push(PermissionSection {
            kind: *kind,
            targets,
            include_patterns: section.include_patterns.unwrap_or(default_include),
            exclude_patterns: section
                .exclude_patterns
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect(),
            users: action_sets(section.actions.users.unwrap_or_default())?,
            groups: action_sets(section.actions.groups.unwrap_or_default())?,
        });
    }
    Ok(PermissionTarget { name: name.to_owned(), sections, created_ms: 0, modified_ms: 0 })
}

/// Action words (v2) or letters (v1) per holder, as action sets.
pub(super) fn action_sets(
    holders: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, ActionSet>, ArtifactoryError> {
    holders
        .into_iter()
        .map(|(holder, words)| {
            let actions = words
                .iter()
                .map(|word| Action::parse(word).ok_or_else(|| bad(format!("unknown permission action '{word}'"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((holder, ActionSet::of(&actions)))
        })
        .collect()
}

fn bad(message: String) -> ArtifactoryError {
    ArtifactoryError::new(StatusCode::BAD_REQUEST, message)
}
