//! Garbage collection as an operator runs it: space comes back on every node
//! while pushes and pulls go on, what is still referenced pulls byte-exact
//! with skopeo, a blob collected before its manifest arrived must be pushed
//! again, a new leader finishes the collection the old one started, and the
//! task APIs (`/_cluster/tasks`, Artifactory's) answer in their own formats.
//! Each test has a cluster of its own: a collection with a short grace period
//! would take what other tests are in the middle of pushing.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context};
use reqwest::blocking::Client;
use serde_json::{json, Value};

use flotilla_cluster_tests::content::{random_bytes, sha256_digest, Blob, ImageManifest, IndexManifest, Manifest};
use flotilla_cluster_tests::oci_layout::{tagged_digest, OciLayout};
use flotilla_cluster_tests::sandbox::{locate_binary, ADMIN_USER, LIBFAKETIME};
use flotilla_cluster_tests::{tools, wait, Sandbox};

use crate::common::{cluster, repo, run_printing_logs};
use crate::t20_skopeo::{assert_blobs_identical, build_image, copy_in, copy_out, write_image};

/// Nodes keep a copy of a collected blob stored less than `gc_clock_margin`
/// (2 s by default) before the collection; tests wait this long after their
/// last write of a blob they expect to be collected.
const PAST_CLOCK_MARGIN: Duration = Duration::from_millis(2500);
/// How long the reclaimers of all nodes may take to delete collected copies.
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(20);

fn http() -> anyhow::Result<Client> {
    Ok(Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?)
}

/// Which of `digests` node `index` still stores.
fn stored_on(sandbox: &Sandbox, index: usize, digests: &[String]) -> Vec<String> {
    digests.iter().filter(|digest| sandbox.node(index).blob_path(digest).exists()).cloned().collect()
}

