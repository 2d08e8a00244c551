//! Failures of a minority: the leader killed mid-stream, a node down while
//! the others keep serving and catching up by snapshot when it returns, a
//! follower or the leader cut off by the network, which must not serve stale
//! reads, and a node joining and another draining while clients push and
//! pull. Each test has a cluster of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::{Blob, ImageManifest, Manifest};
use flotilla_cluster_tests::faults::{self, Partition};
use flotilla_cluster_tests::{wait, OciClient, Sandbox};

use crate::common::{repo, run_printing_logs};

/// A formed cluster of `nodes` with extra `serve` arguments.
fn cluster(nodes: usize, args: &[&str]) -> anyhow::Result<Sandbox> {
    let mut builder = Sandbox::builder().nodes(nodes);
    for arg in args {
        builder = builder.arg(*arg);
    }
    let sandbox = builder.build()?;
    sandbox.wait_until_formed(nodes.min(3), Duration::from_secs(60))?;
    Ok(sandbox)
}

/// A formed 3-node cluster whose nodes iptables can cut apart (the test
/// fails, not skips, where that needs root it does not have).
fn cluster_to_partition() -> Sandbox {
    if !faults::available() {
        panic!("this test needs root and iptables to cut loopback nodes apart");
    }
    cluster(3, &[]).expect("cluster")
}

/// One small image; what a push acknowledged.
#[derive(Debug, Clone)]
struct Pushed {
    name: String,
    tag: String,
    manifest: Manifest,
    layer: Blob,
}

/// Pushes a fresh two-blob image and tags it: the acknowledged result, or the
/// first failure (a real client would retry; the caller decides).
fn push_image(client: &OciClient, name: &str, tag: &str, annotation_bytes: usize) -> anyhow::Result<Pushed> {
    let config = Blob::random_config();
    let layer = Blob::random_layer(2048);
    client.push_blob_monolithic(name, &config.bytes)?;
    client.push_blob_monolithic(name, &layer.bytes)?;
    let mut manifest = ImageManifest::new(&config, &[&layer]);
    if annotation_bytes > 0 {
        manifest = manifest.annotation("org.example.padding", &"x".repeat(annotation_bytes));
    }
    let manifest = manifest.build();
    client.push_manifest(name, tag, &manifest)?.expect_status(201)?;
    Ok(Pushed { name: name.to_owned(), tag: tag.to_owned(), manifest, layer })
}

/// Fails unless `client`'s node serves the pushed image: tag, manifest and layer.
fn assert_serves(client: &OciClient, pushed: &Pushed, node: &str) -> anyhow::Result<()> {
    let manifest = client.get_manifest(&pushed.name, &pushed.tag)?;
    let manifest = manifest.expect_status(200).with_context(|| format!("{node}: {}:{}", pushed.name, pushed.tag))?;
    ensure!(manifest.body == pushed.manifest.bytes, "{node}: manifest of {} differs", pushed.tag);
    let layer = client.get_blob(&pushed.name, &pushed.layer.digest)?.expect_status(200)?;
    ensure!(layer.body == pushed.layer.bytes, "{node}: layer of {} differs", pushed.tag);
    Ok(())
}

