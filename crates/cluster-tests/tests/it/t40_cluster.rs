//! A three-node cluster on loopback serving every request from any node:
//! formation through `--join`, the `/_cluster` API and CLI, pushes through a
//! follower with skopeo and oras, pulls from every node, read-your-writes for
//! tags across nodes, and blobs stored on every owner.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::{random_bytes, sha256_digest, Blob, ImageManifest};
use flotilla_cluster_tests::oci_layout::{tagged_digest, OciLayout};
use flotilla_cluster_tests::sandbox::locate_binary;
use flotilla_cluster_tests::tools;
use flotilla_cluster_tests::Sandbox;

use crate::common::{repo, with_shared_cluster, SharedSandbox};
use crate::t20_skopeo::{assert_blobs_identical, build_image, copy_in, copy_out, write_image};
use crate::t21_oras::{oras_roundtrip_on, write_files};

static CLUSTER: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared_cluster(&CLUSTER, 3, test);
}

/// A node that does not lead right now.
fn a_follower(sandbox: &Sandbox) -> anyhow::Result<usize> {
    let leader = sandbox.leader_index(0)?;
    Ok((leader + 1) % sandbox.nodes().len())
}

#[test]
fn three_nodes_form_one_cluster_with_three_voters_and_a_synced_layout() {
    run(|sandbox| {
        let states: Vec<_> = (0..3).map(|i| sandbox.cluster_get(i, "state")).collect::<Result<_, _>>()?;
        let cluster_id = states[0]["cluster_id"].as_str().context("cluster id")?;
        ensure!(cluster_id.len() == 32, "cluster id {cluster_id}");
        for state in &states {
            assert_eq!(state["cluster_id"], cluster_id, "every node belongs to the same cluster");
            assert_eq!(state["leader"], states[0]["leader"], "every node knows the same leader");
            let nodes = state["nodes"].as_array().context("nodes")?;
            assert_eq!(nodes.len(), 3);
            for node in nodes {
                assert_eq!(node["role"], "voter", "{node}");
                assert_eq!(node["state"], "active", "{node}");
                assert_eq!(node["partitions"], 1024, "with R = 3 on 3 nodes every node owns every partition: {node}");
                assert_eq!(node["liveness"], "alive", "gossip hears every node: {node}");
                let id = node["id"].as_u64().context("id")? as usize;
                let gossip = sandbox.node(id - 1).gossip_addr().to_string();
                assert_eq!(node["gossip_addr"], gossip.as_str(), "{node}");
            }
            assert_eq!(state["layout"]["sync_state"], "synced");
            assert_eq!(state["layout"]["replication_factor"], 3);
        }
        let layout = sandbox.cluster_get(1, "layout")?;
        let owners = layout["owners"].as_array().context("owners")?;
        assert_eq!(owners.len(), 1024);
        for partition in owners {
            let mut ids: Vec<u64> = partition.as_array().unwrap().iter().map(|id| id.as_u64().unwrap()).collect();
            ids.sort();
            assert_eq!(ids, vec![1, 2, 3]);
        }
        let health = sandbox.cluster_get(2, "health")?;
        assert_eq!(health["status"], "green", "{health}");
        assert_eq!(health["voters_reachable"], 3);
        Ok(())
    });
}

#[test]
fn the_cluster_api_answers_admins_only() {
    run(|sandbox| {
        let http = reqwest::blocking::Client::builder().no_proxy().build()?;
        let url = format!("{}/_cluster/state", sandbox.node(1).base_url());
        let anonymous = http.get(&url).send()?;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"flotilla\"");
        let body: serde_json::Value = anonymous.json()?;
        assert_eq!(body["code"], "UNAUTHORIZED");
        let wrong = http.get(&url).basic_auth("admin", Some("not-the-password")).send()?;
        assert_eq!(wrong.status(), 401);
        let bad_id = http
            .delete(format!("{}/_cluster/nodes/zero", sandbox.node(1).base_url()))
            .basic_auth("admin", Some(sandbox.admin_password()))
            .send()?;
        assert_eq!(bad_id.status(), 400);
        let unknown = http
            .post(format!("{}/_cluster/nodes/99/drain", sandbox.node(2).base_url()))
            .basic_auth("admin", Some(sandbox.admin_password()))
            .send()?;
        assert_eq!(unknown.status(), 404);
        Ok(())
    });
}

