//! Repair, scrub and storage optimization as an operator runs them, checked
//! by looking at every node's store on disk:
//!
//! - an owner that was down while blobs were pushed gets them back from a
//!   repair (and a dry run first only reports what is missing);
//! - a four-node cluster with R = 3 that loses a node for good has every blob
//!   back at three copies;
//! - scrub finds a flipped byte, quarantines the copy and replaces it;
//! - adding a node moves at most 1.15 × the ideal bytes, and the optimize task
//!   that follows drops the copies the old owners no longer need;
//! - the leader killed in the middle of a rebalance: the new leader finishes
//!   it and nothing is lost;
//! - with no operator at all, an owner that was down gets what it missed
//!   (the automatic repair).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use reqwest::blocking::Client;
use serde_json::Value;

use flotilla_cluster_tests::content::{random_bytes, sha256_digest};
use flotilla_cluster_tests::sandbox::{locate_binary, ADMIN_USER};
use flotilla_cluster_tests::{tools, wait, Sandbox};

use crate::common::{cluster, repo, run_printing_logs};

const TASK_TIMEOUT: Duration = Duration::from_secs(90);
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

fn http() -> anyhow::Result<Client> {
    Ok(Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?)
}

/// Every blob file in node `index`'s store: digest → size.
fn store_of(sandbox: &Sandbox, index: usize) -> BTreeMap<String, u64> {
    let root = sandbox.node(index).data_dir().join("blobs/blobs/sha256");
    let mut files = BTreeMap::new();
    for fan_out in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(fan_out.path()).into_iter().flatten().flatten() {
            if let Ok(metadata) = file.metadata() {
                files.insert(format!("sha256:{}", file.file_name().to_string_lossy()), metadata.len());
            }
        }
    }
    files
}

/// How many of the running nodes hold each of `digests`.
fn copies(sandbox: &Sandbox, nodes: &[usize], digests: &[String]) -> BTreeMap<String, usize> {
    let stores: Vec<_> = nodes.iter().map(|index| store_of(sandbox, *index)).collect();
    digests
        .iter()
        .map(|digest| (digest.clone(), stores.iter().filter(|store| store.contains_key(digest)).count()))
        .collect()
}

/// Pushes `count` random blobs of `min..max` bytes through node 0.
fn push_blobs(
    sandbox: &Sandbox,
    name: &str,
    count: usize,
    min: usize,
    max: usize,
) -> anyhow::Result<Vec<(String, u64)>> {
    let client = sandbox.node(0).client(sandbox.admin_credentials());
    let mut pushed = Vec::new();
    for i in 0..count {
        let size = min + (i * 7919) % (max - min).max(1);
        let bytes = random_bytes(size);
        pushed.push((client.push_blob_monolithic(name, &bytes)?, size as u64));
    }
    Ok(pushed)
}

/// Runs a task of `kind` to its end through the operator's CLI on node `index`.
fn run_task_with_cli(sandbox: &Sandbox, index: usize, kind: &str, dry_run: bool) -> anyhow::Result<Value> {
    let mut command = Command::new(locate_binary()?);
    command
        .arg("cluster")
        .args(["--url", &sandbox.node(index).base_url(), "--password", sandbox.admin_password()])
        .args([kind, "--wait"])
        .env_remove("FLOTILLA_USER");
    if dry_run {
        command.arg("--dry-run");
    }
    let finished = tools::run(command, TASK_TIMEOUT)?.expect_success()?;
    let task: Value = serde_json::from_str(&finished.stdout)?;
    ensure!(task["state"] == "finished" && task["kind"] == kind, "{task}");
    Ok(task)
}

/// Waits until node `index` sees a synced layout over exactly `nodes` (node ids), at least `version`.
fn wait_for_synced_layout(sandbox: &Sandbox, index: usize, version: u64, nodes: &[u64]) -> anyhow::Result<Value> {
    wait::until_some("a synced layout", SYNC_TIMEOUT, Duration::from_millis(200), || {
        let layout = sandbox.cluster_get(index, "layout").map_err(|error| error.to_string())?;
        let holders: Vec<u64> = layout["replicas"]
            .as_object()
            .map(|replicas| replicas.keys().filter_map(|node| node.parse().ok()).collect())
            .unwrap_or_default();
        let ready = layout["version"].as_u64() >= Some(version)
            && layout["sync_state"] == "synced"
            && holders.len() == nodes.len()
            && nodes.iter().all(|node| holders.contains(node));
        if ready {
            Ok(Some(layout))
        } else {
            Err(layout["sync_state"].to_string())
        }
    })
}