/// `POST /_cluster/tasks` on node `index`: the created task.
fn start_gc(sandbox: &Sandbox, index: usize, grace_seconds: u64, dry_run: bool) -> anyhow::Result<Value> {
    let url = format!("{}/_cluster/tasks", sandbox.node(index).base_url());
    let body = json!({"kind": "gc", "grace_seconds": grace_seconds, "dry_run": dry_run});
    let response = http()?.post(&url).basic_auth(ADMIN_USER, Some(sandbox.admin_password())).json(&body).send()?;
    let status = response.status();
    let text = response.text()?;
    ensure!(status.as_u16() == 202, "POST {url}: {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// Polls the task on any running node until it has ended.
fn wait_for_end(sandbox: &Sandbox, id: &str, timeout: Duration) -> anyhow::Result<Value> {
    wait::until_some(&format!("task {id} to end"), timeout, Duration::from_millis(100), || {
        for index in (0..sandbox.nodes().len()).filter(|index| sandbox.node(*index).is_running()) {
            if let Ok(task) = sandbox.cluster_get(index, &format!("tasks/{id}")) {
                return match task["state"].as_str() {
                    Some("finished" | "failed" | "cancelled") => Ok(Some(task)),
                    _ => Err(task.to_string()),
                };
            }
        }
        Err("no node answered".into())
    })
}

#[test]
fn gc_frees_space_on_every_node_while_pushes_and_pulls_go_on() {
    let sandbox = cluster(3);
    run_printing_logs(&sandbox, |sandbox| {
        let work = tempfile::tempdir()?;
        let name = repo("t44", "gc");
        // Two images through skopeo; the first is deleted, the second kept.
        let (old, kept) = (build_image(&[300_000, 20_000], "amd64"), build_image(&[250_000], "arm64"));
        for (image, tag) in [(&old, "old"), (&kept, "kept")] {
            let source = work.path().join(tag);
            let mut layout = OciLayout::create(&source)?;
            write_image(&mut layout, image)?;
            layout.tag(&image.manifest, tag);
            layout.finish()?;
            let destination = format!("docker://{}/{name}:{tag}", sandbox.node(1).host());
            copy_in(sandbox, &source, tag, &destination, false)?;
        }
        let client = sandbox.client();
        // A blob pushed and never referenced.
        let stray = random_bytes(40_000);
        let stray_digest = client.push_blob_monolithic(&name, &stray)?;
        client.delete_manifest(&name, &old.manifest.digest)?.expect_status(202)?;
        let mut doomed: Vec<String> = old.blobs.iter().map(|blob| blob.digest.clone()).collect();
        doomed.push(stray_digest);
        let doomed_bytes: u64 = old.blobs.iter().map(|blob| blob.size() as u64).sum::<u64>() + stray.len() as u64;
        let kept_digests: Vec<String> = kept.blobs.iter().map(|blob| blob.digest.clone()).collect();
        for index in 0..3 {
            ensure!(stored_on(sandbox, index, &doomed).len() == doomed.len(), "node {index} stores every copy (R = 3)");
        }
        // The grace period (3 s) and the clock margin pass; then pushes and pulls start.
        std::thread::sleep(Duration::from_secs(3) + PAST_CLOCK_MARGIN);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let workload = {
            let clients: Vec<_> = (0..3).map(|index| sandbox.node(index).client(sandbox.admin_credentials())).collect();
            let (stop, done, failures, name) = (stop.clone(), done.clone(), failures.clone(), format!("{name}-live"));
            std::thread::spawn(move || {
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let (writer, reader) = (&clients[round % 3], &clients[(round + 1) % 3]);
                    let result = (|| -> anyhow::Result<()> {
                        let (config, layer) = (Blob::random_config(), Blob::random_layer(4096));
                        writer.push_blob_monolithic(&name, &config.bytes)?;
                        writer.push_blob_monolithic(&name, &layer.bytes)?;
                        let manifest = ImageManifest::new(&config, &[&layer]).build();
                        writer.push_manifest(&name, &format!("r{round}"), &manifest)?.expect_status(201)?;
                        let pulled = reader.get_blob(&name, &layer.digest)?.expect_status(200)?;
                        ensure!(pulled.body == layer.bytes, "layer of r{round} came back different");
                        Ok(())
                    })();
                    match result {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            failures.lock().unwrap().push(format!("round {round}: {error:#}"));
                            0
                        }
                    };
                    round += 1;
                }
            })
        };
        // The operator's CLI, against a node that need not lead.
        let mut command = Command::new(locate_binary()?);
        command
            .arg("cluster")
            .args(["--url", &sandbox.node(2).base_url(), "--password", sandbox.admin_password()])
            .args(["gc", "--grace", "3s", "--wait"])
            .env_remove("FLOTILLA_USER");
        let finished = tools::run(command, Duration::from_secs(60))?.expect_success()?;
        let task: Value = serde_json::from_str(&finished.stdout)?;
        ensure!(task["state"] == "finished", "{task}");
        ensure!(
            task["blobs"] == doomed.len() as u64,
            "collected {} blobs, not {}: {task}",
            task["blobs"],
            doomed.len()
        );
        ensure!(task["bytes"] == doomed_bytes, "{task}");

        for index in 0..3 {
            wait::until(&format!("node {index} to delete the collected copies"), RECLAIM_TIMEOUT, || {
                stored_on(sandbox, index, &doomed).is_empty()
            })?;
            ensure!(stored_on(sandbox, index, &kept_digests).len() == kept_digests.len(), "node {index} kept the rest");
            ensure!(sandbox.metric(index, "flotilla_gc_reclaimed_blobs_total")? == doomed.len() as f64);
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        workload.join().expect("workload thread");
        let failures = failures.lock().unwrap();
        ensure!(failures.is_empty(), "pushes or pulls failed during gc: {failures:?}");
        ensure!(done.load(Ordering::Relaxed) > 0, "the workload ran");

        client.get_manifest(&name, "old")?.expect_status(404)?;
        client.get_blob(&name, &old.blobs[1].digest)?.expect_status(404)?;
        for index in 0..3 {
            let out = work.path().join(format!("out-{index}"));
            let source = format!("docker://{}/{name}:kept", sandbox.node(index).host());
            copy_out(sandbox, &source, &out, "kept", false)?;
            ensure!(tagged_digest(&out, "kept")? == kept.manifest.digest, "node {index}");
            assert_blobs_identical(&out, &kept.blobs, &[&kept.manifest])?;
        }
        Ok(())
    });
}

#[test]
fn a_blob_collected_before_its_manifest_arrived_must_be_pushed_again() {
    let sandbox = cluster(3);
    run_printing_logs(&sandbox, |sandbox| {
        let client = sandbox.node(0).client(sandbox.admin_credentials());
        let name = repo("t44", "late-manifest");
        let (config, layer) = (Blob::random_config(), Blob::random_layer(10_000));
        client.push_blob_monolithic(&name, &config.bytes)?;
        client.push_blob_monolithic(&name, &layer.bytes)?;
        std::thread::sleep(PAST_CLOCK_MARGIN);
        let task = start_gc(sandbox, 1, 0, false)?;
        let task = wait_for_end(sandbox, task["id"].as_str().context("id")?, Duration::from_secs(30))?;
        ensure!(task["state"] == "finished" && task["blobs"] == 2, "{task}");
        for index in 0..3 {
            wait::until("the copies to go", RECLAIM_TIMEOUT, || {
                stored_on(sandbox, index, std::slice::from_ref(&layer.digest)).is_empty()
            })?;
        }
        // The manifest comes too late: its blobs are gone, and the registry says which.
        let manifest = ImageManifest::new(&config, &[&layer]).build();
        let refused = client.put_manifest(&name, "v1", &manifest.media_type, &manifest.bytes)?.expect_status(400)?;
        ensure!(String::from_utf8_lossy(&refused.body).contains("MANIFEST_BLOB_UNKNOWN"), "{}", refused.summary());
        // Pushed again, everything is there and stays there.
        client.push_blob_monolithic(&name, &config.bytes)?;
        client.push_blob_post_put(&name, &layer.bytes)?;
        client.push_manifest(&name, "v1", &manifest)?.expect_status(201)?;
        std::thread::sleep(Duration::from_secs(2));
        for index in 0..3 {
            ensure!(sandbox.node(index).blob_path(&layer.digest).exists(), "node {index} keeps the new copy");
            let reader = sandbox.node(index).client(sandbox.admin_credentials());
            let body = reader.get_blob(&name, &layer.digest)?.expect_status(200)?.body;
            ensure!(body == layer.bytes && sha256_digest(&body) == layer.digest, "node {index} serves the layer");
        }
        Ok(())
    });
}

#[test]
fn a_new_leader_finishes_the_collection_the_old_one_started() {
    let sandbox = cluster(3);
    run_printing_logs(&sandbox, |sandbox| {
        let name = repo("t44", "failover");
        // Rounds until the leader is killed while the task runs (a small round can end before we look).
        for round in 0..4 {
            let count = 2500 + 1000 * round;
            let digests = push_unreferenced(sandbox, &name, count)?;
            std::thread::sleep(PAST_CLOCK_MARGIN);
            let leader = sandbox.leader_index(0)?;
            let follower = (leader + 1) % 3;
            let task = start_gc(sandbox, follower, 1, false)?;
            let id = task["id"].as_str().context("id")?.to_owned();
            // Running with a page done: a new leader must resume from the task's cursor.
            let state = wait::until_some(
                "a page collected",
                Duration::from_secs(10),
                Duration::from_millis(5),
                || match sandbox.cluster_get(follower, &format!("tasks/{id}")) {
                    Ok(task) if task["state"] == "scheduled" => Ok(None),
                    Ok(task) if task["state"] == "running" && task["scanned"] == 0 => Ok(None),
                    Ok(task) => Ok(Some(task)),
                    Err(error) => Err(format!("{error:#}")),
                },
            )?;
            if state["state"] != "running" {
                // Finished before we could look: collect the rest next round, with more blobs.
                wait_for_end(sandbox, &id, Duration::from_secs(30))?;
                continue;
            }
            eprintln!("round {round}: killing the leader (node {}) while the task runs: {state}", leader + 1);
            sandbox.node(leader).kill9();
            let ended = wait_for_end(sandbox, &id, Duration::from_secs(60))?;
            ensure!(ended["state"] == "finished", "{ended}");
            let leader_id = leader as u64 + 1;
            if ended["node"] == leader_id {
                // It finished just before the kill took effect; the survivors still agree. Try again.
                sandbox.node(leader).restart()?;
                sandbox.wait_until_formed(3, Duration::from_secs(60))?;
                continue;
            }
            // Every blob is counted once, whichever leader collected it.
            ensure!(ended["blobs"] == count as u64, "collected {} of {count}: {ended}", ended["blobs"]);
            let survivor = sandbox.node(follower).client(sandbox.admin_credentials());
            for digest in digests.iter().step_by(97) {
                survivor.head_blob(&name, digest)?.expect_status(404)?;
            }
            for index in (0..3).filter(|index| *index != leader) {
                wait::until(&format!("node {index} to delete the copies"), RECLAIM_TIMEOUT, || {
                    stored_on(sandbox, index, &digests).is_empty()
                })?;
            }
            // The killed node comes back and deletes its copies from the tombstones.
            sandbox.node(leader).restart()?;
            wait::until("the returning node to delete its copies", RECLAIM_TIMEOUT * 2, || {
                stored_on(sandbox, leader, &digests).is_empty()
            })?;
            return Ok(());
        }
        anyhow::bail!("the collection always finished before the leader could be killed")
    });
}

/// Pushes `count` small blobs no manifest references; their digests.
fn push_unreferenced(sandbox: &Sandbox, name: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let client = sandbox.node(thread % 3).client(sandbox.admin_credentials());
            let name = name.to_owned();
            std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
                (0..count / 4 + usize::from(thread < count % 4))
                    .map(|_| client.push_blob_monolithic(&name, &random_bytes(64)))
                    .collect()
            })
        })
        .collect();
    let mut digests = Vec::with_capacity(count);
    for thread in threads {
        digests.extend(thread.join().expect("push thread")?);
    }
    Ok(digests)
}

