//! The cross-domain harness: random command sequences of every domain keep
//! every domain's invariants (`check_invariants`) and the transition rules
//! below, replays are idempotent, rejected commands change nothing, and two
//! replicas applying the same log agree byte for byte.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_model::apply::{check_invariants, request_key, REQUEST_ID_RETENTION_MS};
use flotilla_model::blobs::{self, BackfillCursor, BlobRecord, GcState, Tombstone};
use flotilla_model::oci::{self, keys, ManifestRecord, PutManifest, TagRecord};
use flotilla_model::store::{decode, tables as table, MemoryState, StateRead};
use flotilla_model::system::{self, Layout, NodeRecord, NodeState};
use flotilla_model::tasks::{self, TaskCounters, TaskKind, TaskOptions, TaskRecord, TaskState, TaskUpdate, Trigger};
use flotilla_model::{apply, Command, ErrorKind, Outcome, Request, RequestId, Response};
use flotilla_storage::Digest;
use proptest::prelude::*;

const REPOS: [&str; 3] = ["a", "a/b", "c"];
const TAGS: [&str; 3] = ["latest", "v1", "v2"];
const TASK_IDS: [&str; 3] = ["t1", "t2", "t3"];

fn blob_digest(i: u8) -> Digest {
    Digest::sha256_of(&[b'b', i])
}