/// Waits until no optimize task is scheduled or running.
fn wait_for_optimizations(sandbox: &Sandbox, index: usize) -> anyhow::Result<()> {
    wait::until_some("optimize tasks to end", TASK_TIMEOUT, Duration::from_millis(200), || {
        let tasks = sandbox.cluster_get(index, "tasks").map_err(|error| error.to_string())?;
        let active =
            tasks["tasks"].as_array().into_iter().flatten().any(|task| {
                task["kind"] == "optimize" && matches!(task["state"].as_str(), Some("scheduled" | "running"))
            });
        if active {
            Err("optimize running".into())
        } else {
            Ok(Some(()))
        }
    })
}

/// A cluster where only the operator starts repairs (so a test sees what is missing).
fn cluster_without_auto_repair(nodes: usize) -> Sandbox {
    let sandbox = Sandbox::builder().nodes(nodes).env("FLOTILLA_AUTO_REPAIR", "false").build().expect("sandbox");
    sandbox.wait_until_formed(nodes.min(3), Duration::from_secs(60)).expect("cluster formed");
    sandbox
}

#[test]
fn repair_copies_what_an_owner_missed_while_it_was_down() {
    let sandbox = cluster_without_auto_repair(3);
    run_printing_logs(&sandbox, |sandbox| {
        let leader = sandbox.leader_index(0)?;
        let down = (0..3).find(|index| *index != leader && *index != 0).context("a follower")?;
        sandbox.node(down).kill9();
        let name = repo("t45", "missed");
        let pushed = push_blobs(sandbox, &name, 30, 1_000, 200_000)?;
        let digests: Vec<String> = pushed.iter().map(|(digest, _)| digest.clone()).collect();
        let missing_bytes: u64 = pushed.iter().map(|(_, size)| size).sum();
        sandbox.node(down).restart()?;
        ensure!(copies(sandbox, &[down], &digests).values().all(|count| *count == 0), "node {down} missed the writes");

        // A dry run reports what is missing and copies nothing.
        let dry = run_task_with_cli(sandbox, down, "repair", true)?;
        ensure!(dry["blobs"] == digests.len() as u64 && dry["bytes"] == missing_bytes, "{dry}");
        ensure!(sandbox.metric(down, "flotilla_partitions_under_replicated")? > 0.0);
        ensure!(copies(sandbox, &[down], &digests).values().all(|count| *count == 0), "a dry run copies nothing");

        let repaired = run_task_with_cli(sandbox, 0, "repair", false)?;
        ensure!(repaired["blobs"] == digests.len() as u64, "{repaired}");
        ensure!(repaired["bytes"] == missing_bytes && repaired["failed"] == 0, "{repaired}");
        ensure!(repaired["scanned"].as_u64() >= Some(3 * digests.len() as u64), "every owner checked: {repaired}");
        let counts = copies(sandbox, &[0, 1, 2], &digests);
        ensure!(counts.values().all(|count| *count == 3), "copies after repair: {counts:?}");
        for digest in &digests {
            let bytes = std::fs::read(sandbox.node(down).blob_path(digest))?;
            ensure!(&sha256_digest(&bytes) == digest, "the repaired copy of {digest} is intact");
        }
        ensure!(sandbox.metric(down, "flotilla_repair_copied_blobs_total")? == digests.len() as f64);
        ensure!(sandbox.metric(down, "flotilla_partitions_under_replicated")? == 0.0);

        // A healthy cluster: the next repair finds nothing to do.
        let again = run_task_with_cli(sandbox, 1, "repair", false)?;
        ensure!(again["blobs"] == 0 && again["failed"] == 0, "{again}");
        Ok(())
    });
}

