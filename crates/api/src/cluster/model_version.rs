//! `/_cluster/model`: the model version the cluster runs and what each node
//! supports, for rolling upgrades; and the gate's self-test.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /_cluster/model` | `{"active": 1, "binary": 1, "nodes": [{"id": 1, "model_version": 1, "state": "active"}]}` |
//! | `POST /_cluster/model/probe` | a command that needs the version after this binary's: 204 once every node supports it, 503 `UNAVAILABLE` until then |

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use flotilla_model::system::{self, NodeState};

use super::{require_admin, ApiResult};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct ModelVersionView {
    /// The version the cluster runs: commands that need a newer one are refused with 503.
    pub active: u32,
    /// The newest version this node's binary supports.
    pub binary: u32,
    pub nodes: Vec<NodeModelVersion>,
}

#[derive(Debug, Serialize)]
pub struct NodeModelVersion {
    pub id: u64,
    /// The newest version the node reported (0: a node of 0.1.0).
    pub model_version: u32,
    pub state: &'static str,
}

pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<ModelVersionView>> {
    require_admin(&state, &headers).await?;
    let view = state.catalog().await?.view();
    let system = view.system();
    let nodes = system.nodes()?.into_iter().map(|node| NodeModelVersion {
        id: node.id,
        model_version: node.model_version,
        state: match node.state {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Removed => "removed",
        },
    });
    let active = system.model_version()?;
    Ok(Json(ModelVersionView { active, binary: flotilla_model::MODEL_VERSION, nodes: nodes.collect() }))
}

pub async fn probe(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<StatusCode> {
    require_admin(&state, &headers).await?;
    state.meta.write(system::Command::Probe { note: "probe".into() }).await?;
    Ok(StatusCode::NO_CONTENT)
}
