//! The compose deployment of `deploy/`, where a Docker engine is available:
//! `deploy/compose/smoke.sh` builds the image FROM scratch (here from the
//! binary under test), starts the three-node compose cluster, pushes with
//! skopeo through each node and pulls byte-exact from every node, kills one
//! container and keeps pushing and pulling through the others, then restarts
//! the three one after the other (a rolling restart) with pushes and pulls
//! going on through the others. The script fails on the first client error.

use std::path::Path;
use std::process::{Command, Stdio};

/// Whether `program arg` runs and succeeds.
fn succeeds(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn compose_available() -> bool {
    succeeds("docker", "info") && succeeds("docker-compose", "version")
}

#[test]
fn the_compose_cluster_serves_through_a_killed_node_and_a_rolling_restart() {
    if !compose_available() {
        eprintln!("t47_compose: no Docker engine with docker-compose here; the compose smoke test is not exercised");
        return;
    }
    let binary = flotilla_cluster_tests::sandbox::locate_binary().expect("the flotilla binary");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(root.join("deploy/compose/smoke.sh"))
        .env("FLOTILLA_BINARY", &binary)
        .env("FLOTILLA_IMAGE", "flotilla:smoke-test")
        .output()
        .expect("running deploy/compose/smoke.sh");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{log}");
    assert!(output.status.success(), "the compose smoke test failed:\n{log}");
    assert!(log.contains("smoke test passed"), "the script ended early:\n{log}");
}
