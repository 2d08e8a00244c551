//! Filling a cluster with random blobs, and summing a counter over its nodes:
//! what the GC and maintenance phases both start with and measure by.

use bytes::Bytes;

use crate::client::RegistryClient;
use crate::content::random_bytes;

/// How each blob is uploaded.
#[derive(Debug, Clone, Copy)]
pub enum Upload {
    /// One request, `POST ?digest=` (small blobs).
    Post,
    /// `POST`, then a monolithic `PUT ?digest=` (no small-request deadline).
    PostPut,
}

/// Pushes `blobs` random blobs of `blob_bytes` (blob `i` from `seed + i`)
/// from `clients` concurrent clients, client `c` on `nodes[c % len]`.
pub async fn push_random_blobs(
    nodes: &[RegistryClient],
    repo: &str,
    blobs: u64,
    blob_bytes: usize,
    clients: u64,
    upload: Upload,
    seed: u64,
) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let node = nodes[client as usize % nodes.len()].clone();
            let repo = repo.to_owned();
            tokio::spawn(async move {
                let mut index = client;
                while index < blobs {
                    let bytes = Bytes::from(random_bytes(seed.wrapping_add(index), blob_bytes));
                    match upload {
                        Upload::Post => node.post_bytes(&repo, bytes).await?,
                        Upload::PostPut => node.push_bytes(&repo, bytes).await?,
                    };
                    index += clients;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// A counter summed over `nodes`.
pub async fn sum_metric(nodes: &[RegistryClient], name: &str) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for node in nodes {
        total += node.metric(name).await?;
    }
    Ok(total)
}