#[test]
fn a_four_node_cluster_with_r3_that_loses_a_node_for_good_gets_every_blob_back_to_three_copies() {
    let sandbox = cluster_without_auto_repair(4);
    run_printing_logs(&sandbox, |sandbox| {
        let layout = wait_for_synced_layout(sandbox, 0, 1, &[1, 2, 3, 4])?;
        let name = repo("t45", "lost");
        let digests: Vec<String> =
            push_blobs(sandbox, &name, 60, 500, 50_000)?.into_iter().map(|(digest, _)| digest).collect();
        wait_for_optimizations(sandbox, 0)?;
        let counts = copies(sandbox, &[0, 1, 2, 3], &digests);
        ensure!(counts.values().all(|count| *count == 3), "three copies over four nodes: {counts:?}");
        let on_lost = copies(sandbox, &[3], &digests).values().filter(|count| **count == 1).count();
        ensure!(on_lost > 0, "node 4 held some of the blobs");

        // Node 4 (a storage node, never the leader) dies for good; the operator removes it.
        let version = layout["version"].as_u64().context("version")?;
        sandbox.node(3).kill9();
        let url = format!("{}/_cluster/nodes/4", sandbox.node(0).base_url());
        let removed = http()?.delete(&url).basic_auth(ADMIN_USER, Some(sandbox.admin_password())).send()?;
        ensure!(removed.status().is_success(), "remove node 4: {}", removed.status());
        wait_for_synced_layout(sandbox, 0, version + 1, &[1, 2, 3])?;

        let repaired = run_task_with_cli(sandbox, 1, "repair", false)?;
        ensure!(repaired["failed"] == 0, "{repaired}");
        let counts = copies(sandbox, &[0, 1, 2], &digests);
        ensure!(counts.values().all(|count| *count == 3), "three copies on the survivors: {counts:?}");
        let client = sandbox.node(2).client(sandbox.admin_credentials());
        for digest in &digests {
            let reply = client.get_blob(&name, digest)?.expect_status(200)?;
            ensure!(&sha256_digest(&reply.body) == digest);
        }
        Ok(())
    });
}

#[test]
fn an_owner_that_was_down_gets_what_it_missed_with_no_operator_step() {
    let sandbox = cluster(3);
    run_printing_logs(&sandbox, |sandbox| {
        let leader = sandbox.leader_index(0)?;
        let down = (0..3).find(|index| *index != leader).context("a follower")?;
        sandbox.node(down).kill9();
        // Long enough for gossip to call it down, so the leader sees it come back too.
        sandbox.wait_for_liveness(&[leader], down, "down", Duration::from_secs(30))?;
        let name = repo("t45", "auto");
        let digests: Vec<String> =
            push_blobs(sandbox, &name, 20, 1_000, 50_000)?.into_iter().map(|(digest, _)| digest).collect();
        ensure!(copies(sandbox, &[down], &digests).values().all(|count| *count == 0), "node {down} missed the writes");
        sandbox.node(down).restart()?;

        let counts = wait::until_some(
            "every blob back at 3 copies",
            Duration::from_secs(60),
            Duration::from_millis(250),
            || {
                let counts = copies(sandbox, &[0, 1, 2], &digests);
                if counts.values().all(|count| *count == 3) {
                    Ok(Some(counts))
                } else {
                    Err(format!("copies: {counts:?}"))
                }
            },
        )?;
        ensure!(counts.len() == digests.len());
        let tasks = sandbox.cluster_get(0, "tasks")?;
        let repairs: Vec<&Value> =
            tasks["tasks"].as_array().context("tasks")?.iter().filter(|task| task["kind"] == "repair").collect();
        ensure!(!repairs.is_empty() && repairs.iter().all(|task| task["trigger"] == "schedule"), "{tasks}");
        ensure!(sandbox.metric(down, "flotilla_repair_copied_blobs_total")? == digests.len() as f64);
        Ok(())
    });
}

