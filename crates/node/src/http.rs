//! The HTTP server (every REST surface, health, metrics) and the gRPC server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio_util::sync::CancellationToken;

use flotilla_api::AppState;
use flotilla_raft::network::service::raft_service;
use flotilla_raft::types::Raft;

use crate::telemetry::{self, Metrics};

/// Serves HTTP until `shutdown`, then drains in-flight requests.
pub async fn serve_http(
    addr: SocketAddr,
    state: AppState,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(state, metrics);
    // Without TCP_NODELAY a small response waits on Nagle plus the peer's delayed ACK (~40 ms).
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}

/// The whole HTTP surface of a node.
pub fn router(state: AppState, metrics: Arc<Metrics>) -> Router {
    let health =
        Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz)).with_state(state.clone());
    let metrics_route = Router::new().route("/metrics", get(telemetry::serve_metrics)).with_state(metrics.clone());
    Router::new()
        .merge(flotilla_api::oci::router(&state))
        .with_state(state)
        .merge(health)
        .merge(metrics_route)
        .layer(axum::middleware::from_fn_with_state(metrics, telemetry::track))
}

/// Ready when this node knows a leader and can fence a read through it.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.meta.read().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

/// Serves the inter-node gRPC services until `shutdown`.
pub async fn serve_rpc(addr: SocketAddr, raft: Raft, shutdown: CancellationToken) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .add_service(raft_service(raft))
        .serve_with_shutdown(addr, shutdown.cancelled_owned())
        .await?;
    Ok(())
}
