//! Logs and metrics: tracing to stderr, Prometheus text on `/metrics`.
//!
//! HTTP metrics are labelled by surface and route (a fixed set, never a
//! repository name), method and status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use flotilla_raft::MetaClient;

/// Installs the global tracing subscriber (`RUST_LOG` filters, default `info`).
/// Colours only when stderr is a terminal: a log redirected to a file or a
/// pipe (`scripts/run.sh > log`, systemd, containers) stays plain text.
pub fn init_logging(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    surface: &'static str,
    route: &'static str,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    surface: &'static str,
    route: &'static str,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    raft_term: Gauge,
    raft_leader: Gauge,
    raft_applied_index: Gauge,
    raft_is_leader: Gauge,
    blobs_stored: Gauge,
    blob_bytes_stored: Gauge,
    blobs_recorded: Gauge,
    blob_bytes_referenced: Gauge,
    blob_bytes_unreferenced: Gauge,
    raft_snapshot_index: Gauge,
    clock_offset_ms: Gauge,
    timed_snapshots: Counter,
    compactions: Counter,
    reclaimed_blobs: Counter,
    reclaimed_bytes: Counter,
    tasks: Family<TaskLabels, Counter>,
    task_duration: Family<TaskLabels, Histogram>,
    sendfile_bytes: Arc<AtomicU64>,
    /// Repair, scrub and rebalancing on this node.
    pub maintenance: MaintenanceMetrics,
}

/// The replicated blob records summed (each blob once, whatever its copies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordSums {
    pub blobs: u64,
    /// Bytes of blobs some manifest references.
    pub referenced_bytes: u64,
    /// Bytes of blobs no manifest references: what GC frees once their grace period passed.
    pub unreferenced_bytes: u64,
}

/// What repair, scrub and rebalancing did on this node.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceMetrics {
    /// Owned partitions missing a recorded blob, as the last repair check found (before copying).
    pub partitions_under_replicated: Gauge,
    pub repair_copied_blobs: Counter,
    pub repair_copied_bytes: Counter,
    pub scrub_verified_bytes: Counter,
    pub scrub_corrupt_blobs: Counter,
    pub rebalance_copied_blobs: Counter,
    pub rebalance_copied_bytes: Counter,
    pub orphan_dropped_blobs: Counter,
    pub orphan_dropped_bytes: Counter,
}

impl MaintenanceMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "partitions_under_replicated",
            "Partitions this node owns that lacked a recorded blob at its last repair check",
            self.partitions_under_replicated.clone(),
        );
        let counters = [
            (
                "repair_copied_blobs",
                "Blobs this node copied from replicas because it lacked them",
                &self.repair_copied_blobs,
            ),
            (
                "repair_copied_bytes",
                "Bytes this node copied from replicas because it lacked them",
                &self.repair_copied_bytes,
            ),
            ("scrub_verified_bytes", "Bytes of local copies scrub re-hashed", &self.scrub_verified_bytes),
            ("scrub_corrupt_blobs", "Local copies scrub found corrupt and quarantined", &self.scrub_corrupt_blobs),
            (
                "rebalance_copied_blobs",
                "Copies this node pushed to new owners after a layout change",
                &self.rebalance_copied_blobs,
            ),
            (
                "rebalance_copied_bytes",
                "Bytes this node pushed to new owners after a layout change",
                &self.rebalance_copied_bytes,
            ),
            (
                "orphan_dropped_blobs",
                "Copies dropped because no owner list names this node",
                &self.orphan_dropped_blobs,
            ),
            (
                "orphan_dropped_bytes",
                "Bytes freed by dropping copies no owner list names this node for",
                &self.orphan_dropped_bytes,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
    }
}

/// A counter kept by another crate as a plain atomic.
#[derive(Debug)]
struct SharedCounter(Arc<AtomicU64>);