#[test]
fn scrub_finds_a_flipped_byte_quarantines_the_copy_and_replaces_it() {
    let sandbox = cluster(3);
    run_printing_logs(&sandbox, |sandbox| {
        let name = repo("t45", "scrub");
        let pushed = push_blobs(sandbox, &name, 5, 100_000, 300_000)?;
        let (digest, size) = pushed[2].clone();
        let path = sandbox.node(1).blob_path(&digest);
        let mut bytes = std::fs::read(&path)?;
        bytes[size as usize / 2] ^= 0x20;
        std::fs::write(&path, &bytes)?;

        let dry = run_task_with_cli(sandbox, 0, "scrub", true)?;
        ensure!(dry["blobs"] == 1 && dry["bytes"] == size, "{dry}");
        ensure!(std::fs::read(&path)? == bytes, "a dry run leaves the copy alone");

        let scrubbed = run_task_with_cli(sandbox, 2, "scrub", false)?;
        ensure!(scrubbed["scanned"] == 15, "every copy on every node re-hashed: {scrubbed}");
        ensure!(scrubbed["blobs"] == 1 && scrubbed["bytes"] == size && scrubbed["failed"] == 0, "{scrubbed}");
        ensure!(sha256_digest(&std::fs::read(&path)?) == digest, "the copy was replaced by a good one");
        let quarantine = sandbox.node(1).data_dir().join("blobs/quarantine");
        let kept: Vec<_> = std::fs::read_dir(&quarantine)?.flatten().collect();
        ensure!(kept.len() == 1, "the corrupt copy is kept in quarantine");
        ensure!(std::fs::read(kept[0].path())? == bytes);
        ensure!(sandbox.metric(1, "flotilla_scrub_corrupt_blobs_total")? == 2.0, "the dry run and the real run saw it");
        ensure!(sandbox.metric(0, "flotilla_scrub_corrupt_blobs_total")? == 0.0);
        Ok(())
    });
}

/// Sum of a counter over the running nodes.
fn metric_sum(sandbox: &Sandbox, nodes: &[usize], name: &str) -> anyhow::Result<f64> {
    nodes.iter().map(|index| sandbox.metric(*index, name)).sum()
}

#[test]
fn adding_a_node_moves_at_most_1_15_times_the_ideal_bytes_and_optimize_drops_the_old_copies() {
    let mut sandbox = cluster(3);
    let outcome = (|| -> anyhow::Result<()> {
        let layout = wait_for_synced_layout(&sandbox, 0, 1, &[1, 2, 3])?;
        let version = layout["version"].as_u64().context("version")?;
        let name = repo("t45", "rebalance");
        let pushed = push_blobs(&sandbox, &name, 400, 10_000, 60_000)?;
        let digests: Vec<String> = pushed.iter().map(|(digest, _)| digest.clone()).collect();
        let total: u64 = pushed.iter().map(|(_, size)| size).sum();
        wait_for_optimizations(&sandbox, 0)?;
        let before = metric_sum(&sandbox, &[0, 1, 2], "flotilla_rebalance_copied_bytes_total")?;

        sandbox.add_node()?;
        wait_for_synced_layout(&sandbox, 0, version + 1, &[1, 2, 3, 4])?;
        wait_for_optimizations(&sandbox, 0)?;
        let moved = metric_sum(&sandbox, &[0, 1, 2, 3], "flotilla_rebalance_copied_bytes_total")? - before;
        let on_new: u64 = store_of(&sandbox, 3).values().sum();
        // With R = 3 over four equal nodes, the new node's fair share is 3/4 of every blob's bytes.
        let ideal = total as f64 * 3.0 / 4.0;
        eprintln!("rebalance: moved {moved} bytes, new node holds {on_new}, ideal {ideal:.0} ({:.3}x)", moved / ideal);
        ensure!(moved <= 1.15 * ideal, "moved {moved} bytes, ideal {ideal}");
        ensure!(on_new as f64 == moved, "every byte moved landed once on the new node");

        let counts = copies(&sandbox, &[0, 1, 2, 3], &digests);
        ensure!(counts.values().all(|count| *count == 3), "three copies after optimize: {counts:?}");
        let stored: u64 = (0..4).map(|index| store_of(&sandbox, index).values().sum::<u64>()).sum();
        ensure!(stored == 3 * total, "disk use back to 3 copies: {stored} vs {}", 3 * total);
        let dropped = metric_sum(&sandbox, &[0, 1, 2], "flotilla_orphan_dropped_bytes_total")?;
        ensure!(dropped == moved, "the old owners dropped what moved: {dropped} vs {moved}");
        let client = sandbox.node(3).client(sandbox.admin_credentials());
        for digest in digests.iter().step_by(10) {
            let reply = client.get_blob(&name, digest)?.expect_status(200)?;
            ensure!(&sha256_digest(&reply.body) == digest);
        }
        // Artifactory's optimize endpoint starts another one; it finds nothing to drop.
        let url = format!("{}/artifactory/api/system/storage/optimize", sandbox.node(1).base_url());
        let answer = http()?.post(&url).basic_auth(ADMIN_USER, Some(sandbox.admin_password())).send()?;
        ensure!(answer.status().as_u16() == 200, "{}", answer.status());
        let text = answer.text()?;
        ensure!(text.starts_with("Storage optimization "), "{text}");
        wait_for_optimizations(&sandbox, 0)?;
        let tasks = sandbox.cluster_get(0, "tasks")?;
        let last = tasks["tasks"].as_array().and_then(|tasks| tasks.iter().find(|task| task["kind"] == "optimize"));
        let last = last.context("an optimize task")?;
        ensure!(last["state"] == "finished" && last["blobs"] == 0 && last["trigger"] == "operator", "{last}");
        Ok(())
    })();
    if let Err(error) = outcome {
        sandbox.print_logs();
        panic!("{error:#}");
    }
}

