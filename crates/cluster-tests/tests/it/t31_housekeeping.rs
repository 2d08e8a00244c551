//! Housekeeping on a time basis: a node with short intervals takes Raft
//! snapshots (and purges its log) and compacts RocksDB without being asked,
//! and what it held survives a restart from the snapshot.

use std::time::Duration;

use flotilla_cluster_tests::content::random_bytes;
use flotilla_cluster_tests::{wait, Sandbox};

use crate::common::{repo, run_printing_logs};

#[test]
fn snapshots_and_compactions_run_on_their_intervals_and_a_restart_keeps_everything() {
    let sandbox = Sandbox::builder()
        .nodes(1)
        .arg("--raft-snapshot-interval")
        .arg("1s")
        .arg("--compaction-interval")
        .arg("1s")
        .build()
        .expect("sandbox");
    run_printing_logs(&sandbox, |sandbox| {
        let client = sandbox.client();
        let name = repo("t31", "housekeeping");
        let bytes = random_bytes(3000);
        let digest = client.push_blob_monolithic(&name, &bytes)?;
        // The count-based policy (10 000 entries) never fires here; the interval does.
        wait::until("a timed snapshot covering the push", Duration::from_secs(20), || {
            sandbox.metric(0, "flotilla_raft_timed_snapshots_total").is_ok_and(|count| count >= 1.0)
                && sandbox.metric(0, "flotilla_raft_snapshot_index").is_ok_and(|index| index >= 3.0)
        })?;
        wait::until("a compaction", Duration::from_secs(20), || {
            sandbox.metric(0, "flotilla_rocksdb_compactions_total").is_ok_and(|count| count >= 1.0)
        })?;
        let snapshots = std::fs::read_dir(sandbox.node(0).data_dir().join("snapshots"))?.count();
        anyhow::ensure!(snapshots >= 1, "no snapshot file on disk");
        sandbox.node(0).restart()?;
        let body = client.get_blob(&name, &digest)?.expect_status(200)?.body;
        anyhow::ensure!(body == bytes, "the blob came back different after the restart");
        Ok(())
    });
}
