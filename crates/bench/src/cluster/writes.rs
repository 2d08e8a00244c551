//! Tag + manifest writes: many clients, each sending one `PUT
//! /v2/<repo>/manifests/<tag>` after another to its own node (clients are
//! spread round-robin over the nodes; followers forward writes to the leader).
//! Every PUT is a new manifest (a fresh annotation over the same pre-pushed
//! config and layers); even-numbered writes create a new tag, odd ones move
//! the client's own tag.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use super::stats::{LatencyStats, Tally};
use crate::client::{RegistryClient, OCI_MANIFEST};
use crate::content::random_bytes;

/// Layers every written manifest lists.
const LAYERS: u64 = 2;
/// Size of each pre-pushed layer.
const LAYER_BYTES: usize = 4096;
/// Media types of the written manifests' parts.
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The blobs a written manifest references, pushed once per repository.
#[derive(Debug, Clone)]
pub struct ManifestTemplate {
    config: (String, usize),
    layers: Vec<(String, usize)>,
}

impl ManifestTemplate {
    /// Pushes a config and the layers to `repo` through `client`.
    pub async fn push(client: &RegistryClient, repo: &str, seed: u64) -> anyhow::Result<Self> {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }))?;
        let config_size = config.len();
        let config_digest = client.push_bytes(repo, Bytes::from(config)).await.context("pushing the config")?;
        let mut layers = Vec::new();
        for index in 0..LAYERS {
            let bytes = Bytes::from(random_bytes(seed + index, LAYER_BYTES));
            layers.push((client.push_bytes(repo, bytes).await.context("pushing a layer")?, LAYER_BYTES));
        }
        Ok(ManifestTemplate { config: (config_digest, config_size), layers })
    }

    /// An OCI image manifest over the template's blobs, made unique by `mark`.
    pub fn manifest(&self, mark: &str) -> Bytes {
        let (config_digest, config_size) = &self.config;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": self.layers.iter()
                .map(|(digest, size)| json!({"mediaType": OCI_LAYER, "digest": digest, "size": size}))
                .collect::<Vec<_>>(),
            "annotations": {"org.flotilla.bench.write": mark},
        });
        Bytes::from(serde_json::to_vec(&manifest).expect("a JSON value serializes"))
    }
}

/// The tag of `client`'s `seq`-th write: a new tag on even writes, the
/// client's moving tag on odd ones.
pub fn write_tag(client: u64, seq: u64) -> String {
    if seq % 2 == 1 {
        format!("c{client}")
    } else {
        format!("c{client}-{seq}")
    }
}

/// Runs `writers` clients for `duration`, client `w` on `nodes[w % len]`.
pub async fn measure(
    nodes: &[RegistryClient],
    repo: &str,
    template: &ManifestTemplate,
    writers: u64,
    duration: std::time::Duration,
) -> anyhow::Result<LatencyStats> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let client = nodes[writer as usize % nodes.len()].clone();
            let (repo, template) = (repo.to_owned(), template.clone());
            tokio::spawn(async move { write_loop(client, &repo, &template, writer, deadline).await })
        })
        .collect();
    let mut merged = Tally::default();
    for task in tasks {
        merged.absorb(task.await?);
    }
    Ok(merged.into_stats(started.elapsed().as_secs_f64()))
}

/// One client: sequential PUTs until `deadline`.
async fn write_loop(
    client: RegistryClient,
    repo: &str,
    template: &ManifestTemplate,
    writer: u64,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut seq = 0;
    while Instant::now() < deadline {
        let tag = write_tag(writer, seq);
        let manifest = template.manifest(&format!("{writer}-{seq}"));
        let sent = Instant::now();
        match client.put_manifest(repo, &tag, manifest).await {
            Ok(()) => tally.success(sent.elapsed()),
            Err(error) => tally.failure(|| format!("PUT {repo}:{tag} on {}: {error:#}", client.url(""))),
        }
        seq += 1;
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_alternate_new_and_moving() {
        assert_eq!(write_tag(7, 0), "c7-0");
        assert_eq!(write_tag(7, 1), "c7");
        assert_eq!(write_tag(7, 2), "c7-2");
        assert_eq!(write_tag(7, 3), "c7");
    }

    #[test]
    fn manifests_differ_by_mark_only() {
        let template = ManifestTemplate {
            config: ("sha256:c".into(), 10),
            layers: vec![("sha256:a".into(), 4096), ("sha256:b".into(), 4096)],
        };
        let first: serde_json::Value = serde_json::from_slice(&template.manifest("1-0")).unwrap();
        let second: serde_json::Value = serde_json::from_slice(&template.manifest("1-1")).unwrap();
        assert_ne!(first, second);
        assert_eq!(first["layers"], second["layers"]);
        assert_eq!(first["config"]["digest"], "sha256:c");
        assert_eq!(first["annotations"]["org.flotilla.bench.write"], "1-0");
    }
}