#[test]
fn a_new_leader_finishes_a_rebalance_the_old_one_started() {
    // Paced copying keeps the layout syncing long enough to kill the leader in the middle.
    let mut sandbox = Sandbox::builder().nodes(3).env("FLOTILLA_COPY_RATE", "1000000").build().expect("sandbox");
    sandbox.wait_until_formed(3, Duration::from_secs(60)).expect("formed");
    let outcome = (|| -> anyhow::Result<()> {
        let layout = wait_for_synced_layout(&sandbox, 0, 1, &[1, 2, 3])?;
        let version = layout["version"].as_u64().context("version")?;
        let name = repo("t45", "failover");
        let pushed = push_blobs(&sandbox, &name, 120, 20_000, 60_000)?;
        let digests: Vec<String> = pushed.iter().map(|(digest, _)| digest.clone()).collect();
        wait_for_optimizations(&sandbox, 0)?;

        sandbox.add_node()?;
        let leader = sandbox.leader_index(0)?;
        let asking = (leader + 1) % 3;
        wait::until_some("the new layout to sync", SYNC_TIMEOUT, Duration::from_millis(50), || {
            let layout = sandbox.cluster_get(asking, "layout").map_err(|error| error.to_string())?;
            let syncing = layout["version"].as_u64() > Some(version) && layout["sync_state"] == "syncing";
            if syncing {
                Ok(Some(()))
            } else {
                Err(layout["sync_state"].to_string())
            }
        })?;
        std::thread::sleep(Duration::from_secs(1));
        eprintln!("killing the leader (node {}) in the middle of the rebalance", leader + 1);
        sandbox.node(leader).kill9();
        std::thread::sleep(Duration::from_secs(2));
        // The sync asks every member, so the killed one comes back for it to finish.
        sandbox.node(leader).restart()?;
        wait_for_synced_layout(&sandbox, asking, version + 1, &[1, 2, 3, 4])?;
        wait_for_optimizations(&sandbox, asking)?;
        let counts = copies(&sandbox, &[0, 1, 2, 3], &digests);
        ensure!(counts.values().all(|count| *count == 3), "three copies after the rebalance: {counts:?}");
        for index in 0..4 {
            let client = sandbox.node(index).client(sandbox.admin_credentials());
            for digest in digests.iter().step_by(7) {
                let reply = client.get_blob(&name, digest)?.expect_status(200)?;
                ensure!(&sha256_digest(&reply.body) == digest, "node {index} serves {digest}");
            }
        }
        Ok(())
    })();
    if let Err(error) = outcome {
        sandbox.print_logs();
        panic!("{error:#}");
    }
}
