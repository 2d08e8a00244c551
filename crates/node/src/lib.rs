//! # flotilla-node
//!
//! The `flotilla` binary's library: configuration and CLI, and the composition
//! root [`run`] that opens storage, starts Raft, the servers and the workers,
//! each a logged step, all sharing one shutdown token.
//!
//! Crate arrows: `storage` → `raft` → `api` → `node` ("is used by").

pub mod admin_cli;
pub mod admin_client;
pub mod blobs;
pub mod bootstrap;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod directory;
pub mod http;
pub mod pacer;
pub mod placement;
pub mod proto;
pub mod tasks;
pub mod telemetry;
pub mod upload_forward;
pub mod user_cli;
pub mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use flotilla_api::auth::Authenticator;
use flotilla_api::{AppState, Limits, ReadConsistency};
use flotilla_model::system::{self, NodeRecord, NodeState};
use flotilla_model::Catalog;
use flotilla_raft::lease::{self, LeaderLease};
use flotilla_raft::log_store::LogStore;
use flotilla_raft::network::client::NetworkFactory;
use flotilla_raft::network::tls::RpcTls;
use flotilla_raft::state_machine::rocks::StateMachineStore;
use flotilla_raft::{MetaClient, NodeAddr, WriteError};
use flotilla_storage::fs::FsBlobStore;
use flotilla_storage::upload::Uploads;
use flotilla_storage::Engine;

use crate::blobs::maintain::Maintainer;
use crate::blobs::peer::BlobPeers;
use crate::blobs::replicated::ReplicatedBlobStore;
use crate::blobs::RepairDebt;
use crate::cluster::admin::NodeAdmin;
use crate::cluster::join::{join, Joined};
use crate::cluster::liveness::LivenessTable;
use crate::cluster::membership::Membership;
use crate::cluster::ClusterView;
use crate::config::Config;
use crate::upload_forward::UploadForwarder;

/// Raft heartbeat interval: short, so a dead leader is noticed within the failover target.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);
/// Election timeout range; several heartbeats, randomised to avoid split votes.
///
/// openraft 0.9 gives every follower a leader lease of `ELECTION_TIMEOUT_MAX`
/// after the last heartbeat, during which it refuses votes, and a follower
/// campaigns only after that lease plus its own timeout (drawn once from this
/// range when the node starts, checked every 1.5 heartbeats): a failover
/// takes 0.6–0.9 s, with four heartbeats in the shortest timeout.
const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(200);
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(400);
/// After an election lost to competing candidates only, the next attempt waits
/// a delay drawn afresh from this range (see `flotilla_raft::election`), not
/// the node's fixed election timeout. Short next to that timeout; long next to
/// a vote's round trip (a synced write on the voter), so two candidates rarely
/// collide twice.
const SPLIT_VOTE_RETRY_DELAY: std::ops::Range<Duration> = Duration::from_millis(10)..Duration::from_millis(150);
/// How long startup waits for this node's cluster to have a leader.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    run_until(config, shutdown).await
}