#[test]
fn the_cli_prints_status_nodes_and_layout_and_fails_clearly() {
    run(|sandbox| {
        let binary = locate_binary()?;
        let cli = |args: &[&str]| {
            let mut command = Command::new(&binary);
            command
                .arg("cluster")
                .args(["--url", &sandbox.node(2).base_url(), "--password", sandbox.admin_password()])
                .args(args)
                .env_remove("FLOTILLA_USER");
            tools::run(command, Duration::from_secs(30))
        };
        let status = cli(&["status"])?.expect_success()?;
        let state: serde_json::Value = serde_json::from_str(&status.stdout)?;
        assert_eq!(state["nodes"].as_array().map(Vec::len), Some(3));
        let nodes: serde_json::Value = serde_json::from_str(&cli(&["nodes"])?.expect_success()?.stdout)?;
        assert_eq!(nodes.as_array().map(Vec::len), Some(3));
        let layout: serde_json::Value = serde_json::from_str(&cli(&["layout"])?.expect_success()?.stdout)?;
        assert_eq!(layout["partitions"], 1024);
        let refused = cli(&["remove", "42"])?;
        ensure!(refused.code != Some(0), "removing an unknown node must fail");
        ensure!(refused.stderr.contains("no node 42"), "stderr: {}", refused.stderr);
        Ok(())
    });
}

#[test]
fn skopeo_pushes_through_a_follower_and_every_node_serves_the_image() {
    run(|sandbox| {
        let follower = a_follower(sandbox)?;
        let work = tempfile::tempdir()?;
        let source = work.path().join("source");
        let image = build_image(&[2000, 700_000, 3 * 1024 * 1024 + 5], "arm64");
        let mut layout = OciLayout::create(&source)?;
        write_image(&mut layout, &image)?;
        layout.tag(&image.manifest, "v1");
        layout.finish()?;
        let name = repo("t40", "skopeo");
        let pushed_to = format!("docker://{}/{name}:v1", sandbox.node(follower).host());
        copy_in(sandbox, &source, "v1", &pushed_to, false)?;

        for index in 0..3 {
            let out = work.path().join(format!("out-{index}"));
            let pulled_from = format!("docker://{}/{name}:v1", sandbox.node(index).host());
            copy_out(sandbox, &pulled_from, &out, "v1", false)?;
            assert_eq!(tagged_digest(&out, "v1")?, image.manifest.digest, "node {index}");
            assert_blobs_identical(&out, &image.blobs, &[&image.manifest])?;
        }
        Ok(())
    });
}

#[test]
fn oras_pushes_through_a_follower_with_token_auth() {
    run(|sandbox| {
        let follower = a_follower(sandbox)?;
        let work = tempfile::tempdir()?;
        let files = vec![("model.bin", random_bytes(1_200_000))];
        let paths = write_files(&work.path().join("in"), &files)?;
        let name = repo("t40", "oras");
        let report = oras_roundtrip_on(sandbox, follower, &name, "v1", &work.path().join("out"), &paths, &[])?;
        ensure!(report["push_status"] == 201, "{report}");
        let other = (follower + 1) % 3;
        let manifest = sandbox.node(other).client(sandbox.admin_credentials()).get_manifest(&name, "v1")?;
        let manifest = manifest.expect_status(200)?.json()?;
        let digest = manifest["layers"][0]["digest"].as_str().context("layer digest")?.to_owned();
        assert_eq!(digest, sha256_digest(&files[0].1));
        let blob = sandbox.node(other).client(sandbox.admin_credentials()).get_blob(&name, &digest)?;
        ensure!(blob.expect_status(200)?.body == files[0].1, "node {other} serves the layer byte-exact");
        Ok(())
    });
}

