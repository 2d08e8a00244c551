//! Small operations: blob and manifest GET/HEAD from many concurrent clients
//! for a fixed time each, as operations per second and latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::cli::OpsPlan;
use crate::client::{Probe, RegistryClient, OCI_MANIFEST};
use crate::content::random_bytes;

/// Latency samples kept per client at most (bounds memory on fast machines).
const MAX_SAMPLES_PER_CLIENT: usize = 2_000_000;
/// Fixture uploads in flight at once.
const FIXTURE_UPLOADS_IN_FLIGHT: usize = 8;
/// Layers each fixture manifest lists.
const LAYERS_PER_MANIFEST: u64 = 2;
/// Media type of the fixture config blobs.
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the fixture layers.
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// One kind of measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    BlobGet,
    BlobHead,
    ManifestGet,
    ManifestHead,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [OpKind::BlobGet, OpKind::BlobHead, OpKind::ManifestGet, OpKind::ManifestHead];

    pub fn label(self) -> &'static str {
        match self {
            OpKind::BlobGet => "Small-blob GET",
            OpKind::BlobHead => "Small-blob HEAD",
            OpKind::ManifestGet => "Manifest GET (by tag)",
            OpKind::ManifestHead => "Manifest HEAD (by tag)",
        }
    }

    fn method(self) -> Method {
        match self {
            OpKind::BlobGet | OpKind::ManifestGet => Method::GET,
            OpKind::BlobHead | OpKind::ManifestHead => Method::HEAD,
        }
    }
}

/// What the phases read: the small blobs' digests and the manifests' tags.
pub struct Fixtures {
    blob_digests: Vec<String>,
    tags: Vec<String>,
}

/// The outcome of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub kind: OpKind,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The first failure, if any, for diagnosis.
    pub first_error: Option<String>,
}

/// Uploads the small blobs and the tagged manifests (config + layers first).
pub async fn seed_fixtures(client: &RegistryClient, repo: &str, plan: &OpsPlan, seed: u64) -> anyhow::Result<Fixtures> {
    let blob_digests: Vec<String> = futures::stream::iter(0..plan.small_blobs)
        .map(|index| {
            let bytes = Bytes::from(random_bytes(seed + index, plan.small_blob_bytes as usize));
            client.push_bytes(repo, bytes)
        })
        .buffered(FIXTURE_UPLOADS_IN_FLIGHT)
        .try_collect()
        .await
        .context("uploading small blobs")?;
    let layers: Vec<(String, u64)> =
        blob_digests.iter().map(|digest| (digest.clone(), plan.small_blob_bytes)).collect();
    let tags = futures::stream::iter(0..plan.manifests)
        .map(|index| push_manifest(client, repo, index, &layers))
        .buffered(FIXTURE_UPLOADS_IN_FLIGHT)
        .try_collect()
        .await
        .context("pushing manifests")?;
    Ok(Fixtures { blob_digests, tags })
}

/// Pushes manifest `index` (a unique config, two of `layers`) as tag `t<index>`.
async fn push_manifest(
    client: &RegistryClient,
    repo: &str,
    index: u64,
    layers: &[(String, u64)],
) -> anyhow::Result<String> {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"bench.index": index.to_string()}},
    });
    let config = Bytes::from(serde_json::to_vec(&config)?);
    let config_size = config.len();
    let config_digest = client.push_bytes(repo, config).await?;
    let chosen = (0..LAYERS_PER_MANIFEST).map(|offset| &layers[((index + offset) % layers.len() as u64) as usize]);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": chosen.map(|(digest, size)| json!({"mediaType": OCI_LAYER, "digest": digest, "size": size})).collect::<Vec<_>>(),
    });
    let tag = format!("t{index}");
    client.put_manifest(repo, &tag, Bytes::from(serde_json::to_vec(&manifest)?)).await?;
    Ok(tag)
}

/// The requests of a `kind` phase, one per fixture.
pub fn probes(client: &RegistryClient, repo: &str, fixtures: &Fixtures, kind: OpKind) -> Vec<Probe> {
    let (paths, accept): (Vec<String>, _) = match kind {
        OpKind::BlobGet | OpKind::BlobHead => {
            (fixtures.blob_digests.iter().map(|digest| format!("/v2/{repo}/blobs/{digest}")).collect(), None)
        }
        OpKind::ManifestGet | OpKind::ManifestHead => {
            (fixtures.tags.iter().map(|tag| format!("/v2/{repo}/manifests/{tag}")).collect(), Some(OCI_MANIFEST))
        }
    };
    paths.into_iter().map(|path| Probe { method: kind.method(), url: client.url(&path), accept }).collect()
}

/// Runs `concurrency` clients sending `probes` round-robin for `duration`.
pub async fn run_phase(
    client: &RegistryClient,
    kind: OpKind,
    probes: Vec<Probe>,
    concurrency: u64,
    duration: Duration,
) -> anyhow::Result<PhaseResult> {
    ensure!(!probes.is_empty(), "no fixtures to probe");
    let probes = Arc::new(probes);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency as usize)
        .map(|worker| tokio::spawn(run_client(client.clone(), probes.clone(), worker, deadline)))
        .collect();
    let mut merged = ClientTally::default();
    for worker in workers {
        merged.absorb(worker.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(merged.into_result(kind, seconds))
}

/// What one client saw.
#[derive(Default)]
struct ClientTally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl ClientTally {
    fn absorb(&mut self, other: ClientTally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    fn into_result(mut self, kind: OpKind, seconds: f64) -> PhaseResult {
        self.latencies_us.sort_unstable();
        let ops = self.latencies_us.len() as u64;
        PhaseResult {
            kind,
            ops,
            errors: self.errors,
            seconds,
            ops_per_sec: ops as f64 / seconds.max(f64::EPSILON),
            p50_ms: percentile_ms(&self.latencies_us, 0.50),
            p99_ms: percentile_ms(&self.latencies_us, 0.99),
            first_error: self.first_error,
        }
    }
}

/// One client: sequential requests until `deadline` (or the sample cap).
async fn run_client(client: RegistryClient, probes: Arc<Vec<Probe>>, worker: usize, deadline: Instant) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut next = worker % probes.len();
    while Instant::now() < deadline && tally.latencies_us.len() < MAX_SAMPLES_PER_CLIENT {
        let sent = Instant::now();
        match client.send_probe(&probes[next]).await {
            Ok(_) => tally.latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Err(error) => {
                tally.errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{} {}: {error:#}", probes[next].method, probes[next].url));
            }
        }
        next = (next + 1) % probes.len();
    }
    tally
}

/// The `quantile` of sorted microsecond samples, in milliseconds (0 if none).
pub(crate) fn percentile_ms(sorted_us: &[u32], quantile: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * quantile).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&samples, 0.50), 50.0);
        assert_eq!(percentile_ms(&samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
        assert_eq!(percentile_ms(&[7000], 0.5), 7.0);
    }
}
