//! Cluster identity between nodes: a node of another cluster that comes up at
//! a member's address (an address reused) takes none of the cluster's Raft
//! traffic and none of its gossip, and the cluster keeps serving around it.

use std::time::Duration;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::random_bytes;
use flotilla_cluster_tests::Sandbox;

use crate::common::{repo, run_printing_logs};

#[test]
fn a_stranger_at_a_members_address_takes_no_raft_traffic_and_no_gossip() {
    let cluster = Sandbox::builder().nodes(3).build().expect("cluster");
    cluster.wait_until_formed(3, Duration::from_secs(60)).expect("formed");
    run_printing_logs(&cluster, |cluster| {
        let leader = cluster.leader_index(0)?;
        let victim = (leader + 1) % 3;
        let other = (leader + 2) % 3;
        let our_id = cluster.cluster_get(leader, "state")?["cluster_id"].clone();

        cluster.node(victim).kill9();
        let stranger = Sandbox::builder().reuse_addresses_of(cluster.node(victim)).build()?;
        let their_id = stranger.cluster_get(0, "state")?["cluster_id"].clone();
        ensure!(their_id.is_string() && their_id != our_id, "the stranger must be another cluster");

        // The leader keeps replicating to the victim's address, which now
        // answers for another cluster; the cluster writes on without it.
        let name = repo("t43", "identity");
        let client = cluster.node(leader).client(cluster.admin_credentials());
        let mut digests = Vec::new();
        for _ in 0..5 {
            digests.push(client.push_blob_monolithic(&name, &random_bytes(10_000))?);
        }
        // Gossip from the stranger carries the wrong key: the victim stays down.
        cluster.wait_for_liveness(&[leader, other], victim, "down", Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_secs(2));

        let state = stranger.cluster_get(0, "state")?;
        ensure!(state["cluster_id"] == their_id, "the stranger's cluster id changed: {state}");
        let nodes = state["nodes"].as_array().context("nodes")?;
        ensure!(nodes.len() == 1, "the stranger took the cluster's membership: {state}");
        let stranger_client = stranger.node(0).client(stranger.admin_credentials());
        for digest in &digests {
            let reply = stranger_client.head_blob(&name, digest)?;
            ensure!(reply.status == 404, "the stranger serves the cluster's blob {digest}: {}", reply.status);
        }
        // And the cluster still serves what it wrote, from both members.
        for index in [leader, other] {
            let reader = cluster.node(index).client(cluster.admin_credentials());
            for digest in &digests {
                reader.head_blob(&name, digest)?.expect_status(200)?;
            }
        }
        Ok(())
    });
}