#[test]
fn killing_the_leader_during_pushes_loses_no_acknowledged_push() {
    let sandbox = cluster(3, &[]).expect("cluster");
    run_printing_logs(&sandbox, |sandbox| {
        let leader = sandbox.leader_index(0)?;
        let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let name = repo("t41", "leader-kill");
        let acknowledged = Arc::new(Mutex::new(Vec::<(Instant, Pushed)>::new()));
        let failures = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = followers
            .iter()
            .map(|&index| {
                let client = sandbox.node(index).client(sandbox.admin_credentials());
                let (name, acknowledged, failures, stop) =
                    (name.clone(), acknowledged.clone(), failures.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        match push_image(&client, &name, &format!("n{index}-{n}"), 0) {
                            Ok(pushed) => acknowledged.lock().unwrap().push((Instant::now(), pushed)),
                            Err(error) => failures.lock().unwrap().push((Instant::now(), format!("{error:#}"))),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        let killed_at = Instant::now();
        sandbox.node(leader).kill9();
        std::thread::sleep(Duration::from_secs(6));
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.join().expect("writer thread");
        }

        let acknowledged = acknowledged.lock().unwrap().clone();
        let before = acknowledged.iter().filter(|(at, _)| *at < killed_at).count();
        let first_after = acknowledged.iter().map(|(at, _)| *at).filter(|at| *at > killed_at).min();
        let failover = first_after.context("no push succeeded after the leader died")? - killed_at;
        eprintln!(
            "pushes acknowledged: {} ({before} before the kill); failed attempts: {}; first write after kill: {failover:?}",
            acknowledged.len(),
            failures.lock().unwrap().len()
        );
        ensure!(before > 0, "no push succeeded before the kill");
        ensure!(failover < Duration::from_secs(5), "writes resumed only after {failover:?}");

        for &index in &followers {
            let client = sandbox.node(index).client(sandbox.admin_credentials());
            for (_, pushed) in &acknowledged {
                assert_serves(&client, pushed, &format!("survivor {index}"))?;
            }
        }
        sandbox.node(leader).restart()?;
        let client = sandbox.node(leader).client(sandbox.admin_credentials());
        for (_, pushed) in &acknowledged {
            assert_serves(&client, pushed, "the restarted old leader")?;
        }
        Ok(())
    });
}

#[test]
fn with_one_node_down_the_others_serve_and_it_catches_up_by_snapshot() {
    // Snapshots every 40 entries, sent in 16 KiB chunks: a node away for a
    // few dozen pushes must be brought back by a multi-chunk snapshot.
    let sandbox = cluster(3, &["--raft-snapshot-logs", "40", "--raft-snapshot-chunk-bytes", "16384"]).expect("cluster");
    run_printing_logs(&sandbox, |sandbox| {
        let leader = sandbox.leader_index(0)?;
        let down = (leader + 1) % 3;
        let up = (leader + 2) % 3;
        let name = repo("t41", "one-down");
        let orphan = sandbox.node(down).client(sandbox.admin_credentials()).start_upload(&name)?.expect_status(202)?;
        sandbox.node(down).kill9();
        // Gossip notices within seconds, on both survivors.
        let noticed = sandbox.wait_for_liveness(&[leader, up], down, "down", Duration::from_secs(10))?;
        eprintln!("a killed node was reported down after {noticed:?}");

        let client = sandbox.node(up).client(sandbox.admin_credentials());
        // A session held by the dead node cannot continue elsewhere, and says so.
        let reply = client.patch_chunk(&orphan.location()?, b"data", Some((0, 3)))?;
        ensure!(reply.status == 503 && reply.header("retry-after").is_some(), "{} {}", reply.status, reply.text());
        let mut pushed = Vec::new();
        for n in 0..40 {
            // 2 KiB of annotation per manifest makes the snapshot several chunks.
            pushed.push(push_image(&client, &name, &format!("v{n}"), 2048)?);
        }
        let leader_client = sandbox.node(leader).client(sandbox.admin_credentials());
        for image in &pushed {
            assert_serves(&leader_client, image, "leader")?;
        }

        sandbox.node(down).restart()?;
        let back = sandbox.wait_for_liveness(&[leader, up], down, "alive", Duration::from_secs(10))?;
        eprintln!("the restarted node was reported alive after {back:?}");
        let returned = sandbox.node(down).client(sandbox.admin_credentials());
        for image in &pushed {
            assert_serves(&returned, image, "the returned node")?;
        }
        let log = std::fs::read_to_string(sandbox.node(down).log_path())?;
        ensure!(log.contains("installed snapshot"), "the returned node caught up without a snapshot install");
        let chunks = std::fs::read_dir(sandbox.node(down).data_dir().join("snapshots"))?.count();
        ensure!(chunks > 0, "no snapshot file on the returned node");
        wait::until("the returned node to apply what the leader applied", Duration::from_secs(20), || {
            let ours = sandbox.cluster_get(down, "state").map(|s| s["last_applied"].as_u64());
            let theirs = sandbox.cluster_get(leader, "state").map(|s| s["last_applied"].as_u64());
            matches!((ours, theirs), (Ok(Some(a)), Ok(Some(b))) if a + 5 >= b)
        })?;
        Ok(())
    });
}

#[test]
fn a_node_cut_off_from_the_others_never_serves_a_stale_tag() {
    let sandbox = cluster_to_partition();
    run_printing_logs(&sandbox, |sandbox| {
        let leader = sandbox.leader_index(0)?;
        let cut = (leader + 1) % 3;
        let other = (leader + 2) % 3;
        let name = repo("t41", "stale");
        let leader_client = sandbox.node(leader).client(sandbox.admin_credentials());
        let first = push_image(&leader_client, &name, "moving", 0)?;
        let cut_client = sandbox.node(cut).client(sandbox.admin_credentials());
        assert_serves(&cut_client, &first, "the node before the cut")?;

        let partition = Partition::isolate(sandbox.node(cut), &[sandbox.node(leader), sandbox.node(other)])?;
        let second = push_image(&leader_client, &name, "moving", 0)?;
        // The cut-off node must answer with the new digest or an error, never the old one.
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut refused = 0;
        while Instant::now() < deadline {
            let reply = cut_client.get_manifest(&name, "moving")?;
            match reply.status {
                200 => ensure!(
                    reply.header("docker-content-digest") == Some(second.manifest.digest.as_str()),
                    "the cut-off node served the stale digest"
                ),
                503 => refused += 1,
                status => anyhow::bail!("unexpected status {status} from the cut-off node"),
            }
        }
        ensure!(refused > 0, "the cut-off node never said it could not confirm the read");
        // Gossip across the cut: the majority no longer hears the node.
        sandbox.wait_for_liveness(&[leader, other], cut, "down", Duration::from_secs(10))?;
        partition.heal();
        sandbox.wait_for_liveness(&[leader, other], cut, "alive", Duration::from_secs(15))?;
        wait::until("the healed node to serve the new tag", Duration::from_secs(30), || {
            cut_client.get_manifest(&name, "moving").is_ok_and(|reply| {
                reply.status == 200 && reply.header("docker-content-digest") == Some(second.manifest.digest.as_str())
            })
        })?;
        Ok(())
    });
}

/// One GET of the tag on the cut-off leader: when it started, what it got.
struct LeaseRead {
    started: Instant,
    status: u16,
    digest: Option<String>,
}

/// The leader answers reads from its lease (no heartbeat round); cut off, it
/// must stop before the majority can have elected another leader and taken a
/// write, so no read that starts after the overwrite's 201 sees the old tag.
/// (Whichever stops it first: the lease lapsing 200 ms after the last
/// acknowledged heartbeat, or an entry the old leader appended after the cut,
/// which never commits, so reads wait for it until their deadline. The
/// lease's own arithmetic is proptested in `flotilla_raft::lease`.)
#[test]
fn a_leader_cut_off_never_serves_a_tag_the_majority_overwrote() {
    let sandbox = cluster_to_partition();
    run_printing_logs(&sandbox, |sandbox| {
        let old_leader = sandbox.leader_index(0)?;
        let majority = [(old_leader + 1) % 3, (old_leader + 2) % 3];
        let name = repo("t41", "lease");
        let old_client = sandbox.node(old_leader).client(sandbox.admin_credentials());
        let first = push_image(&old_client, &name, "moving", 0)?;
        assert_serves(&old_client, &first, "the leader before the cut")?;

        let partition =
            Partition::isolate(sandbox.node(old_leader), &[sandbox.node(majority[0]), sandbox.node(majority[1])])?;
        // A reader starts every 50 ms until a second after the overwrite below
        // was acknowledged, each with one GET of the tag (which may wait for
        // the read deadline, 10 s, before its 503).
        let reads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let spawner = {
            let (client, reads, name, stop) = (old_client.clone(), reads.clone(), name.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut readers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (client, reads, name) = (client.clone(), reads.clone(), name.clone());
                    readers.push(std::thread::spawn(move || {
                        let started = Instant::now();
                        if let Ok(reply) = client.get_manifest(&name, "moving") {
                            let digest = reply.header("docker-content-digest").map(str::to_owned);
                            reads.lock().unwrap().push(LeaseRead { started, status: reply.status, digest });
                        }
                    }));
                    std::thread::sleep(Duration::from_millis(50));
                }
                readers.into_iter().for_each(|reader| reader.join().expect("a reader thread panicked"));
            })
        };
        let majority_client = sandbox.node(majority[0]).client(sandbox.admin_credentials());
        let overwrite = wait::until_some(
            "the majority to take an overwrite of the tag",
            Duration::from_secs(30),
            wait::DEFAULT_POLL,
            || push_image(&majority_client, &name, "moving", 0).map(Some).map_err(|error| format!("{error:#}")),
        );
        let acknowledged = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        spawner.join().expect("the reader spawner panicked");
        let second = overwrite?;
        let reads = std::mem::take(&mut *reads.lock().unwrap());
        let after: Vec<&LeaseRead> = reads.iter().filter(|read| read.started > acknowledged).collect();
        ensure!(!after.is_empty(), "no read on the cut-off leader started after the overwrite was acknowledged");
        for read in &after {
            ensure!(
                read.status != 200 || read.digest.as_deref() == Some(second.manifest.digest.as_str()),
                "the cut-off leader served {:?} {:?} after the majority acknowledged {}",
                read.status,
                read.digest,
                second.manifest.digest
            );
        }
        ensure!(after.iter().any(|read| read.status == 503), "the cut-off leader never refused a read");
        partition.heal();
        Ok(())
    });
}

#[test]
fn a_fourth_node_joins_and_another_drains_while_clients_push_and_pull() {
    let mut sandbox = cluster(3, &[]).expect("cluster");
    let leader = sandbox.leader_index(0).expect("leader");
    // Clients stay on the leader and on the node that joins; the drained node
    // is neither.
    let drained = (1..3).find(|i| *i != leader).expect("a follower other than node 0");
    let name = repo("t41", "join-drain");
    let seed = push_image(&sandbox.node(leader).client(sandbox.admin_credentials()), &name, "seed", 0).expect("seed");
    let pushed = Arc::new(Mutex::new(vec![seed]));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let client = sandbox.node(leader).client(sandbox.admin_credentials());
        let (name, pushed, failures, stop) = (name.clone(), pushed.clone(), failures.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                match push_image(&client, &name, &format!("w{n}"), 0) {
                    Ok(image) => pushed.lock().unwrap().push(image),
                    Err(error) => failures.lock().unwrap().push(format!("push {n}: {error:#}")),
                }
                let images = pushed.lock().unwrap().clone();
                let image = &images[n % images.len()];
                if let Err(error) = assert_serves(&client, image, "leader") {
                    failures.lock().unwrap().push(format!("pull: {error:#}"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    sandbox.add_node().expect("a fourth node joins");
    run_printing_logs(&sandbox, |sandbox| {
        wait::until_some(
            "node 4 to own partitions in a synced layout",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                let state = sandbox.cluster_get(0, "state").map_err(|e| format!("{e:#}"))?;
                let node4 = state["nodes"].as_array().and_then(|nodes| nodes.iter().find(|n| n["id"] == 4).cloned());
                let owns = node4.as_ref().is_some_and(|n| n["partitions"].as_u64().unwrap_or(0) > 0);
                let synced = state["layout"]["sync_state"] == "synced";
                if owns && synced {
                    Ok(Some(()))
                } else {
                    Err(format!("{state}"))
                }
            },
        )?;
        let state = sandbox.cluster_get(0, "state")?;
        let node4 = state["nodes"].as_array().unwrap().iter().find(|n| n["id"] == 4).unwrap().clone();
        assert_eq!(node4["role"], "learner", "the fourth node stays non-voting with voters = 3: {node4}");
        // R = 3 over 4 equal nodes: each owns three quarters of the partitions.
        let owned = node4["partitions"].as_u64().unwrap();
        ensure!((740..=796).contains(&owned), "node 4 owns {owned} of 1024 partitions");

        let http = reqwest::blocking::Client::builder().no_proxy().build()?;
        let drain_url = format!("{}/_cluster/nodes/{}/drain", sandbox.node(leader).base_url(), drained + 1);
        let reply = http.post(&drain_url).basic_auth("admin", Some(sandbox.admin_password())).send()?;
        ensure!(reply.status() == 202, "drain answered {}", reply.status());
        wait::until_some(
            "the drained node to be removed",
            Duration::from_secs(90),
            Duration::from_millis(200),
            || {
                let state = sandbox.cluster_get(leader, "state").map_err(|e| format!("{e:#}"))?;
                let nodes = state["nodes"].as_array().cloned().unwrap_or_default();
                let gone = nodes
                    .iter()
                    .any(|n| n["id"] == drained as u64 + 1 && n["state"] == "removed" && n["role"] == "none");
                let voters = nodes.iter().filter(|n| n["role"] == "voter").count();
                if gone && voters == 3 {
                    Ok(Some(()))
                } else {
                    Err(format!("{state}"))
                }
            },
        )?;
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    });
    stop.store(true, Ordering::SeqCst);
    worker.join().expect("worker");
    run_printing_logs(&sandbox, |sandbox| {
        let failures = failures.lock().unwrap();
        ensure!(failures.is_empty(), "client operations failed during join and drain: {failures:#?}");
        let images = pushed.lock().unwrap().clone();
        ensure!(images.len() > 5, "too few pushes ran: {}", images.len());
        for index in (0..4).filter(|i| *i != drained) {
            let client = sandbox.node(index).client(sandbox.admin_credentials());
            for image in &images {
                assert_serves(&client, image, &format!("node {index}"))?;
            }
        }
        Ok(())
    });
}
