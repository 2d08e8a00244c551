//! Property tests of the pure state machine: random command sequences keep its
//! invariants, replays are idempotent, and two replicas agree byte for byte.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_raft::command::{Command, PutManifest, Request, RequestId, Response};
use flotilla_raft::state_machine::keys::{self, table};
use flotilla_raft::state_machine::memory::MemoryState;
use flotilla_raft::state_machine::model::{apply, decode};
use flotilla_raft::state_machine::records::{
    BlobRecord, GcState, ManifestContent, ManifestRecord, TagRecord, Tombstone,
};
use flotilla_raft::task::{TaskCounters, TaskKind, TaskOptions, TaskRecord, TaskState, TaskUpdate, Trigger};
use flotilla_raft::{Layout, NodeRecord, NodeState};
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
}

impl Harness {
    fn new() -> Self {
        Harness { state: MemoryState::default(), history: Vec::new(), manifests: Vec::new(), clock: 1_000 }
    }

    fn run(&mut self, op: &Op) {
        self.clock += 7;
        let command = match op {
            Op::PutBlob { repo, blob, stale } => {
                let epoch = self.gc().epoch;
                Command::PutBlob {
                    repo: REPOS[*repo].into(),
                    digest: blob_digest(*blob),
                    size: u64::from(*blob) * 10,
                    gc_epoch: if *stale { epoch.saturating_sub(1) } else { epoch },
                }
            }
            Op::Collect { blobs, grace, task } => Command::CollectBlobs {
                task: task.map(|t| TASK_IDS[t].to_string()),
                digests: blobs.iter().map(|b| blob_digest(*b)).collect(),
                unreferenced_before_ms: self.clock.saturating_sub(*grace),
            },
            Op::CreateTask { task } => Command::CreateTask(Box::new(TaskRecord::new(
                TASK_IDS[*task].into(),
                TaskKind::Gc,
                Trigger::Operator,
                TaskOptions::default(),
                self.clock,
            ))),
            Op::UpdateTask { task, state } => Command::UpdateTask(TaskUpdate {
                id: TASK_IDS[*task].into(),
                state: *state,
                node: Some(1),
                counters: TaskCounters { scanned: 1, ..TaskCounters::default() },
                error: None,
                cursor: Some(format!("{}", self.clock)),
            }),
            Op::CancelTask { task } => Command::CancelTask { id: TASK_IDS[*task].into() },
            Op::Mount { from, repo, blob } => {
                Command::MountBlob { from: REPOS[*from].into(), repo: REPOS[*repo].into(), digest: blob_digest(*blob) }
            }
            Op::Unlink { repo, blob } => Command::UnlinkBlob { repo: REPOS[*repo].into(), digest: blob_digest(*blob) },
            Op::PutManifest { repo, blobs, tag, subject, child } => {
                let child = child.and_then(|c| self.manifests.get(c as usize).cloned());
                let manifest = manifest_for(*repo, blobs, *subject, child, *tag);
                self.manifests.push(manifest.digest.clone());
                Command::PutManifest(Box::new(manifest))
            }
            Op::DeleteManifest { repo, manifest } => {
                let Some(digest) = self.manifests.get(*manifest as usize).cloned() else { return };
                Command::DeleteManifest { repo: REPOS[*repo].into(), digest }
            }
            Op::DeleteTag { repo, tag } => Command::DeleteTag { repo: REPOS[*repo].into(), tag: TAGS[*tag].into() },
            Op::PutNode { id, capacity } => Command::PutNode(NodeRecord {
                id: *id,
                http_addr: format!("10.0.0.{id}:5000"),
                rpc_addr: format!("10.0.0.{id}:5001"),
                gossip_addr: Some(format!("10.0.0.{id}:5002")),
                zone: None,
                capacity: *capacity,
                state: NodeState::Active,
                joined_ms: self.clock,
            }),
            Op::SetNodeState { id, state } => Command::SetNodeState { id: *id, state: *state },
            Op::PutLayout { skew, owners, malformed } => {
                let version = self.layout().map_or(0, |layout| layout.version) + skew;
                let partitions = 8u32;
                let mut table: Vec<Vec<u64>> =
                    (0..partitions as u64).map(|p| (0..*owners).map(|o| 1 + (p + o) % 4).collect()).collect();
                if *malformed {
                    table[3].clear();
                }
                let previous = self.layout().map(|layout| layout.owners);
                Command::PutLayout(Box::new(Layout {
                    version,
                    partitions,
                    replication_factor: 3,
                    owners: table,
                    previous,
                    created_ms: self.clock,
                }))
            }
            Op::MarkLayoutSynced { skew } => {
                Command::MarkLayoutSynced { version: self.layout().map_or(0, |layout| layout.version) + skew }
            }
            Op::Prune { repo, manifests, grace, task } => Command::PruneManifests {
                task: task.map(|t| TASK_IDS[t].to_string()),
                repo: REPOS[*repo].into(),
                digests: manifests.iter().filter_map(|m| self.manifests.get(*m as usize).cloned()).collect(),
                created_before_ms: self.clock.saturating_sub(*grace),
            },
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
        let manifests_before: Vec<(Vec<u8>, ManifestRecord)> = self.table(table::REPO_MANIFEST);
        let tags_before: Vec<(Vec<u8>, TagRecord)> = self.table(table::TAG);
        let response = apply(&mut self.state, &request).unwrap();
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
            Command::CollectBlobs { digests, unreferenced_before_ms, .. } => {
                for (key, record) in before {
                    if after.contains_key(key) {
                        continue;
                    }
                    let listed = digests.iter().any(|d| keys::blob(d) == *key);
                    assert!(listed, "a blob that was not listed was collected");
                    assert_eq!(record.refcount, 0, "a referenced blob was collected");
                    assert!(
                        record.unreferenced_since_ms.is_some_and(|t| t <= *unreferenced_before_ms),
                        "a blob inside its grace period was collected"
                    );
                }
                if *response == Response::Ok {
                    assert_eq!(self.gc().epoch, gc_before.epoch + 1, "each collection is a new epoch");
                    // Every blob that is gone (collected now, or a stray copy without a record) is fenced.
                    for digest in digests.iter().filter(|d| !after.contains_key(&keys::blob(d))) {
                        let tombstone: Tombstone = decode(&self.state.entries[&keys::tombstone(digest)]).unwrap();
                        assert_eq!(tombstone.epoch, gc_before.epoch + 1);
                    }
                }
            }
            Command::PutBlob { digest, gc_epoch, .. } => {
                let tombstone =
                    self.state.entries.get(&keys::tombstone(digest)).map(|b| decode::<Tombstone>(b).unwrap());
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
        let Command::PruneManifests { repo, digests, created_before_ms, .. } = command else { return };
        let tags_after: Vec<(Vec<u8>, TagRecord)> = self.table(table::TAG);
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
        self.state.entries.get(&keys::gc_state()).map(|bytes| decode(bytes).unwrap()).unwrap_or_default()
    }

    fn layout(&self) -> Option<Layout> {
        self.state.entries.get(&keys::layout()).map(|bytes| decode(bytes).unwrap())
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
        let blobs: BTreeMap<Vec<u8>, BlobRecord> = self.table(table::BLOB).into_iter().collect();
        let manifests: Vec<(Vec<u8>, ManifestRecord)> = self.table(table::REPO_MANIFEST);
        // Reference counts equal the references that exist.
        let mut expected_refs: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for (_, record) in &manifests {
            for blob in &record.blobs {
                let key = keys::blob(blob);
                assert!(blobs.contains_key(&key), "manifest points at a missing blob {blob}");
                *expected_refs.entry(key).or_default() += 1;
            }
        }
        for (key, record) in &blobs {
            let expected = expected_refs.get(key).copied().unwrap_or(0);
            assert_eq!(record.refcount, expected, "blob refcount");
            assert_eq!(record.unreferenced_since_ms.is_some(), expected == 0, "unreferenced_since iff refcount 0");
        }
        // Content refcount equals the number of repositories holding the manifest.
        let contents: Vec<(Vec<u8>, ManifestContent)> = self.table(table::CONTENT);
        for (key, content) in &contents {
            let (digest, _) = Digest::from_key_bytes(&key[1..]).unwrap();
            let holders =
                REPOS.iter().filter(|r| self.state.entries.contains_key(&keys::repo_manifest(r, &digest))).count();
            assert_eq!(content.refcount as usize, holders, "content refcount of {digest}");
        }
        for repo in REPOS {
            // Every tag points at a manifest of its repository.
            for tag in TAGS {
                if let Some(bytes) = self.state.entries.get(&keys::tag(repo, tag)) {
                    let record: TagRecord = decode(bytes).unwrap();
                    assert!(
                        self.state.entries.contains_key(&keys::repo_manifest(repo, &record.digest)),
                        "dangling tag {repo}:{tag}"
                    );
                    assert!(self.state.entries.contains_key(&keys::content(&record.digest)), "tag without content");
                }
            }
        }
        // A link needs the blob's record, and the reverse index matches the links one for one.
        let links: Vec<Vec<u8>> = self.state.entries.keys().filter(|k| k[0] == table::REPO_BLOB).cloned().collect();
        let reverse = self.state.entries.keys().filter(|k| k[0] == table::BLOB_LINK).count();
        assert_eq!(links.len(), reverse, "every link has its reverse entry");
        for repo in REPOS {
            for blob in 0u8..6 {
                let digest = blob_digest(blob);
                let linked = self.state.entries.contains_key(&keys::repo_blob(repo, &digest));
                assert_eq!(linked, self.state.entries.contains_key(&keys::blob_link(&digest, repo)));
                if linked {
                    assert!(blobs.contains_key(&keys::blob(&digest)), "{repo} links collected blob {digest}");
                }
            }
        }
        // Tombstones and their epoch index agree, and no epoch is ahead of the state's.
        let gc = self.gc();
        let tombstones: Vec<(Vec<u8>, Tombstone)> = self.table(table::TOMBSTONE);
        let by_epoch: Vec<(u64, Digest)> = self
            .state
            .entries
            .keys()
            .filter(|k| k[0] == table::TOMBSTONE_EPOCH)
            .map(|k| keys::tombstone_epoch_parts(k).unwrap())
            .collect();
        assert_eq!(tombstones.len(), by_epoch.len());
        for (epoch, digest) in &by_epoch {
            let tombstone: Tombstone = decode(&self.state.entries[&keys::tombstone(digest)]).unwrap();
            assert_eq!(tombstone.epoch, *epoch);
            assert!(*epoch <= gc.epoch && gc.floor <= gc.epoch);
        }
        // At most one task of a kind is active.
        let active = self.table::<TaskRecord>(table::TASK).into_iter().filter(|(_, t)| !t.state.is_terminal()).count();
        assert!(active <= 1, "{active} gc tasks active at once");
        // Referrer entries match manifests with a subject, one for one.
        let referrer_count = self.state.entries.keys().filter(|k| k[0] == table::REFERRER).count();
        let with_subject = manifests.iter().filter(|(_, m)| m.subject.is_some()).count();
        assert_eq!(referrer_count, with_subject);
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
    let request = Request { request_id: RequestId(1), time_ms: 1, command: Command::PutManifest(Box::new(manifest)) };
    match apply(&mut state, &request).unwrap() {
        Response::Rejected(rejection) => assert_eq!(rejection.digest, Some(blob_digest(1))),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn request_ids_expire_after_the_retention() {
    use flotilla_raft::state_machine::model::REQUEST_ID_RETENTION_MS;
    let mut state = MemoryState::default();
    let first = Request {
        request_id: RequestId(1),
        time_ms: 10,
        command: Command::DeleteTag { repo: "a".into(), tag: "x".into() },
    };
    apply(&mut state, &first).unwrap();
    assert!(state.entries.contains_key(&keys::request(RequestId(1))));
    let later =
        Request { request_id: RequestId(2), time_ms: 11 + REQUEST_ID_RETENTION_MS, command: first.command.clone() };
    apply(&mut state, &later).unwrap();
    assert!(!state.entries.contains_key(&keys::request(RequestId(1))));
    assert!(state.entries.contains_key(&keys::request(RequestId(2))));
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
        let put = Command::PutBlob { repo: "a".into(), digest: digest.clone(), size: 3, gc_epoch: 0 };
        assert_eq!(run(&mut state, 100, put), Response::Ok);
    }
    let manifest = manifest_for(0, &BTreeSet::from([1]), None, None, Some(0));
    assert_eq!(run(&mut state, 110, Command::PutManifest(Box::new(manifest))), Response::Ok);
    let both = vec![kept.clone(), dropped.clone()];
    // Inside the grace period nothing goes.
    let early = Command::CollectBlobs { task: None, digests: both.clone(), unreferenced_before_ms: 99 };
    assert_eq!(run(&mut state, 120, early), Response::Ok);
    assert!(state.entries.contains_key(&keys::blob(&dropped)));
    // After it, only the unreferenced blob goes, with its link.
    let late = Command::CollectBlobs { task: None, digests: both, unreferenced_before_ms: 100 };
    assert_eq!(run(&mut state, 130, late), Response::Ok);
    assert!(state.entries.contains_key(&keys::blob(&kept)));
    assert!(!state.entries.contains_key(&keys::blob(&dropped)));
    assert!(!state.entries.contains_key(&keys::repo_blob("a", &dropped)));
    // An upload that began before the collection (epoch 1) must upload again; a later one records the blob.
    let stale = Command::PutBlob { repo: "a".into(), digest: dropped.clone(), size: 3, gc_epoch: 1 };
    assert!(
        matches!(run(&mut state, 140, stale), Response::Rejected(r) if r.kind == flotilla_raft::command::RejectionKind::BlobCollected)
    );
    let fresh = Command::PutBlob { repo: "a".into(), digest: dropped.clone(), size: 3, gc_epoch: 2 };
    assert_eq!(run(&mut state, 150, fresh), Response::Ok);
}