/// A small universe of operations over 3 repositories, 5 blobs and manifests made from blob subsets.
#[derive(Debug, Clone)]
enum Op {
    /// With `stale`, the uploader had not yet seen the latest garbage collection.
    PutBlob {
        repo: usize,
        blob: u8,
        stale: bool,
    },
    /// Garbage-collect these blobs if unreferenced for `grace` ms, within task `task` if given.
    Collect {
        blobs: BTreeSet<u8>,
        grace: u64,
        task: Option<usize>,
    },
    CreateTask {
        task: usize,
    },
    UpdateTask {
        task: usize,
        state: Option<TaskState>,
    },
    CancelTask {
        task: usize,
    },
    Mount {
        from: usize,
        repo: usize,
        blob: u8,
    },
    Unlink {
        repo: usize,
        blob: u8,
    },
    PutManifest {
        repo: usize,
        blobs: BTreeSet<u8>,
        tag: Option<usize>,
        subject: Option<u8>,
        child: Option<u8>,
    },
    DeleteManifest {
        repo: usize,
        manifest: u8,
    },
    DeleteTag {
        repo: usize,
        tag: usize,
    },
    PutNode {
        id: u64,
        capacity: u64,
    },
    SetNodeState {
        id: u64,
        state: NodeState,
    },
    /// A layout `skew` versions after the current one (1 = the valid next one).
    PutLayout {
        skew: u64,
        owners: u64,
        malformed: bool,
    },
    MarkLayoutSynced {
        skew: u64,
    },
    /// GC's untagged policy over these manifests (indexes into those pushed).
    Prune {
        repo: usize,
        manifests: BTreeSet<u8>,
        grace: u64,
        task: Option<usize>,
    },
    Replay {
        back: usize,
    },
    /// One batch of the backfill, from the start or from the cursor it returned last.
    Backfill {
        restart: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let repo = 0..REPOS.len();
    let blob = 0u8..5;
    prop_oneof![
        (repo.clone(), blob.clone(), proptest::bool::weighted(0.2)).prop_map(|(repo, blob, stale)| Op::PutBlob {
            repo,
            blob,
            stale
        }),
        (proptest::collection::btree_set(0u8..6, 0..4), 0u64..40, proptest::option::of(0..TASK_IDS.len()))
            .prop_map(|(blobs, grace, task)| Op::Collect { blobs, grace, task }),
        (0..TASK_IDS.len()).prop_map(|task| Op::CreateTask { task }),
        (
            0..TASK_IDS.len(),
            proptest::option::of(prop_oneof![
                Just(TaskState::Scheduled),
                Just(TaskState::Running),
                Just(TaskState::Finished),
                Just(TaskState::Failed),
                Just(TaskState::Cancelled)
            ])
        )
            .prop_map(|(task, state)| Op::UpdateTask { task, state }),
        (0..TASK_IDS.len()).prop_map(|task| Op::CancelTask { task }),
        (repo.clone(), repo.clone(), blob.clone()).prop_map(|(from, repo, blob)| Op::Mount { from, repo, blob }),
        (repo.clone(), blob.clone()).prop_map(|(repo, blob)| Op::Unlink { repo, blob }),
        (
            repo.clone(),
            proptest::collection::btree_set(blob.clone(), 0..4),
            proptest::option::of(0..TAGS.len()),
            proptest::option::of(0u8..4),
            proptest::option::of(0u8..4),
        )
            .prop_map(|(repo, blobs, tag, subject, child)| Op::PutManifest {
                repo,
                blobs,
                tag,
                subject,
                child
            }),
        (repo.clone(), 0u8..16).prop_map(|(repo, manifest)| Op::DeleteManifest { repo, manifest }),
        (repo, 0..TAGS.len()).prop_map(|(repo, tag)| Op::DeleteTag { repo, tag }),
        (1u64..5, 0u64..3).prop_map(|(id, capacity)| Op::PutNode { id, capacity }),
        (1u64..5, prop_oneof![Just(NodeState::Active), Just(NodeState::Draining), Just(NodeState::Removed)])
            .prop_map(|(id, state)| Op::SetNodeState { id, state }),
        (0u64..3, 1u64..5, proptest::bool::weighted(0.2)).prop_map(|(skew, owners, malformed)| Op::PutLayout {
            skew,
            owners,
            malformed
        }),
        (0u64..2).prop_map(|skew| Op::MarkLayoutSynced { skew }),
        (0usize..8).prop_map(|back| Op::Replay { back }),
        proptest::bool::weighted(0.3).prop_map(|restart| Op::Backfill { restart }),
        (
            0..REPOS.len(),
            proptest::collection::btree_set(0u8..16, 0..5),
            0u64..60,
            proptest::option::of(0..TASK_IDS.len())
        )
            .prop_map(|(repo, manifests, grace, task)| Op::Prune { repo, manifests, grace, task }),
    ]
}

/// Deterministic manifest content for a blob set, so equal sets give equal digests.
fn manifest_for(
    repo: usize,
    blobs: &BTreeSet<u8>,
    subject: Option<u8>,
    child: Option<Digest>,
    tag: Option<usize>,
) -> PutManifest {
    let blob_digests: Vec<Digest> = blobs.iter().map(|b| blob_digest(*b)).collect();
    let subject = subject.map(|s| Digest::sha256_of(&[b's', s]));
    let content = serde_json::json!({
        "schemaVersion": 2,
        "layers": blob_digests.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "subject": subject.as_ref().map(|d| d.to_string()),
        "child": child.as_ref().map(|d| d.to_string()),
    })
    .to_string();
    PutManifest {
        repo: REPOS[repo].to_string(),
        digest: Digest::sha256_of(content.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        content,
        tag: tag.map(|t| TAGS[t].to_string()),
        blobs: blob_digests,
        manifests: child.into_iter().collect(),
        subject,
        artifact_type: None,
        annotations: BTreeMap::new(),
    }
}

struct Harness {
    state: MemoryState,
    history: Vec<(Request, Response)>,
    /// Manifest digests ever pushed, so deletes and index children can name them.
    manifests: Vec<Digest>,
    clock: u64,
    /// Where the next backfill batch starts.
    backfill: BackfillCursor,
}

impl Harness {
    fn new() -> Self {
        Harness {
            state: MemoryState::default(),
            history: Vec::new(),
            manifests: Vec::new(),
            clock: 1_000,
            backfill: BackfillCursor::start(),
        }
    }

    fn run(&mut self, op: &Op) {
        self.clock += 7;
        let command = match op {
            Op::PutBlob { repo, blob, stale } => {
                let epoch = self.gc().epoch;
                Command::Oci(oci::Command::PutBlob {
                    repo: REPOS[*repo].into(),
                    digest: blob_digest(*blob),
                    size: u64::from(*blob) * 10,
                    gc_epoch: if *stale { epoch.saturating_sub(1) } else { epoch },
                })
            }
            Op::Collect { blobs, grace, task } => Command::Blobs(blobs::Command::CollectBlobs {
                task: task.map(|t| TASK_IDS[t].to_string()),
                digests: blobs.iter().map(|b| blob_digest(*b)).collect(),
                unreferenced_before_ms: self.clock.saturating_sub(*grace),
            }),
            Op::CreateTask { task } => Command::Tasks(tasks::Command::CreateTask(Box::new(TaskRecord::new(
                TASK_IDS[*task].into(),
                TaskKind::Gc,
                Trigger::Operator,
                TaskOptions::default(),
                self.clock,
            )))),
            Op::UpdateTask { task, state } => Command::Tasks(tasks::Command::UpdateTask(TaskUpdate {
                id: TASK_IDS[*task].into(),
                state: *state,
                node: Some(1),
                counters: TaskCounters { scanned: 1, ..TaskCounters::default() },
                error: None,
                cursor: Some(format!("{}", self.clock)),
            })),
            Op::CancelTask { task } => Command::Tasks(tasks::Command::CancelTask { id: TASK_IDS[*task].into() }),
            Op::Mount { from, repo, blob } => {
                let mount = oci::Command::MountBlob {
                    from: REPOS[*from].into(),
                    repo: REPOS[*repo].into(),
                    digest: blob_digest(*blob),
                };
                Command::Oci(mount)
            }
            Op::Unlink { repo, blob } => {
                Command::Oci(oci::Command::UnlinkBlob { repo: REPOS[*repo].into(), digest: blob_digest(*blob) })
            }
            Op::PutManifest { repo, blobs, tag, subject, child } => {
                let child = child.and_then(|c| self.manifests.get(c as usize).cloned());
                let manifest = manifest_for(*repo, blobs, *subject, child, *tag);
                self.manifests.push(manifest.digest.clone());
                Command::Oci(oci::Command::PutManifest(Box::new(manifest)))
            }
            Op::DeleteManifest { repo, manifest } => {
                let Some(digest) = self.manifests.get(*manifest as usize).cloned() else { return };
                Command::Oci(oci::Command::DeleteManifest { repo: REPOS[*repo].into(), digest })
            }
            Op::DeleteTag { repo, tag } => {
                Command::Oci(oci::Command::DeleteTag { repo: REPOS[*repo].into(), tag: TAGS[*tag].into() })
            }
            Op::PutNode { id, capacity } => Command::System(system::Command::PutNode(NodeRecord {
                id: *id,
                http_addr: format!("10.0.0.{id}:5000"),
                rpc_addr: format!("10.0.0.{id}:5001"),
                gossip_addr: Some(format!("10.0.0.{id}:5002")),
                zone: None,
                capacity: *capacity,
                state: NodeState::Active,
                joined_ms: self.clock,
                model_version: 1,
            })),
            Op::SetNodeState { id, state } => Command::System(system::Command::SetNodeState { id: *id, state: *state }),
            Op::PutLayout { skew, owners, malformed } => {
                let version = self.layout().map_or(0, |layout| layout.version) + skew;
                let partitions = 8u32;
                let mut table: Vec<Vec<u64>> =
                    (0..partitions as u64).map(|p| (0..*owners).map(|o| 1 + (p + o) % 4).collect()).collect();
                if *malformed {
                    table[3].clear();
                }
                let previous = self.layout().map(|layout| layout.owners);
                Command::System(system::Command::PutLayout(Box::new(Layout {
                    version,
                    partitions,
                    replication_factor: 3,
                    owners: table,
                    previous,
                    created_ms: self.clock,
                })))
            }
            Op::MarkLayoutSynced { skew } => {
                let version = self.layout().map_or(0, |layout| layout.version) + skew;
                Command::System(system::Command::MarkLayoutSynced { version })
            }
            Op::Prune { repo, manifests, grace, task } => Command::Oci(oci::Command::PruneManifests {
                task: task.map(|t| TASK_IDS[t].to_string()),
                repo: REPOS[*repo].into(),
                digests: manifests.iter().filter_map(|m| self.manifests.get(*m as usize).cloned()).collect(),
                created_before_ms: self.clock.saturating_sub(*grace),
            }),
            Op::Backfill { restart } => {
                if *restart {
                    self.backfill = BackfillCursor::start();
                }
                Command::Blobs(blobs::Command::Backfill { from: self.backfill.clone() })
            }
            Op::Replay { back } => {
                let Some((request, response)) = self.history.iter().rev().nth(*back).cloned() else { return };
                let before = self.state.clone();
                let again = apply(&mut self.state, &request).unwrap();
                assert_eq!(again, response, "a replayed request id returns its first response");
                assert_eq!(self.state, before, "a replayed request id changes nothing");
                return;
            }
        };
        let request = Request { request_id: RequestId(self.history.len() as u128 + 1), time_ms: self.clock, command };
        let before = self.state.clone();
        let layout_before = self.layout();
        let removed_before: BTreeSet<u64> = self.removed_nodes();
        let blobs_before: BTreeMap<Vec<u8>, BlobRecord> = self.table(table::BLOB).into_iter().collect();
        let tasks_before: Vec<(Vec<u8>, TaskRecord)> = self.table(table::TASK);
        let gc_before = self.gc();
        let manifests_before: Vec<(Vec<u8>, ManifestRecord)> = self.table(table::OCI_REPO_MANIFEST);
        let tags_before: Vec<(Vec<u8>, TagRecord)> = self.table(table::OCI_TAG);
        let response = apply(&mut self.state, &request).unwrap();
        if let Response::Applied(Outcome::Blobs(blobs::Outcome::Backfilled { next })) = &response {
            self.backfill = next.clone().unwrap_or_else(BackfillCursor::start);
        }
        self.check_collection(&request.command, &response, &blobs_before, gc_before);
        self.check_prune(&request.command, &manifests_before, &tags_before);
        // An ended task never changes again (it may only be dropped to keep the list short).
        for (key, task) in tasks_before.iter().filter(|(_, task)| task.state.is_terminal()) {
            if let Some(bytes) = self.state.entries.get(key) {
                assert_eq!(&decode::<TaskRecord>(bytes).unwrap(), task, "an ended task changed: {request:?}");
            }
        }
        if let Response::Rejected(_) = response {
            let mut expected = before.clone();
            // Only the request-id bookkeeping may change on a rejection.
            expected.entries.retain(|k, _| k[0] != table::REQUEST && k[0] != table::REQUEST_TIME);
            let mut actual = self.state.clone();
            actual.entries.retain(|k, _| k[0] != table::REQUEST && k[0] != table::REQUEST_TIME);
            assert_eq!(actual, expected, "a rejected command changes nothing: {request:?}");
        }
        // A layout only ever advances by one version, and only when well formed.
        match (layout_before.map(|l| l.version), self.layout()) {
            (before, Some(after)) => {
                assert!(after.is_well_formed(), "a malformed layout was stored");
                let current = before.unwrap_or(0);
                assert!(
                    after.version == current || after.version == current + 1,
                    "layout went from {before:?} to {}",
                    after.version
                );
            }
            (Some(_), None) => panic!("the layout disappeared"),
            (None, None) => {}
        }
        // A removed node stays removed.
        assert!(removed_before.is_subset(&self.removed_nodes()), "a removed node came back: {request:?}");
        self.history.push((request, response));
    }

    /// What a collection or an upload may do to blob records.
    fn check_collection(
        &self,
        command: &Command,
        response: &Response,
        before: &BTreeMap<Vec<u8>, BlobRecord>,
        gc_before: GcState,
    ) {
        let after: BTreeMap<Vec<u8>, BlobRecord> = self.table(table::BLOB).into_iter().collect();
        match command {
            Command::Blobs(blobs::Command::CollectBlobs { digests, unreferenced_before_ms, .. }) => {
                for (key, record) in before {
                    if after.contains_key(key) {
                        continue;
                    }
                    let listed = digests.iter().any(|d| blobs::blob_key(d) == *key);
                    assert!(listed, "a blob that was not listed was collected");
                    assert_eq!(record.refcount, 0, "a referenced blob was collected");
                    assert!(
                        record.unreferenced_since_ms.is_some_and(|t| t <= *unreferenced_before_ms),
                        "a blob inside its grace period was collected"
                    );
                }
                if !matches!(response, Response::Rejected(_)) {
                    assert_eq!(self.gc().epoch, gc_before.epoch + 1, "each collection is a new epoch");
                    // Every blob that is gone (collected now, or a stray copy without a record) is fenced.
                    for digest in digests.iter().filter(|d| !after.contains_key(&blobs::blob_key(d))) {
                        let tombstone: Tombstone = decode(&self.state.entries[&blobs::tombstone_key(digest)]).unwrap();
                        assert_eq!(tombstone.epoch, gc_before.epoch + 1);
                    }
                }
            }
            Command::Oci(oci::Command::PutBlob { digest, gc_epoch, .. }) => {
                let tombstone =
                    self.state.entries.get(&blobs::tombstone_key(digest)).map(|b| decode::<Tombstone>(b).unwrap());
                if tombstone.is_some_and(|t| t.epoch > *gc_epoch) {
                    assert!(
                        matches!(response, Response::Rejected(_)),
                        "an upload older than the collection of its blob recorded it"
                    );
                }
            }
            _ => assert!(before.keys().all(|key| after.contains_key(key)), "only a collection forgets blobs"),
        }
    }

    /// What pruning untagged manifests may delete: only listed, old enough,
    /// untagged manifests that no manifest of the repository lists and whose
    /// subject is gone; and tags are never touched.
    fn check_prune(
        &self,
        command: &Command,
        before: &[(Vec<u8>, ManifestRecord)],
        tags_before: &[(Vec<u8>, TagRecord)],
    ) {
        let Command::Oci(oci::Command::PruneManifests { repo, digests, created_before_ms, .. }) = command else {
            return;
        };
        let tags_after: Vec<(Vec<u8>, TagRecord)> = self.table(table::OCI_TAG);
        assert_eq!(&tags_after, tags_before, "pruning changed a tag");
        for digest in digests {
            let key = keys::repo_manifest(repo, digest);
            let Some((_, record)) = before.iter().find(|(k, _)| *k == key) else { continue };
            if self.state.entries.contains_key(&key) {
                continue;
            }
            assert!(record.created_ms <= *created_before_ms, "a manifest inside its grace period was pruned");
            let tagged =
                tags_before.iter().any(|(k, tag)| k.starts_with(&keys::tag_prefix(repo)) && tag.digest == *digest);
            assert!(!tagged, "a tagged manifest was pruned");
            let same_repo = |k: &Vec<u8>| k.starts_with(&keys::repo_manifest_prefix(repo));
            let listed = before.iter().any(|(k, other)| same_repo(k) && other.manifests.contains(digest));
            assert!(!listed, "a manifest an index lists was pruned");
            if let Some(subject) = &record.subject {
                let subject_present = before.iter().any(|(k, _)| *k == keys::repo_manifest(repo, subject));
                assert!(!subject_present, "a referrer of a present manifest was pruned");
            }
        }
        let unlisted = |k: &Vec<u8>| !digests.iter().any(|d| keys::repo_manifest(repo, d) == *k);
        for (key, _) in before.iter().filter(|(k, _)| unlisted(k)) {
            assert!(self.state.entries.contains_key(key), "pruning deleted a manifest it was not given");
        }
    }

    fn gc(&self) -> GcState {
        blobs::Reader::new(&self.state as &dyn StateRead).gc_state().unwrap()
    }

    fn layout(&self) -> Option<Layout> {
        system::Reader::new(&self.state as &dyn StateRead).layout().unwrap()
    }

    fn removed_nodes(&self) -> BTreeSet<u64> {
        self.table::<NodeRecord>(table::NODE)
            .into_iter()
            .filter(|(_, node)| node.state == NodeState::Removed)
            .map(|(_, node)| node.id)
            .collect()
    }

    fn table<T: serde::de::DeserializeOwned>(&self, prefix: u8) -> Vec<(Vec<u8>, T)> {
        self.state
            .entries
            .iter()
            .filter(|(k, _)| k[0] == prefix)
            .map(|(k, v)| (k.clone(), decode::<T>(v).unwrap()))
            .collect()
    }

    fn check_invariants(&self) {
        if let Err(violation) = check_invariants(&self.state) {
            panic!("{violation}\nafter {:?}", self.history.last());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_the_invariants(ops in proptest::collection::vec(op_strategy(), 1..80)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.run(op);
            harness.check_invariants();
        }
    }

    #[test]
    fn two_replicas_applying_the_same_log_agree(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.run(op);
        }
        let mut replica = MemoryState::default();
        for (request, response) in &harness.history {
            prop_assert_eq!(&apply(&mut replica, request).unwrap(), response);
        }
        prop_assert_eq!(replica, harness.state);
    }
}

#[test]
fn a_manifest_with_an_unlinked_blob_is_rejected() {
    let mut state = MemoryState::default();
    let manifest = manifest_for(0, &BTreeSet::from([1]), None, None, Some(0));
    let command = Command::Oci(oci::Command::PutManifest(Box::new(manifest)));
    let request = Request { request_id: RequestId(1), time_ms: 1, command };
    match apply(&mut state, &request).unwrap() {
        Response::Rejected(rejection) => {
            assert_eq!(rejection.digest(), Some(blob_digest(1).to_string().as_str()));
            assert_eq!(
                (rejection.kind, rejection.code.as_str()),
                (ErrorKind::PreconditionFailed, oci::code::MANIFEST_BLOB_UNKNOWN)
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn request_ids_expire_after_the_retention() {
    let mut state = MemoryState::default();
    let first = Request {
        request_id: RequestId(1),
        time_ms: 10,
        command: Command::Oci(oci::Command::DeleteTag { repo: "a".into(), tag: "x".into() }),
    };
    apply(&mut state, &first).unwrap();
    assert!(state.entries.contains_key(&request_key(RequestId(1))));
    let later =
        Request { request_id: RequestId(2), time_ms: 11 + REQUEST_ID_RETENTION_MS, command: first.command.clone() };
    apply(&mut state, &later).unwrap();
    assert!(!state.entries.contains_key(&request_key(RequestId(1))));
    assert!(state.entries.contains_key(&request_key(RequestId(2))));
}

#[test]
fn collection_forgets_unreferenced_blobs_after_the_grace_and_fences_old_uploads() {
    let mut state = MemoryState::default();
    let mut id = 0u128;
    let mut run = |state: &mut MemoryState, time_ms: u64, command: Command| {
        id += 1;
        apply(state, &Request { request_id: RequestId(id), time_ms, command }).unwrap()
    };
    let (kept, dropped) = (blob_digest(1), blob_digest(2));
    for digest in [&kept, &dropped] {
        let put =
            Command::Oci(oci::Command::PutBlob { repo: "a".into(), digest: digest.clone(), size: 3, gc_epoch: 0 });
        assert_eq!(run(&mut state, 100, put), Response::Ok);
    }
    let manifest = manifest_for(0, &BTreeSet::from([1]), None, None, Some(0));
    assert_eq!(run(&mut state, 110, Command::Oci(oci::Command::PutManifest(Box::new(manifest)))), Response::Ok);
    let both = vec![kept.clone(), dropped.clone()];
    // Inside the grace period nothing goes.
    let collect = |digests: Vec<Digest>, unreferenced_before_ms| {
        Command::Blobs(blobs::Command::CollectBlobs { task: None, digests, unreferenced_before_ms })
    };
    let collected =
        |blobs, bytes| Response::Applied(flotilla_model::Outcome::Blobs(blobs::Outcome::Collected { blobs, bytes }));
    assert_eq!(run(&mut state, 120, collect(both.clone(), 99)), collected(0, 0));
    assert!(state.entries.contains_key(&blobs::blob_key(&dropped)));
    // After it, only the unreferenced blob goes, with its link.
    assert_eq!(run(&mut state, 130, collect(both, 100)), collected(1, 3));
    assert!(state.entries.contains_key(&blobs::blob_key(&kept)));
    assert!(!state.entries.contains_key(&blobs::blob_key(&dropped)));
    assert!(!state.entries.contains_key(&keys::repo_blob("a", &dropped)));
    // An upload that began before the collection (epoch 1) must upload again; a later one records the blob.
    let stale = Command::Oci(oci::Command::PutBlob { repo: "a".into(), digest: dropped.clone(), size: 3, gc_epoch: 1 });
    assert!(matches!(run(&mut state, 140, stale), Response::Rejected(r) if r.code == blobs::code::BLOB_COLLECTED));
    let fresh = Command::Oci(oci::Command::PutBlob { repo: "a".into(), digest: dropped.clone(), size: 3, gc_epoch: 2 });
    assert_eq!(run(&mut state, 150, fresh), Response::Ok);
}

/// A state as 0.1.0 left it — counts but no holder rows, no unreferenced
/// index — is made whole by the backfill, after which every invariant holds
/// and deleting a manifest counted before the rows existed still frees its blobs.
#[test]
fn the_backfill_completes_a_state_written_before_holder_rows() {
    let mut state = MemoryState::default();
    let mut id = 0u128;
    let mut run = |state: &mut MemoryState, command: Command| {
        id += 1;
        apply(state, &Request { request_id: RequestId(id), time_ms: 100 + id as u64, command }).unwrap()
    };
    for blob in 0..3 {
        let put = oci::Command::PutBlob { repo: "a".into(), digest: blob_digest(blob), size: 3, gc_epoch: 0 };
        run(&mut state, Command::Oci(put));
    }
    let first = manifest_for(0, &BTreeSet::from([0, 1]), None, None, Some(0));
    let second = manifest_for(0, &BTreeSet::from([1]), None, None, None);
    for manifest in [&first, &second] {
        run(&mut state, Command::Oci(oci::Command::PutManifest(Box::new(manifest.clone()))));
    }
    // What 0.1.0 kept: drop the rows and the index (the counts stay).
    state.entries.retain(|key, _| key[0] != table::BLOB_REF && key[0] != table::BLOB_UNREFERENCED);
    assert!(check_invariants(&state).is_err(), "the harness sees what is missing");
    let mut from = BackfillCursor::start();
    loop {
        match run(&mut state, Command::Blobs(blobs::Command::Backfill { from: from.clone() })) {
            Response::Applied(Outcome::Blobs(blobs::Outcome::Backfilled { next: Some(next) })) => from = next,
            Response::Applied(Outcome::Blobs(blobs::Outcome::Backfilled { next: None })) => break,
            other => panic!("backfill answered {other:?}"),
        }
    }
    check_invariants(&state).unwrap();
    assert!(blobs::Reader::new(&state as &dyn StateRead).gc_state().unwrap().indexed);
    let delete = oci::Command::DeleteManifest { repo: "a".into(), digest: first.digest.clone() };
    run(&mut state, Command::Oci(delete));
    check_invariants(&state).unwrap();
    let reader = blobs::Reader::new(&state as &dyn StateRead);
    assert_eq!(reader.blob(&blob_digest(0)).unwrap().unwrap().refcount, 0);
    assert_eq!(reader.blob(&blob_digest(1)).unwrap().unwrap().refcount, 1);
    let unreferenced: Vec<Digest> =
        reader.unreferenced(u64::MAX, None, 10).unwrap().into_iter().map(|(_, d)| d).collect();
    // Oldest first: blob 2 was never held, blob 0 only until the delete.
    assert_eq!(unreferenced, [blob_digest(2), blob_digest(0)]);
}
