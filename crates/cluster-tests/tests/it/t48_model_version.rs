//! The model-version gate through a rolling upgrade: a command of a newer
//! model version is refused with 503 while any node lacks it, the cluster
//! keeps applying everything else meanwhile, and the leader enables the
//! version by itself once every node supports it. The "newer version" is
//! the gate's probe command, which needs one version past this binary's;
//! nodes claim to support it with the upgrade-testing setting
//! `FLOTILLA_MODEL_VERSION`.

use std::time::Duration;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::random_bytes;
use flotilla_cluster_tests::sandbox::ADMIN_USER;
use flotilla_cluster_tests::{wait, Sandbox};
use serde_json::Value;

use crate::common::{cluster, repo, run_printing_logs};

const BINARY_VERSION: u64 = 1;
const NEXT_VERSION: &str = "2";

fn post_probe(sandbox: &Sandbox, index: usize) -> anyhow::Result<(u16, String)> {
    let url = format!("{}/_cluster/model/probe", sandbox.node(index).base_url());
    let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build()?;
    let response = http.post(&url).basic_auth(ADMIN_USER, Some(sandbox.admin_password())).send()?;
    Ok((response.status().as_u16(), response.text()?))
}

fn active(sandbox: &Sandbox, index: usize) -> anyhow::Result<u64> {
    sandbox.cluster_get(index, "model")?["active"].as_u64().context("active")
}

fn wait_for_active(sandbox: &Sandbox, version: u64) -> anyhow::Result<()> {
    wait::until(&format!("model version {version} to be active"), Duration::from_secs(30), || {
        active(sandbox, 0).is_ok_and(|active| active == version)
    })
}

/// Upgrades node `index`: restarted claiming the next model version.
fn upgrade(sandbox: &Sandbox, index: usize) -> anyhow::Result<()> {
    sandbox.node(index).set_env("FLOTILLA_MODEL_VERSION", NEXT_VERSION);
    sandbox.node(index).restart()
}

fn push_through(sandbox: &Sandbox, index: usize, name: &str) -> anyhow::Result<()> {
    let client = sandbox.node(index).client(sandbox.admin_credentials());
    client.push_blob_monolithic(name, &random_bytes(4096)).map(|_| ())
}

#[test]
fn a_newer_command_waits_until_every_node_supports_its_version() {
    let sandbox = cluster(3);
    run_printing_logs(&sandbox, |sandbox| {
        let name = repo("t48", "gate");
        wait_for_active(sandbox, BINARY_VERSION)?;
        let model = sandbox.cluster_get(1, "model")?;
        ensure!(model["binary"] == BINARY_VERSION, "{model}");
        let versions: Vec<&Value> =
            model["nodes"].as_array().context("nodes")?.iter().map(|n| &n["model_version"]).collect();
        ensure!(versions.iter().all(|v| **v == BINARY_VERSION), "every node reports its binary's version: {model}");

        upgrade(sandbox, 0)?;
        wait::until("node 1 to report the next version", Duration::from_secs(30), || {
            sandbox.cluster_get(1, "model").is_ok_and(|model| {
                model["nodes"]
                    .as_array()
                    .is_some_and(|nodes| nodes.iter().any(|n| n["id"] == 1 && n["model_version"] == 2))
            })
        })?;
        for index in 0..3 {
            let (status, body) = post_probe(sandbox, index)?;
            ensure!(status == 503, "probe through node {index} while two nodes lack the version: {status} {body}");
            ensure!(body.contains("model version 2"), "the refusal says why: {body}");
            push_through(sandbox, index, &name)?;
        }
        ensure!(active(sandbox, 2)? == BINARY_VERSION, "a mixed cluster keeps the older version");

        upgrade(sandbox, 1)?;
        let (status, body) = post_probe(sandbox, 1)?;
        ensure!(status == 503, "one node still lacks the version: {status} {body}");
        upgrade(sandbox, 2)?;
        wait_for_active(sandbox, 2)?;
        for index in 0..3 {
            wait::until(&format!("node {index} to accept the probe"), Duration::from_secs(10), || {
                post_probe(sandbox, index).is_ok_and(|(status, _)| status == 204)
            })?;
            push_through(sandbox, index, &name)?;
        }
        Ok(())
    });
}