/// Runs a node until `shutdown` is cancelled.
pub async fn run_until(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(node_id = config.node_id, data_dir = %config.data_dir.display(), "starting flotilla");

    flotilla_raft::network::client::set_source_address(config.rpc_addr.ip());
    let tls = match config.tls_files() {
        Some(files) => {
            let tls = RpcTls::load(&files)?;
            flotilla_raft::network::client::set_tls(tls.clone());
            tracing::info!(server_name = tls.server_name(), "inter-node gRPC is mutual TLS");
            Some(tls)
        }
        None => None,
    };

    tracing::info!("step 1: opening storage");
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
    let engine = Engine::open(&config.data_dir.join("db")).context("opening RocksDB")?;
    let blobs = Arc::new(FsBlobStore::open(config.data_dir.join("blobs")).await?);
    // Session ids name this node, so any node can send a session's requests here.
    let uploads = Arc::new(Uploads::open(config.data_dir.join("uploads")).await?.with_origin(config.node_id));

    tracing::info!("step 2: starting raft");
    let log_store = LogStore::new(engine.clone());
    let state_machine = StateMachineStore::open(engine.clone(), config.data_dir.join("snapshots")).await?;
    let catalog = Catalog::new(Arc::new(state_machine.reader()));
    // The guard against another cluster's Raft traffic is on before the RPC
    // server starts: a known cluster's id, or a new cluster's id chosen now.
    // (A new node joining learns its cluster's id from the join reply.)
    let mut new_cluster_id = match catalog.system().settings()? {
        Some(settings) => {
            flotilla_raft::network::cluster_id::set(&settings.cluster_id);
            None
        }
        None if config.join.is_empty() => {
            let id = bootstrap::new_cluster_id();
            flotilla_raft::network::cluster_id::set(&id);
            Some(id)
        }
        None => None,
    };
    let raft_config = openraft::Config {
        cluster_name: "flotilla".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL.as_millis() as u64,
        election_timeout_min: ELECTION_TIMEOUT_MIN.as_millis() as u64,
        election_timeout_max: ELECTION_TIMEOUT_MAX.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.raft_snapshot_logs),
        // Keep a tenth of a snapshot interval of log, so a briefly lagging node
        // catches up from the log and only a long-gone one needs a snapshot.
        max_in_snapshot_log_to_keep: config.raft_snapshot_logs / 10,
        snapshot_max_chunk_size: config.raft_snapshot_chunk_bytes,
        ..Default::default()
    };
    let (vote_outcomes, vote_answers) = tokio::sync::mpsc::unbounded_channel();
    let leader_lease = Arc::new(LeaderLease::new(lease::leader_lease(&raft_config)));
    let raft = flotilla_raft::types::Raft::new(
        config.node_id,
        Arc::new(raft_config.validate()?),
        NetworkFactory::new(vote_outcomes, leader_lease.clone()),
        log_store,
        state_machine,
    )
    .await?;
    lease::hold_campaigns_after_start(&raft);
    tokio::spawn(flotilla_raft::election::settle_lost_rounds(
        raft.clone(),
        config.node_id,
        vote_answers,
        SPLIT_VOTE_RETRY_DELAY,
    ));
    let meta =
        MetaClient::new(raft.clone(), config.node_id, catalog.clone(), config.read_lease.then_some(leader_lease));
    let view = Arc::new(ClusterView::new(config.node_id, raft.clone(), catalog.clone()));
    let peers = BlobPeers::default();
    let metrics = telemetry::Metrics::new();
    let rate = |bytes: u64| (bytes > 0).then_some(bytes);
    let maintainer = Maintainer {
        view: view.clone(),
        meta: meta.clone(),
        local: blobs.clone(),
        peers: peers.clone(),
        copy_rate: rate(config.copy_rate),
        scrub_rate: rate(config.scrub_rate),
        metrics: metrics.maintenance.clone(),
    };

    tracing::info!(addr = %config.rpc_addr, "step 3: serving gRPC");
    let services = http::RpcServices { view: view.clone(), meta: meta.clone(), blobs: maintainer };
    let rpc = tokio::spawn(http::serve_rpc(config.rpc_addr, services, tls, shutdown.clone()));

    tracing::info!("step 4: forming the cluster");
    if let Some(id) = form_cluster(&config, &meta, &catalog, &shutdown).await? {
        new_cluster_id = Some(id);
    }
    raft.wait(Some(LEADER_WAIT))
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .context("no leader elected")?;
    // Cluster time from the voters' median before anything is stamped with it.
    cluster::clock::sync(&view).await;
    bootstrap::ensure_cluster_defaults(&meta, config.anonymous_read, new_cluster_id).await?;
    register_node(&config, &meta).await?;

    tracing::info!(addr = %config.gossip_addr, "step 5: starting gossip");
    let settings = meta.read().await?.system().settings()?.context("the cluster settings are missing")?;
    flotilla_raft::network::cluster_id::set(&settings.cluster_id);
    // Gossip is keyed by the replicated cluster secret (domain-separated inside gossip).
    let secret = settings.token_secret;
    let liveness = LivenessTable::start(
        config.node_id,
        config.gossip_addr,
        &config.advertised_gossip(),
        secret.as_bytes(),
        shutdown.clone(),
    )
    .await?;
    let repair_debt = RepairDebt::default();
    let replicated = Arc::new(ReplicatedBlobStore::new(
        view.clone(),
        blobs.clone(),
        peers.clone(),
        liveness.clone(),
        repair_debt.clone(),
    ));

    tracing::info!(addr = %config.http_addr, "step 6: serving HTTP");
    let state = AppState {
        meta: meta.clone(),
        blobs: replicated.clone(),
        uploads: uploads.clone(),
        auth: Arc::new(Authenticator::new(Arc::new(directory::CatalogDirectory::new(catalog)))),
        limits: Limits { max_manifest_bytes: config.max_manifest_bytes, max_blob_bytes: config.max_blob_bytes },
        read_consistency: match config.read_consistency.as_str() {
            "local" => ReadConsistency::Local,
            _ => ReadConsistency::Linearizable,
        },
        service_name: config.service_name.clone(),
        cluster: Arc::new(NodeAdmin { view: view.clone(), meta: meta.clone(), liveness: liveness.clone() }),
    };
    let forwarder = Arc::new(UploadForwarder::new(view.clone(), config.rpc_addr.ip())?);
    let server = tokio::spawn(http::serve_http(config.http_addr, state, metrics.clone(), forwarder, shutdown.clone()));

    tracing::info!("step 7: starting workers");
    let duration = |text: &str| config::parse_duration(text).map_err(anyhow::Error::msg);
    let upload_expiry = duration(&config.upload_expiry)?;
    let every = |text: &str| duration(text).map(|every| (!every.is_zero()).then_some(every));
    let mut workers = workers::spawn_all(
        workers::Workers {
            meta: meta.clone(),
            blobs: replicated,
            uploads,
            metrics: metrics.clone(),
            upload_expiry,
            engine: engine.clone(),
            snapshot_interval: every(&config.raft_snapshot_interval)?,
            compaction_interval: every(&config.compaction_interval)?,
        },
        shutdown.clone(),
    );
    let runner = tasks::TaskRunner {
        meta: meta.clone(),
        view: view.clone(),
        settings: tasks::TaskSettings {
            gc_grace: duration(&config.gc_grace)?,
            gc_interval: every(&config.gc_interval)?,
            scrub_interval: every(&config.scrub_interval)?,
        },
        metrics: metrics.clone(),
        peers: peers.clone(),
    };
    workers.push(tokio::spawn(runner.run(shutdown.clone())));
    if config.auto_repair {
        let auto_repair = tasks::auto_repair::AutoRepair {
            meta: meta.clone(),
            view: view.clone(),
            liveness: liveness.clone(),
            debt: repair_debt,
        };
        workers.push(tokio::spawn(auto_repair.run(shutdown.clone())));
    }
    let reclaimer = tasks::reclaim::Reclaimer {
        meta: meta.clone(),
        local: blobs,
        clock_margin: duration(&config.gc_clock_margin)?,
        rate: (config.gc_reclaim_rate > 0).then_some(config.gc_reclaim_rate),
        metrics,
    };
    workers.push(tokio::spawn(reclaimer.run(shutdown.clone())));
    let membership = Membership {
        view,
        meta: meta.clone(),
        peers,
        voters: config.voters as usize,
        replication_factor: config.replication_factor,
    };
    workers.push(tokio::spawn(liveness.run_roster(membership.view.clone(), shutdown.clone())));
    workers.push(tokio::spawn(cluster::clock::run(membership.view.clone(), shutdown.clone())));
    workers.push(tokio::spawn(membership.run(shutdown.clone())));
    workers.push(tokio::spawn(exit_when_raft_stops(raft.clone(), shutdown.clone())));

    tracing::info!("flotilla is ready");
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    server.await??;
    rpc.await??;
    for worker in workers {
        worker.await?;
    }
    raft.shutdown().await.map_err(|error| anyhow::anyhow!("raft shutdown: {error}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Fails stop: openraft stops a node's Raft for good on a storage error (a
/// full disk, a failed fsync) and only a restart brings it back, with
/// nothing lost (every write was synced or not acknowledged). So the process
/// exits with status 1, and its supervisor (systemd, the container engine,
/// Kubernetes) starts it again.
async fn exit_when_raft_stops(raft: flotilla_raft::types::Raft, shutdown: CancellationToken) {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow().running_state {
            tracing::error!(%fatal, "raft stopped on an unrecoverable error; exiting so that the node is restarted");
            eprintln!("flotilla: raft stopped: {fatal}; exiting so that the node is restarted");
            std::process::exit(1);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

/// Bootstraps a one-member cluster on a new node without `--join`; with
/// `--join`, asks the listed members to admit this node (a node that already
/// has state asks too, so that it is refused if it belongs elsewhere). Under
/// `bootstrap_if_first` the join may end in creating the cluster here; then
/// the new cluster's id is returned.
async fn form_cluster(
    config: &Config,
    meta: &MetaClient,
    catalog: &Catalog,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<String>> {
    let raft = meta.raft();
    let initialized = raft.is_initialized().await?;
    if config.join.is_empty() {
        if !initialized {
            initialize_alone(config, raft).await?;
        }
        return Ok(None);
    }
    let local_cluster_id = match catalog.system().settings()? {
        Some(settings) => Some(settings.cluster_id),
        None if initialized => Some(String::new()),
        None => None,
    };
    match join(config, local_cluster_id, shutdown).await? {
        Joined::Admitted { cluster_id, leader_id } => {
            flotilla_raft::network::cluster_id::set(&cluster_id);
            tracing::info!(%cluster_id, leader_id, "admitted; catching up with the leader");
            Ok(None)
        }
        Joined::NoAnswer => Ok(None),
        Joined::Bootstrap => {
            // The guard against other clusters' Raft traffic holds from here on.
            let cluster_id = bootstrap::new_cluster_id();
            flotilla_raft::network::cluster_id::set(&cluster_id);
            initialize_alone(config, raft).await?;
            Ok(Some(cluster_id))
        }
    }
}

/// Makes this node the one member of a new cluster.
async fn initialize_alone(config: &Config, raft: &flotilla_raft::types::Raft) -> anyhow::Result<()> {
    let address = NodeAddr { rpc_addr: config.advertised_rpc(), http_addr: config.advertised_http() };
    raft.initialize(BTreeMap::from([(config.node_id, address)])).await?;
    tracing::info!(node_id = config.node_id, "initialized a new single-node cluster");
    Ok(())
}

/// Records this node's addresses, zone, capacity and supported model version, when they changed.
async fn register_node(config: &Config, meta: &MetaClient) -> anyhow::Result<()> {
    let existing = meta.read().await?.system().node(config.node_id)?;
    let record = NodeRecord {
        id: config.node_id,
        http_addr: config.advertised_http(),
        rpc_addr: config.advertised_rpc(),
        gossip_addr: Some(config.advertised_gossip()),
        zone: config.zone.clone(),
        capacity: config.capacity,
        state: existing.as_ref().map_or(NodeState::Active, |node| node.state),
        joined_ms: existing.as_ref().map_or_else(flotilla_raft::client::now_ms, |node| node.joined_ms),
        model_version: config.model_version,
    };
    if existing.as_ref() == Some(&record) {
        return Ok(());
    }
    match meta.write(system::Command::PutNode(record)).await {
        Ok(_) => Ok(()),
        Err(WriteError::Rejected(rejection)) => anyhow::bail!("this node cannot serve: {}", rejection.message),
        Err(error) => Err(error.into()),
    }
}

async fn signal_shutdown(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    shutdown.cancel();
}
