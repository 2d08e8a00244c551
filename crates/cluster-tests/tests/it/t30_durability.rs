//! Acked pushes survive `kill -9`. Sixteen threads upload distinct random
//! blobs (64 KiB-4 MiB; monolithic, POST+PUT and chunked) while the node is
//! killed with SIGKILL mid-way; after a restart on the same data directory
//! every upload that got 201 is present with its digest and exact bytes, and
//! every other one is absent or complete-and-correct, never partial.
//!
//! Seeded: set `FLOTILLA_TEST_SEED` to replay a run (the seed is printed).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::{random_bytes_from, sha256_digest};
use flotilla_cluster_tests::{OciClient, Sandbox};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::run_printing_logs;

const UPLOADERS: usize = 16;
const MIN_BLOB: usize = 64 * 1024;
const MAX_BLOB: usize = 4 * 1024 * 1024;
/// Acknowledged uploads to wait for before the kill.
const ACKS_BEFORE_KILL: usize = 24;
/// Kill anyway after this long (as long as uploads are under way).
const KILL_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Monolithic,
    PostPut,
    Chunked { chunk_size: usize },
}

/// One attempted upload; its bytes are regenerated from `content_seed`.
#[derive(Debug, Clone)]
struct Attempt {
    repository: String,
    content_seed: u64,
    size: usize,
    digest: String,
    mode: Mode,
    acked: bool,
    error: Option<String>,
}

impl Attempt {
    fn bytes(&self) -> Vec<u8> {
        random_bytes_from(&mut StdRng::seed_from_u64(self.content_seed), self.size)
    }
}

fn upload(client: &OciClient, attempt: &Attempt, bytes: &[u8]) -> anyhow::Result<()> {
    match attempt.mode {
        Mode::Monolithic => client.push_blob_monolithic(&attempt.repository, bytes).map(drop),
        Mode::PostPut => client.push_blob_post_put(&attempt.repository, bytes).map(drop),
        Mode::Chunked { chunk_size } => client.push_blob_chunked(&attempt.repository, bytes, chunk_size).map(drop),
    }
}

struct Shared {
    attempts: Mutex<Vec<Attempt>>,
    acked: AtomicUsize,
    stop: AtomicBool,
}

fn uploader(client: OciClient, index: usize, seed: u64, shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let repository = format!("t30/durability-{index}");
    while !shared.stop.load(Ordering::SeqCst) {
        let size = rng.gen_range(MIN_BLOB..=MAX_BLOB);
        let mode = match rng.gen_range(0..3) {
            0 => Mode::Monolithic,
            1 => Mode::PostPut,
            _ => Mode::Chunked { chunk_size: rng.gen_range(256 * 1024..=1024 * 1024) },
        };
        let mut attempt = Attempt {
            repository: repository.clone(),
            content_seed: rng.gen(),
            size,
            digest: String::new(),
            mode,
            acked: false,
            error: None,
        };
        let bytes = attempt.bytes();
        attempt.digest = sha256_digest(&bytes);
        let result = upload(&client, &attempt, &bytes);
        attempt.acked = result.is_ok();
        attempt.error = result.as_ref().err().map(|e| format!("{e:#}"));
        let failed = result.is_err();
        if attempt.acked {
            shared.acked.fetch_add(1, Ordering::SeqCst);
        }
        shared.attempts.lock().expect("attempts lock").push(attempt);
        if failed {
            // Before the kill a failure is a server bug (reported below); after it, expected.
            return;
        }
    }
}