#[test]
fn task_apis_answer_in_their_own_formats() {
    let sandbox = cluster(1);
    run_printing_logs(&sandbox, |sandbox| {
        let http = http()?;
        let base = sandbox.node(0).base_url();
        let admin = |request: reqwest::blocking::RequestBuilder| {
            request.basic_auth(ADMIN_USER, Some(sandbox.admin_password())).send()
        };
        // Artifactory: 200 text/plain, then the task in the background task list.
        let started = admin(http.post(format!("{base}/artifactory/api/system/storage/gc")))?;
        ensure!(started.status() == 200, "{}", started.status());
        let content_type = started.headers()["content-type"].to_str()?.to_owned();
        ensure!(content_type.starts_with("text/plain"), "{content_type}");
        let text = started.text()?;
        ensure!(text.starts_with("Garbage collection"), "{text}");
        let listed: Value = admin(http.get(format!("{base}/artifactory/api/tasks")))?.json()?;
        let tasks = listed["tasks"].as_array().context("tasks")?;
        for task in tasks {
            ensure!(
                task["type"] == "org.artifactory.storage.binstore.service.BinaryStoreGarbageCollectorJob",
                "{task}"
            );
            ensure!(task["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("artifactory.BinaryStoreGarbageCollectorJob#")));
            ensure!(["scheduled", "running"].contains(&task["state"].as_str().unwrap_or_default()), "{task}");
        }
        // A second request while one runs is not an error for Artifactory clients, but is for /_cluster.
        let conflict = admin(http.post(format!("{base}/_cluster/tasks")).json(&json!({"kind": "gc"})))?;
        ensure!([202, 409].contains(&conflict.status().as_u16()), "{}", conflict.status());
        let all: Value = admin(http.get(format!("{base}/_cluster/tasks")))?.json()?;
        let first = all["tasks"][0]["id"].as_str().context("a task")?.to_owned();
        let ended = wait_for_end(sandbox, &first, Duration::from_secs(30))?;
        ensure!(ended["state"] == "finished" && ended["node"] == 1, "{ended}");
        // Cancelling what ended, unknown tasks and kinds, and bad bodies are 4xx with a code.
        let again = admin(http.post(format!("{base}/_cluster/tasks/{first}/cancel")))?;
        ensure!(again.status() == 409, "{}", again.status());
        let missing = admin(http.get(format!("{base}/_cluster/tasks/no-such-task")))?;
        ensure!(missing.status() == 404, "{}", missing.status());
        ensure!(missing.json::<Value>()?["code"] == "NOT_FOUND");
        for body in
            [json!({"kind": "defrag"}), json!({"kind": "gc", "grace_seconds": -1}), json!({"kind": "gc", "x": 1})]
        {
            let bad = admin(http.post(format!("{base}/_cluster/tasks")).json(&body))?;
            ensure!(bad.status() == 400, "{body}: {}", bad.status());
            ensure!(bad.json::<Value>()?["code"] == "INVALID", "{body}");
        }
        let garbage = admin(http.post(format!("{base}/_cluster/tasks")).body("{not json"))?;
        ensure!(garbage.status() == 400, "{}", garbage.status());
        // A dry run counts and changes nothing.
        let client = sandbox.client();
        let name = repo("t44", "dry");
        let blob = random_bytes(5000);
        let digest = client.push_blob_monolithic(&name, &blob)?;
        let dry = start_gc(sandbox, 0, 0, true)?;
        let dry = wait_for_end(sandbox, dry["id"].as_str().context("id")?, Duration::from_secs(30))?;
        ensure!(
            dry["dry_run"] == true && dry["blobs"].as_u64() >= Some(1) && dry["bytes"].as_u64() >= Some(5000),
            "{dry}"
        );
        client.get_blob(&name, &digest)?.expect_status(200)?;
        // Only administrators: Artifactory's error shape for the Artifactory paths.
        let stranger = http.post(format!("{base}/artifactory/api/system/storage/gc")).send()?;
        ensure!(stranger.status() == 401, "{}", stranger.status());
        let body: Value = stranger.json()?;
        ensure!(body["errors"][0]["status"] == 401, "{body}");
        let anonymous = http.get(format!("{base}/_cluster/tasks")).send()?;
        ensure!(anonymous.status() == 401, "{}", anonymous.status());
        Ok(())
    });
}

#[test]
fn gc_with_the_untagged_policy_deletes_only_what_no_tag_index_or_subject_keeps() {
    let sandbox = cluster(1);
    run_printing_logs(&sandbox, |sandbox| {
        let client = sandbox.node(0).client(sandbox.admin_credentials());
        let name = repo("t44", "untagged");
        // An image under `tag`, or by digest only.
        let push_image = |tag: Option<&str>| -> anyhow::Result<(Blob, Manifest)> {
            let (config, layer) = (Blob::random_config(), Blob::random_layer(5_000));
            client.push_blob_monolithic(&name, &config.bytes)?;
            client.push_blob_monolithic(&name, &layer.bytes)?;
            let manifest = ImageManifest::new(&config, &[&layer]).build();
            client.push_manifest(&name, tag.unwrap_or(&manifest.digest), &manifest)?.expect_status(201)?;
            Ok((layer, manifest))
        };
        let (_, kept) = push_image(Some("keep"))?;
        // `moved` first names `old`, then a newer image: `old` is untagged.
        let (old_layer, old) = push_image(Some("moved"))?;
        let (_, newer) = push_image(Some("moved"))?;
        // An index keeps its untagged child; a signature keeps itself while its subject lives.
        let (_, child) = push_image(None)?;
        let index = IndexManifest::oci().platform_manifest(&child, "linux", "amd64").build();
        client.push_manifest(&name, "multi", &index)?.expect_status(201)?;
        let empty = Blob::empty_json();
        client.push_blob_monolithic(&name, &empty.bytes)?;
        let signature =
            ImageManifest::new(&empty, &[&empty]).artifact_type("application/vnd.example.sig").subject(&kept).build();
        client.push_manifest(&name, &signature.digest, &signature)?.expect_status(201)?;
        // A signature of the untagged image goes with it (one pass later).
        let orphan_sig =
            ImageManifest::new(&empty, &[&empty]).artifact_type("application/vnd.example.sig").subject(&old).build();
        client.push_manifest(&name, &orphan_sig.digest, &orphan_sig)?.expect_status(201)?;
        std::thread::sleep(PAST_CLOCK_MARGIN);

        let url = format!("{}/_cluster/tasks", sandbox.node(0).base_url());
        let run = |dry_run: bool| -> anyhow::Result<Value> {
            let body = json!({"kind": "gc", "grace_seconds": 0, "dry_run": dry_run, "untagged": true});
            let response =
                http()?.post(&url).basic_auth(ADMIN_USER, Some(sandbox.admin_password())).json(&body).send()?;
            ensure!(response.status().as_u16() == 202, "{}", response.status());
            let task: Value = response.json()?;
            ensure!(task["untagged"] == true, "{task}");
            wait_for_end(sandbox, task["id"].as_str().context("id")?, Duration::from_secs(30))
        };
        let dry = run(true)?;
        ensure!(dry["state"] == "finished" && dry["manifests"] == 1, "the first pass finds the untagged image: {dry}");
        client.get_manifest(&name, &old.digest)?.expect_status(200)?;

        let done = run(false)?;
        ensure!(done["state"] == "finished" && done["manifests"] == 2, "the image and then its signature: {done}");
        ensure!(done["blobs"].as_u64() >= Some(1), "the untagged image's own layer was collected: {done}");
        for gone in [&old.digest, &orphan_sig.digest] {
            client.get_manifest(&name, gone)?.expect_status(404)?;
        }
        client.head_blob(&name, &old_layer.digest)?.expect_status(404)?;
        for kept in [&kept.digest, &newer.digest, &child.digest, &index.digest, &signature.digest] {
            client.get_manifest(&name, kept)?.expect_status(200)?;
        }
        // Without the policy nothing untagged goes.
        let body = json!({"kind": "repair", "untagged": true});
        let refused = http()?.post(&url).basic_auth(ADMIN_USER, Some(sandbox.admin_password())).json(&body).send()?;
        ensure!(refused.status().as_u16() == 400, "untagged is for gc only: {}", refused.status());
        Ok(())
    });
}

/// A node whose wall clock is two hours behind the others stamps what it
/// records with cluster time (the voters' median clock), not its own: blobs
/// pushed through it are not older than a one-hour grace period the moment
/// they are recorded, so a collection on another node leaves them. (With the
/// node's own clock they were collected: the chaos runs found it.) A
/// collection with no grace period then takes them, so the blobs were
/// collectable in every other respect.
#[test]
fn blobs_pushed_through_a_node_whose_clock_is_two_hours_behind_keep_their_grace_period() {
    if !std::path::Path::new(LIBFAKETIME).exists() {
        eprintln!("t44_gc: libfaketime is not installed (apt install faketime); the clock test is not exercised");
        return;
    }
    let clocks = tempfile::tempdir().expect("a directory for the clock offsets");
    for (node, offset) in ["+0", "-7200", "+0"].iter().enumerate() {
        std::fs::write(clocks.path().join(format!("offset-{node}")), format!("{offset}\n")).expect("offset file");
    }
    let sandbox = Sandbox::builder().nodes(3).faked_clocks(clocks.path()).build().expect("sandbox");
    sandbox.wait_until_formed(3, Duration::from_secs(60)).expect("cluster formed");
    run_printing_logs(&sandbox, |sandbox| {
        let name = repo("t44", "skewed-clock");
        let behind = sandbox.node(1).client(sandbox.admin_credentials());
        let digests: Vec<String> =
            (0..20).map(|_| behind.push_blob_monolithic(&name, &random_bytes(64))).collect::<anyhow::Result<_>>()?;
        std::thread::sleep(PAST_CLOCK_MARGIN);

        let task = start_gc(sandbox, 0, 3600, false)?;
        let ended = wait_for_end(sandbox, task["id"].as_str().context("task id")?, Duration::from_secs(60))?;
        ensure!(ended["state"] == "finished" && ended["blobs"] == 0, "an hour's grace collected fresh blobs: {ended}");
        let client = sandbox.node(0).client(sandbox.admin_credentials());
        for digest in &digests {
            let status = client.head_blob(&name, digest)?.status;
            ensure!(status == 200, "HEAD {digest} after the collection: {status}");
        }

        let task = start_gc(sandbox, 2, 0, false)?;
        let ended = wait_for_end(sandbox, task["id"].as_str().context("task id")?, Duration::from_secs(60))?;
        ensure!(ended["blobs"].as_u64() >= Some(digests.len() as u64), "no grace period: {ended}");
        Ok(())
    });
}
