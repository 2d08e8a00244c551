//! `flotilla-bench`: runs Flotilla and CNCF distribution 2.8 (Debian's
//! `docker-registry`) side by side on loopback, drives both with the same
//! async Rust client, and reports each metric and the ratio
//! Flotilla/docker-registry:
//!
//! 1. large-blob push (POST, one streamed PATCH, PUT `?digest=`) and pull
//!    (streamed GET, digest verified) throughput over concurrent streams, in
//!    rounds the registries take turns at (the median round is reported);
//! 2. small-blob and manifest GET/HEAD operations per second from many
//!    concurrent clients, with p50/p99 latency;
//! 3. the machine's limits in the same run: fsync'd sequential disk writes
//!    and single-core SHA-256;
//! 4. ingest efficiency: push throughput ÷ the lower of those limits;
//! 5. peak RSS of the registry while a huge blob streams in.
//!
//! `flotilla-bench cluster` benchmarks a loopback Flotilla cluster instead
//! (follower reads, writes, replicated pushes, leader failover; see
//! the `cluster` module).
//!
//! Blob content is generated from a seeded PRNG chunk by chunk, twice (once
//! for the digest, once on the wire), so the client never buffers a blob.
//! See `docs/benchmarks.md`.

mod cli;
mod client;
mod cluster;
mod content;
mod cpu_limit;
mod large;
mod limits;
mod memory;
mod ops;
mod process_cpu;
mod registry;
mod report;
mod run;

use clap::Parser;

use cli::{Args, Command, Plan};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(Command::Cluster(cluster)) = args.command.take() {
        return cluster::main(cluster).await;
    }
    let plan = Plan::from(args);
    // On Ctrl-C the run is dropped: registries are killed, the work dir removed.
    let report = tokio::select! {
        report = run::run(&plan) => report?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}
