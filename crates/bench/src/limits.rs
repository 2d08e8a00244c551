//! The machine's own ceilings, measured in the same run: fsync'd sequential
//! write bandwidth of the data disk and single-core SHA-256 speed. A registry
//! that stores and verifies every byte cannot ingest faster than the lower one.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::content::{random_bytes, MIB};

/// Size of each `write` of the disk probe (4 MiB).
const DISK_WRITE_BYTES: usize = 4 << 20;
/// Size of the in-memory buffer the hash probe hashes over and over (64 MiB).
const HASH_BUFFER_BYTES: usize = 64 << 20;
/// Seed of the probe buffers.
const PROBE_SEED: u64 = 0xd15c;

/// Both ceilings in MiB/s.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub probe_bytes: u64,
    pub disk_fsync_write_mib_s: f64,
    pub sha256_single_core_mib_s: f64,
}

impl Limits {
    /// The lower ceiling: the fastest a registry could ingest.
    pub fn ingest_ceiling_mib_s(&self) -> f64 {
        self.disk_fsync_write_mib_s.min(self.sha256_single_core_mib_s)
    }
}

/// Measures both ceilings with `probe_bytes` each (blocking; seconds long).
pub fn measure(dir: &Path, probe_bytes: u64) -> anyhow::Result<Limits> {
    Ok(Limits {
        probe_bytes,
        disk_fsync_write_mib_s: disk_write_mib_s(dir, probe_bytes)?,
        sha256_single_core_mib_s: sha256_mib_s(probe_bytes),
    })
}

/// Writes `total` bytes in [`DISK_WRITE_BYTES`] writes to a new file in
/// `dir`, fsyncs it, and returns MiB/s over the whole (fsync included).
fn disk_write_mib_s(dir: &Path, total: u64) -> anyhow::Result<f64> {
    let buffer = random_bytes(PROBE_SEED, DISK_WRITE_BYTES);
    let path = dir.join("disk-probe.bin");
    let mut file = File::create(&path)?;
    let started = Instant::now();
    let mut written = 0u64;
    while written < total {
        let len = (total - written).min(DISK_WRITE_BYTES as u64) as usize;
        file.write_all(&buffer[..len])?;
        written += len as u64;
    }
    file.sync_all()?;
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(mib_per_sec(total, seconds))
}

/// Hashes `total` bytes of an in-memory buffer on this thread; MiB/s.
fn sha256_mib_s(total: u64) -> f64 {
    let buffer = random_bytes(PROBE_SEED, HASH_BUFFER_BYTES);
    let mut hasher = Sha256::new();
    let started = Instant::now();
    let mut hashed = 0u64;
    while hashed < total {
        let len = (total - hashed).min(HASH_BUFFER_BYTES as u64) as usize;
        hasher.update(&buffer[..len]);
        hashed += len as u64;
    }
    std::hint::black_box(hasher.finalize());
    mib_per_sec(total, started.elapsed().as_secs_f64())
}

/// The 1-minute load average: a busy machine makes every number lower and
/// noisier, so the report shows it.
pub fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Logical cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `bytes` over `seconds` in MiB/s.
pub fn mib_per_sec(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / MIB as f64 / seconds.max(f64::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_report_positive_rates() {
        let dir = tempfile::tempdir().unwrap();
        let limits = measure(dir.path(), 8 * MIB).unwrap();
        assert!(limits.disk_fsync_write_mib_s > 0.0);
        assert!(limits.sha256_single_core_mib_s > 0.0);
        assert!(limits.ingest_ceiling_mib_s() <= limits.sha256_single_core_mib_s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the probe file is removed");
        assert!(load_average_1m().is_some_and(|load| load >= 0.0));
        assert!(cores() >= 1);
    }
}
