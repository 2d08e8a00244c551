//! The clients: push blobs and manifests, move and delete tags, read tags and
//! blobs from every node, start GC, repair and scrub, and watch who leads and
//! what the layout is.
//!
//! Each client talks to one node (client `i` to node `i mod n`), as clients
//! behind a load balancer with sticky connections do, so that every node,
//! faulty or not, always has clients, and clients of a healthy node are never
//! all stuck waiting on a faulty one. What each saw goes to the
//! [`Recorder`]; an answer no fault excuses (a 5xx other than 503, a 404 for
//! something acknowledged, a wrong digest) is recorded as an anomaly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;

use flotilla_cluster_tests::client::Reply;
use flotilla_cluster_tests::content::{random_bytes_from, sha256_digest, Blob, ImageManifest, Manifest};
use flotilla_cluster_tests::{Credentials, OciClient};

use crate::history::{AckedBlob, AckedManifest, Recorder};
use crate::linearizability::{Event, Op};

/// The cluster tasks the workload starts, in turn. (`optimize` runs by
/// itself after each layout change; the spare of [`crate::rebalance`] makes two.)
const TASK_KINDS: [&str; 3] = ["gc", "repair", "scrub"];

/// How hard the workload pushes.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Client threads.
    pub clients: usize,
    /// Repositories, each with its own tags.
    pub repos: usize,
    /// Tags (registers) per repository.
    pub tags_per_repo: usize,
    /// Largest random blob, in bytes.
    pub max_blob: usize,
    /// Each request gives up after this long (longer than the nodes' own
    /// 10 s deadline for reaching a leader, so their 503 is seen).
    pub timeout: Duration,
    /// Start a GC, a repair or a scrub, in turn, this often (`None`: never).
    pub tasks_every: Option<Duration>,
    pub seed: u64,
    /// The repositories are `<namespace>/repo-<n>`: a name of this run's
    /// own, so that tags a cluster kept from an earlier run are not in its
    /// history (every tag of a run starts absent).
    pub namespace: String,
}

impl WorkloadOptions {
    /// The name of repository `index`.
    pub fn repo(&self, index: usize) -> String {
        format!("{}/repo-{index}", self.namespace)
    }
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            clients: 6,
            repos: 4,
            tags_per_repo: 4,
            max_blob: 64 << 10,
            timeout: Duration::from_secs(15),
            tasks_every: Some(Duration::from_secs(10)),
            seed: 0,
            namespace: format!("chaos-{:08x}", rand::random::<u32>()),
        }
    }
}

/// A repository's fixed content: a config and layers every tag write uses.
#[derive(Clone)]
struct Fixture {
    repo: String,
    config: Blob,
    layers: Vec<Blob>,
}