#[test]
fn a_tag_moved_on_one_node_is_read_at_once_on_every_other_node() {
    run(|sandbox| {
        let name = repo("t40", "ryw");
        let config = Blob::random_config();
        let clients: Vec<_> = (0..3).map(|i| sandbox.node(i).client(sandbox.admin_credentials())).collect();
        clients[0].push_blob_monolithic(&name, &config.bytes)?;
        for round in 0..15 {
            let layer = Blob::random_layer(64 + round);
            let writer = &clients[round % 3];
            writer.push_blob_monolithic(&name, &layer.bytes)?;
            let manifest = ImageManifest::new(&config, &[&layer]).build();
            writer.push_manifest(&name, "moving", &manifest)?.expect_status(201)?;
            for (index, reader) in clients.iter().enumerate() {
                let read = reader.get_manifest(&name, "moving")?.expect_status(200)?;
                assert_eq!(
                    read.header("docker-content-digest"),
                    Some(manifest.digest.as_str()),
                    "round {round}: node {index} must see the tag written through node {}",
                    round % 3
                );
            }
        }
        Ok(())
    });
}

#[test]
fn a_blob_pushed_to_one_node_is_stored_on_all_three_owners() {
    run(|sandbox| {
        let name = repo("t40", "owners");
        let bytes = random_bytes(300_000);
        let digest = sandbox.node(1).client(sandbox.admin_credentials()).push_blob_post_put(&name, &bytes)?;
        for index in 0..3 {
            let path = sandbox.node(index).blob_path(&digest);
            let stored =
                std::fs::read(&path).with_context(|| format!("node {index} has no copy at {}", path.display()))?;
            ensure!(stored == bytes, "node {index} holds a different copy");
        }
        Ok(())
    });
}

#[test]
fn a_chunked_upload_spread_over_every_node_lands_once() {
    // A load balancer without sticky sessions: each request of one upload
    // reaches another node.
    run(|sandbox| {
        let name = repo("t40", "spread-upload");
        let clients: Vec<_> = (0..3).map(|index| sandbox.node(index).client(sandbox.admin_credentials())).collect();
        let bytes = random_bytes(3 * 256 * 1024 + 17);
        let digest = sha256_digest(&bytes);
        let mut location = clients[0].start_upload(&name)?.expect_status(202)?.location()?;
        let mut offset = 0usize;
        for (n, chunk) in bytes.chunks(256 * 1024).enumerate() {
            let end = offset + chunk.len() - 1;
            let reply = clients[(n + 1) % 3]
                .patch_chunk(&location, chunk, Some((offset as u64, end as u64)))?
                .expect_status(202)?;
            ensure!(reply.header("Range") == Some(format!("0-{end}").as_str()), "chunk {n}: {:?}", reply.headers);
            location = reply.location()?;
            offset = end + 1;
        }
        let status = clients[2].upload_status(&location)?.expect_status(204)?;
        ensure!(status.header("Range") == Some(format!("0-{}", bytes.len() - 1).as_str()), "{:?}", status.headers);
        clients[1].put_upload(&location, &digest, &[])?.expect_status(201)?;
        for (index, client) in clients.iter().enumerate() {
            let blob = client.get_blob(&name, &digest)?.expect_status(200)?;
            ensure!(blob.body == bytes, "node {index} serves different bytes");
        }
        // The finished session is gone on every node.
        for client in &clients {
            let gone = client.upload_status(&location)?.expect_status(404)?;
            ensure!(gone.error_codes() == ["BLOB_UPLOAD_UNKNOWN"], "{}", gone.text());
        }
        // A session cancelled through another node is cancelled where it lives.
        let other = clients[1].start_upload(&name)?.expect_status(202)?.location()?;
        clients[2].cancel_upload(&other)?.expect_status(204)?;
        clients[1].upload_status(&other)?.expect_status(404)?;
        Ok(())
    });
}