/// What a client sees for `attempt` after the restart.
fn verify(client: &OciClient, attempt: &Attempt) -> anyhow::Result<()> {
    let head = client.head_blob(&attempt.repository, &attempt.digest)?;
    let get = client.get_blob(&attempt.repository, &attempt.digest)?;
    let label = format!(
        "{} {} ({} bytes, {:?}, acked: {})",
        attempt.repository, attempt.digest, attempt.size, attempt.mode, attempt.acked
    );
    if !attempt.acked && head.status == 404 {
        ensure!(get.status == 404, "{label}: HEAD says absent but GET answered {}", get.status);
        return Ok(());
    }
    ensure!(
        head.status == 200,
        "{label}: HEAD answered {} after restart{}",
        head.status,
        if attempt.acked { " (acked upload lost)" } else { "" }
    );
    ensure!(
        head.header("Content-Length") == Some(attempt.size.to_string().as_str()),
        "{label}: HEAD Content-Length {:?} (partial blob?)",
        head.header("Content-Length")
    );
    ensure!(get.status == 200, "{label}: GET answered {}", get.status);
    ensure!(
        sha256_digest(&get.body) == attempt.digest,
        "{label}: GET returned {} bytes with a different digest (partial or corrupt)",
        get.body.len()
    );
    ensure!(get.body == attempt.bytes(), "{label}: bytes differ");
    Ok(())
}

#[test]
fn acked_uploads_survive_kill_9_and_nothing_partial_appears() {
    let seed: u64 = std::env::var("FLOTILLA_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("t30 durability seed: {seed} (replay with FLOTILLA_TEST_SEED={seed})");
    let sandbox = Sandbox::builder().nodes(1).build().unwrap_or_else(|e| panic!("the sandbox did not start: {e:#}"));
    run_printing_logs(&sandbox, |sandbox| {
        let node = sandbox.node(0);
        let shared = Arc::new(Shared {
            attempts: Mutex::new(Vec::new()),
            acked: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let threads: Vec<_> = (0..UPLOADERS)
            .map(|index| {
                let client = sandbox.client();
                let shared = shared.clone();
                std::thread::spawn(move || uploader(client, index, seed, shared))
            })
            .collect();

        let started = Instant::now();
        while shared.acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL && started.elapsed() < KILL_DEADLINE {
            std::thread::sleep(Duration::from_millis(10));
        }
        let failures_before_kill: Vec<Attempt> =
            shared.attempts.lock().expect("attempts lock").iter().filter(|a| !a.acked).cloned().collect();
        shared.stop.store(true, Ordering::SeqCst);
        node.kill9();
        let killed_at = started.elapsed();
        for thread in threads {
            thread.join().expect("uploader thread panicked");
        }
        ensure!(
            failures_before_kill.is_empty(),
            "uploads failed before the kill (server bug, not the kill): {:#?}",
            failures_before_kill.iter().map(|a| a.error.clone()).collect::<Vec<_>>()
        );

        node.restart().context("restarting after kill -9")?;
        let attempts = shared.attempts.lock().expect("attempts lock").clone();
        let acked = attempts.iter().filter(|a| a.acked).count();
        let in_flight = attempts.len() - acked;
        eprintln!("t30: killed after {killed_at:?}: {acked} acked, {in_flight} in flight");
        ensure!(acked > 0, "no upload was acknowledged within {KILL_DEADLINE:?}");
        ensure!(in_flight > 0, "the kill found no upload in flight; nothing mid-way was tested");

        let client = sandbox.client();
        let problems: Vec<String> =
            attempts.iter().filter_map(|a| verify(&client, a).err().map(|e| format!("{e:#}"))).collect();
        ensure!(
            problems.is_empty(),
            "{} of {} uploads wrong after kill -9 + restart:\n{}",
            problems.len(),
            attempts.len(),
            problems.join("\n")
        );

        // The restarted node still takes writes.
        let bytes = random_bytes_from(&mut StdRng::seed_from_u64(seed), 100_000);
        let digest = client.push_blob_chunked("t30/after-restart", &bytes, 30_000)?;
        ensure!(
            client.get_blob("t30/after-restart", &digest)?.expect_status(200)?.body == bytes,
            "post-restart upload differs"
        );
        Ok(())
    });
}
