//! The HTTP server (every REST surface, health, metrics) and the gRPC server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use flotilla_api::sendfile::{self, SendfileListener};
use flotilla_api::AppState;
use flotilla_raft::network::service::raft_service;
use flotilla_raft::network::tls::RpcTls;
use flotilla_raft::MetaClient;

use crate::blobs::maintain::Maintainer;
use crate::blobs::service::blob_service;
use crate::cluster::service::cluster_service;
use crate::cluster::ClusterView;

use crate::telemetry::{self, Metrics};
use crate::upload_forward::{self, UploadForwarder};

/// Serves HTTP until `shutdown`, then drains in-flight requests.
pub async fn serve_http(
    addr: SocketAddr,
    state: AppState,
    metrics: Arc<Metrics>,
    uploads: Arc<UploadForwarder>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = SendfileListener::new(tokio::net::TcpListener::bind(addr).await?, metrics.sendfile_bytes());
    let app = router(state, metrics, uploads).into_make_service_with_connect_info::<sendfile::Sender>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}

/// The whole HTTP surface of a node; upload-session requests of sessions
/// held by another node go there.
pub fn router(state: AppState, metrics: Arc<Metrics>, uploads: Arc<UploadForwarder>) -> Router {
    let health = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state.clone());
    let metrics_route = Router::new().route("/metrics", get(telemetry::serve_metrics)).with_state(metrics.clone());
    Router::new()
        .merge(flotilla_api::oci::router(&state))
        .merge(flotilla_api::cluster::router())
        .merge(flotilla_api::artifactory::router())
        .merge(flotilla_api::quay::router())
        .with_state(state)
        .merge(health)
        .merge(metrics_route)
        .layer(axum::middleware::from_fn_with_state(uploads, upload_forward::forward_uploads))
        .layer(axum::middleware::from_fn_with_state(metrics, telemetry::track))
}

/// Alive unless this node's Raft has stopped for good: openraft stops it on
/// a storage error (a full disk, a failed fsync) and only a restart brings
/// it back, so a liveness probe must see it.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let running = state.meta.raft().metrics().borrow().running_state.clone();
    liveness(&running)
}

fn liveness(running: &Result<(), openraft::error::Fatal<flotilla_raft::NodeId>>) -> (StatusCode, String) {
    match running {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(fatal) => (StatusCode::SERVICE_UNAVAILABLE, format!("raft stopped; restart the node: {fatal}")),
    }
}

/// Ready when this node knows a leader and can fence a read through it.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.meta.read().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

/// What the inter-node gRPC server serves.
pub struct RpcServices {
    pub view: Arc<ClusterView>,
    pub meta: MetaClient,
    /// The local disk store and its maintenance (peers reach them through the blob service).
    pub blobs: Maintainer,
}

/// Serves the inter-node gRPC services (Raft, cluster, blobs) until
/// `shutdown`; with `tls`, only to peers holding a cluster certificate.
pub async fn serve_rpc(
    addr: SocketAddr,
    services: RpcServices,
    tls: Option<RpcTls>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let RpcServices { view, meta, blobs } = services;
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls.server_config())?;
    }
    server
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .add_service(raft_service(meta.clone(), shutdown.clone()))
        .add_service(cluster_service(view, meta))
        .add_service(blob_service(blobs))
        .serve_with_shutdown(addr, shutdown.cancelled_owned())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_raft_fails_the_liveness_probe() {
        assert_eq!(liveness(&Ok(())), (StatusCode::OK, "ok".into()));
        let (status, body) = liveness(&Err(openraft::error::Fatal::Panicked));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("restart"), "{body}");
    }
}