impl TypedMetric for SharedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for SharedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.load(Ordering::Relaxed), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    kind: &'static str,
    state: &'static str,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("flotilla");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~105 s in 21 doubling buckets.
            Histogram::new(exponential_buckets(0.0001, 2.0, 21))
        });
        registry.register("http_requests", "HTTP requests by surface, route, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
        let timed_snapshots = Counter::default();
        let compactions = Counter::default();
        registry.register(
            "raft_timed_snapshots",
            "Raft snapshots requested by the snapshot interval",
            timed_snapshots.clone(),
        );
        registry.register(
            "rocksdb_compactions",
            "Full RocksDB compactions run by the compaction interval",
            compactions.clone(),
        );
        let reclaimed_blobs = Counter::default();
        let reclaimed_bytes = Counter::default();
        let tasks = Family::<TaskLabels, Counter>::default();
        let task_duration = Family::<TaskLabels, Histogram>::new_with_constructor(|| {
            // 10 ms to ~3 h in 21 doubling buckets.
            Histogram::new(exponential_buckets(0.01, 2.0, 21))
        });
        registry.register(
            "gc_reclaimed_blobs",
            "Copies of collected blobs deleted from this node",
            reclaimed_blobs.clone(),
        );
        registry.register(
            "gc_reclaimed_bytes",
            "Bytes freed on this node by garbage collection",
            reclaimed_bytes.clone(),
        );
        registry.register("tasks", "Cluster tasks this node ran to an end, by kind and final state", tasks.clone());
        registry.register("task_duration_seconds", "How long cluster tasks ran on this node", task_duration.clone());
        let sendfile_bytes = Arc::<AtomicU64>::default();
        registry.register(
            "http_sendfile_bytes",
            "Response bytes sent straight from the page cache with sendfile (HTTP/1 blob downloads)",
            SharedCounter(sendfile_bytes.clone()),
        );
        let metrics = Metrics {
            requests,
            latency,
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_is_leader: Gauge::default(),
            blobs_stored: Gauge::default(),
            blob_bytes_stored: Gauge::default(),
            blobs_recorded: Gauge::default(),
            blob_bytes_referenced: Gauge::default(),
            blob_bytes_unreferenced: Gauge::default(),
            raft_snapshot_index: Gauge::default(),
            clock_offset_ms: Gauge::default(),
            timed_snapshots,
            compactions,
            reclaimed_blobs,
            reclaimed_bytes,
            tasks,
            task_duration,
            sendfile_bytes,
            maintenance: MaintenanceMetrics::default(),
            registry,
        };
        let mut metrics = metrics;
        let gauges = [
            ("raft_term", "Current Raft term", metrics.raft_term.clone()),
            ("raft_leader", "Node id of the known leader (0 = none)", metrics.raft_leader.clone()),
            ("raft_applied_index", "Last log index applied to the state machine", metrics.raft_applied_index.clone()),
            ("raft_is_leader", "1 when this node leads", metrics.raft_is_leader.clone()),
            (
                "raft_snapshot_index",
                "Last log index in this node's latest snapshot",
                metrics.raft_snapshot_index.clone(),
            ),
            (
                "clock_offset_ms",
                "Milliseconds cluster time (the voters' median clock) is ahead of this node's wall clock",
                metrics.clock_offset_ms.clone(),
            ),
            ("blobs_stored", "Blobs in this node's local store", metrics.blobs_stored.clone()),
            ("blob_bytes_stored", "Bytes in this node's local store", metrics.blob_bytes_stored.clone()),
            ("blobs_recorded", "Blobs the cluster records (each once)", metrics.blobs_recorded.clone()),
            (
                "blob_bytes_referenced",
                "Bytes of recorded blobs some manifest references (each blob once)",
                metrics.blob_bytes_referenced.clone(),
            ),
            (
                "blob_bytes_unreferenced",
                "Bytes of recorded blobs no manifest references: collectable after the grace period",
                metrics.blob_bytes_unreferenced.clone(),
            ),
        ];
        for (name, help, gauge) in gauges {
            metrics.registry.register(name, help, gauge);
        }
        metrics.maintenance.register(&mut metrics.registry);
        Arc::new(metrics)
    }

    /// The counter the HTTP listener adds the bytes it sent with `sendfile` to.
    pub fn sendfile_bytes(&self) -> Arc<AtomicU64> {
        self.sendfile_bytes.clone()
    }

    /// Refreshes the Raft gauges from openraft's metrics.
    pub fn observe_raft(&self, meta: &MetaClient) {
        let raft = meta.raft().metrics().borrow().clone();
        self.raft_term.set(raft.current_term as i64);
        self.raft_leader.set(raft.current_leader.unwrap_or(0) as i64);
        self.raft_applied_index.set(raft.last_applied.map(|id| id.index).unwrap_or(0) as i64);
        self.raft_is_leader.set(i64::from(raft.current_leader == Some(meta.node_id())));
        self.raft_snapshot_index.set(raft.snapshot.map(|id| id.index).unwrap_or(0) as i64);
        self.clock_offset_ms.set(flotilla_raft::clock::offset_ms());
    }

    /// Sets the local store gauges.
    pub fn observe_store(&self, blobs: u64, bytes: u64) {
        self.blobs_stored.set(blobs as i64);
        self.blob_bytes_stored.set(bytes as i64);
    }

    /// Sets the gauges of the replicated blob records.
    pub fn observe_records(&self, sums: RecordSums) {
        self.blobs_recorded.set(sums.blobs as i64);
        self.blob_bytes_referenced.set(sums.referenced_bytes as i64);
        self.blob_bytes_unreferenced.set(sums.unreferenced_bytes as i64);
    }

    /// Counts a snapshot the snapshot interval asked for.
    pub fn observe_timed_snapshot(&self) {
        self.timed_snapshots.inc();
    }

    /// Counts a full compaction.
    pub fn observe_compaction(&self) {
        self.compactions.inc();
    }

    /// Counts a deleted copy of a collected blob.
    pub fn observe_reclaimed(&self, bytes: u64) {
        self.reclaimed_blobs.inc();
        self.reclaimed_bytes.inc_by(bytes);
    }

    /// Counts a task that ended on this node.
    pub fn observe_task(&self, kind: &'static str, state: &'static str, elapsed: std::time::Duration) {
        let labels = TaskLabels { kind, state };
        self.tasks.get_or_create(&labels).inc();
        self.task_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }
}

/// The surface and route label of a request path.
fn classify(path: &str) -> (&'static str, &'static str) {
    if path == "/v2" || path.starts_with("/v2/") {
        return ("oci", flotilla_api::oci::route_label(path));
    }
    match path {
        "/healthz" | "/readyz" => ("node", "health"),
        "/metrics" => ("node", "metrics"),
        _ if path.starts_with("/_cluster") => ("cluster", "cluster"),
        _ if path.starts_with("/artifactory/") => ("artifactory", "artifactory"),
        _ => ("other", "other"),
    }
}

/// Middleware counting and timing every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request<Body>, next: Next) -> Response {
    let (surface, route) = classify(request.uri().path());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics.requests.get_or_create(&RequestLabels { surface, route, method, status }).inc();
    metrics.latency.get_or_create(&LatencyLabels { surface, route }).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
        .into_response()
}