/// The running client threads.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Pushes each repository's fixture (retrying for up to a minute), then
    /// starts the clients, the task starter and the leader watcher.
    pub fn start(
        urls: Vec<String>,
        credentials: Credentials,
        options: &WorkloadOptions,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Workload> {
        let clients: Vec<OciClient> =
            urls.iter().map(|url| OciClient::with_timeout(url, credentials.clone(), options.timeout)).collect();
        let fixtures = (0..options.repos)
            .map(|index| push_fixture(&clients, &options.repo(index), &recorder))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let fixtures = Arc::new(fixtures);
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for index in 0..options.clients {
            let client = Client {
                node: index % clients.len(),
                nodes: clients.clone(),
                fixtures: fixtures.clone(),
                tags_per_repo: options.tags_per_repo,
                max_blob: options.max_blob,
                recorder: recorder.clone(),
                rng: ChaCha8Rng::seed_from_u64(options.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                writes: writes.clone(),
            };
            let stop = stop.clone();
            threads.push(std::thread::Builder::new().name(format!("chaos-client-{index}")).spawn(move || {
                let mut client = client;
                while !stop.load(Ordering::Relaxed) {
                    client.one_operation();
                }
            })?);
        }
        let watcher = Watcher { nodes: clients.clone(), recorder: recorder.clone() };
        let stop_watching = stop.clone();
        threads.push(std::thread::Builder::new().name("chaos-leaders".into()).spawn(move || {
            while !stop_watching.load(Ordering::Relaxed) {
                watcher.look();
                std::thread::sleep(Duration::from_millis(200));
            }
        })?);
        if let Some(every) = options.tasks_every {
            let stop_tasks = stop.clone();
            let recorder = recorder.clone();
            let mut rng = ChaCha8Rng::seed_from_u64(options.seed.rotate_left(17));
            threads.push(std::thread::Builder::new().name("chaos-tasks".into()).spawn(move || {
                let mut next = Instant::now() + every;
                let mut round = 0u64;
                while !stop_tasks.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        let kind = TASK_KINDS[round as usize % TASK_KINDS.len()];
                        start_task(&clients, &mut rng, kind, &recorder);
                        round += 1;
                        next = Instant::now() + every;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })?);
        }
        Ok(Workload { stop, threads })
    }

    /// Stops every thread and waits for their last operations.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn push_fixture(clients: &[OciClient], repo: &str, recorder: &Recorder) -> anyhow::Result<Fixture> {
    let config = Blob::random_config();
    let layers: Vec<Blob> = (0..3).map(|_| Blob::random_layer(1024)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for blob in std::iter::once(&config).chain(&layers) {
        let mut attempt = 0;
        loop {
            let client = &clients[attempt % clients.len()];
            match client.push_blob_monolithic(repo, &blob.bytes) {
                Ok(_) => break,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("chaos: pushing the fixture of {repo}: {error:#}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                    attempt += 1;
                }
                Err(error) => return Err(error).context("pushing a fixture"),
            }
        }
        recorder.acked_blob(AckedBlob { repo: repo.into(), digest: blob.digest.clone(), size: blob.bytes.len() });
    }
    Ok(Fixture { repo: repo.to_owned(), config, layers })
}

/// One client thread.
struct Client {
    /// The node this client sends to.
    node: usize,
    nodes: Vec<OciClient>,
    fixtures: Arc<Vec<Fixture>>,
    tags_per_repo: usize,
    max_blob: usize,
    recorder: Arc<Recorder>,
    rng: ChaCha8Rng,
    /// Numbers every tag write across threads, so each writes a distinct manifest.
    writes: Arc<AtomicU64>,
}

/// What came back: an HTTP answer, or none.
enum Outcome {
    Answer(Reply),
    /// A refused connection or a timeout.
    NoAnswer,
}

impl Client {
    fn one_operation(&mut self) {
        let node = self.node;
        let fixture = self.fixtures[self.rng.gen_range(0..self.fixtures.len())].clone();
        let tag = format!("t{}", self.rng.gen_range(0..self.tags_per_repo));
        match self.rng.gen_range(0..100) {
            0..=34 => self.read_tag(node, &fixture, &tag),
            35..=59 => self.write_tag(node, &fixture, &tag),
            60..=64 => self.delete_tag(node, &fixture, &tag),
            65..=82 => self.push_blob(node, &fixture),
            _ => self.read_blob(node),
        }
    }

    fn send(&self, op: &'static str, node: usize, result: anyhow::Result<Reply>) -> Outcome {
        match result {
            Ok(reply) => {
                self.recorder.status(op, reply.status);
                if reply.status >= 500 && !EXCUSED.contains(&reply.status) {
                    self.recorder
                        .anomaly(node, format!("{op}: {} answered {}: {}", reply.request, reply.status, reply.text()));
                }
                Outcome::Answer(reply)
            }
            Err(error) => {
                self.recorder.status(op, no_answer_status(&error));
                self.recorder.no_answer(node, format!("{op}: {error:#}"));
                // Clients back off from a node that refuses connections.
                std::thread::sleep(NO_ANSWER_BACKOFF);
                Outcome::NoAnswer
            }
        }
    }

    fn unexpected(&self, op: &str, node: usize, reply: &Reply) {
        if reply.status < 500 {
            self.recorder.anomaly(node, format!("{op}: {} answered {}: {}", reply.request, reply.status, reply.text()));
        }
    }

    fn key(fixture: &Fixture, tag: &str) -> String {
        format!("{}:{tag}", fixture.repo)
    }

    fn read_tag(&mut self, node: usize, fixture: &Fixture, tag: &str) {
        let invoked = self.recorder.now();
        let result = self.nodes[node].get_manifest(&fixture.repo, tag);
        let completed = self.recorder.now();
        let seen = match self.send("read-tag", node, result) {
            Outcome::Answer(reply) if reply.status == 200 => {
                let digest = sha256_digest(&reply.body);
                if reply.header("Docker-Content-Digest") != Some(digest.as_str()) {
                    self.recorder.anomaly(node, format!("{}: Docker-Content-Digest is not the body's", reply.request));
                }
                Some(digest)
            }
            Outcome::Answer(reply) if reply.status == 404 => None,
            Outcome::Answer(reply) => {
                self.unexpected("read-tag", node, &reply);
                return;
            }
            Outcome::NoAnswer => return,
        };
        let key = Client::key(fixture, tag);
        self.recorder.tag_event(Event { key, op: Op::Read(seen), invoked, completed: Some(completed) });
    }

    fn write_tag(&mut self, node: usize, fixture: &Fixture, tag: &str) {
        let layer = &fixture.layers[self.rng.gen_range(0..fixture.layers.len())];
        let number = self.writes.fetch_add(1, Ordering::Relaxed);
        let manifest: Manifest = ImageManifest::new(&fixture.config, &[layer])
            .annotation("org.flotilla.chaos.write", &number.to_string())
            .build();
        let invoked = self.recorder.now();
        let result = self.nodes[node].put_manifest(&fixture.repo, tag, &manifest.media_type, &manifest.bytes);
        let completed = self.recorder.now();
        let key = Client::key(fixture, tag);
        let value = Some(manifest.digest.clone());
        match self.send("write-tag", node, result) {
            Outcome::Answer(reply) if reply.status == 201 => {
                if reply.header("Docker-Content-Digest") != Some(manifest.digest.as_str()) {
                    self.recorder
                        .anomaly(node, format!("{}: Docker-Content-Digest is not the manifest's", reply.request));
                }
                self.recorder.acked_manifest(AckedManifest { repo: fixture.repo.clone(), digest: manifest.digest });
                self.recorder.write_acked(invoked, completed);
                self.recorder.tag_event(Event { key, op: Op::Write(value), invoked, completed: Some(completed) });
            }
            // Rejected for sure: it did not happen.
            Outcome::Answer(reply) if (400..500).contains(&reply.status) => self.unexpected("write-tag", node, &reply),
            // 503, a 5xx or no answer: it may or may not have happened.
            _ => self.recorder.tag_event(Event { key, op: Op::Write(value), invoked, completed: None }),
        }
    }

    fn delete_tag(&mut self, node: usize, fixture: &Fixture, tag: &str) {
        let invoked = self.recorder.now();
        let result = self.nodes[node].delete_manifest(&fixture.repo, tag);
        let completed = self.recorder.now();
        let key = Client::key(fixture, tag);
        match self.send("delete-tag", node, result) {
            Outcome::Answer(reply) if reply.status == 202 => {
                self.recorder.write_acked(invoked, completed);
                self.recorder.tag_event(Event { key, op: Op::Write(None), invoked, completed: Some(completed) });
            }
            // The tag did not exist when the delete took effect: a read of nothing.
            Outcome::Answer(reply) if reply.status == 404 => {
                self.recorder.tag_event(Event { key, op: Op::Read(None), invoked, completed: Some(completed) })
            }
            Outcome::Answer(reply) if (400..500).contains(&reply.status) => self.unexpected("delete-tag", node, &reply),
            _ => self.recorder.tag_event(Event { key, op: Op::Write(None), invoked, completed: None }),
        }
    }

    fn push_blob(&mut self, node: usize, fixture: &Fixture) {
        let len = self.rng.gen_range(1..=self.max_blob);
        let bytes = random_bytes_from(&mut self.rng, len);
        let digest = sha256_digest(&bytes);
        let result = self.nodes[node].post_monolithic(&fixture.repo, &digest, &bytes);
        match self.send("push-blob", node, result) {
            Outcome::Answer(reply) if reply.status == 201 => {
                self.recorder.acked_blob(AckedBlob { repo: fixture.repo.clone(), digest, size: len })
            }
            Outcome::Answer(reply) if (400..500).contains(&reply.status) => self.unexpected("push-blob", node, &reply),
            _ => {}
        }
    }

    fn read_blob(&mut self, node: usize) {
        let pick = self.rng.gen();
        let Some(blob) = self.recorder.some_acked_blob(pick) else { return };
        let result = self.nodes[node].get_blob(&blob.repo, &blob.digest);
        match self.send("read-blob", node, result) {
            Outcome::Answer(reply) if reply.status == 200 => {
                if sha256_digest(&reply.body) != blob.digest {
                    self.recorder.anomaly(node, format!("{}: the body's digest is wrong", reply.request));
                }
            }
            Outcome::Answer(reply) => self.unexpected("read-blob", node, &reply),
            Outcome::NoAnswer => {}
        }
    }
}

/// Server errors a fault excuses: 503 (no leader reachable in time, retry)
/// and 507 (a disk is full).
const EXCUSED: [u16; 2] = [503, 507];

/// How long a client waits after a request got no answer.
const NO_ANSWER_BACKOFF: Duration = Duration::from_millis(100);

/// How a request that got no answer is counted: [`TIMED_OUT`] if it ran
/// out of time, else 0 (refused, reset).
fn no_answer_status(error: &anyhow::Error) -> u16 {
    match error.downcast_ref::<reqwest::Error>() {
        Some(error) if error.is_timeout() => TIMED_OUT,
        _ => 0,
    }
}

/// The status recorded for a request that timed out.
pub const TIMED_OUT: u16 = 1;

/// Asks every node who leads which term.
struct Watcher {
    nodes: Vec<OciClient>,
    recorder: Arc<Recorder>,
}

impl Watcher {
    fn look(&self) {
        for (index, node) in self.nodes.iter().enumerate() {
            let Ok(reply) = node.call(Method::GET, "/_cluster/state") else { continue };
            let Ok(state) = reply.json() else { continue };
            if let (Some(term), Some(leader)) = (state["term"].as_u64(), state["leader"].as_u64()) {
                self.recorder.leader_seen(index, term, leader);
            }
            if let Some(version) = state["layout"]["version"].as_u64() {
                self.recorder.layout_seen(version, state["layout"]["sync_state"] == "synced");
            }
            for member in state["nodes"].as_array().into_iter().flatten() {
                if let (Some(id), Some(member_state)) = (member["id"].as_u64(), member["state"].as_str()) {
                    self.recorder.member_state_seen(id, member_state);
                }
            }
        }
    }
}

fn start_task(nodes: &[OciClient], rng: &mut ChaCha8Rng, kind: &str, recorder: &Recorder) {
    let node = rng.gen_range(0..nodes.len());
    let client = &nodes[node];
    let request = client
        .request(Method::POST, "/_cluster/tasks")
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"kind":"{kind}"}}"#));
    match client.send(request) {
        Ok(reply) => {
            recorder.status("start-task", reply.status);
            // 202 started, 409 one is running, 503 no leader now.
            if ![202, 409, 503].contains(&reply.status) {
                recorder.anomaly(
                    node,
                    format!("start {kind}: {} answered {}: {}", reply.request, reply.status, reply.text()),
                );
            }
        }
        Err(_) => recorder.status("start-task", 0),
    }
}
