//! docker login, push and pull against a real node, where a Docker engine is
//! available (the project's machines have one). The image is made with
//! `docker import` from a tarball of random bytes, pushed, removed locally,
//! pulled back, and its file compared byte for byte.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::random_bytes;
use flotilla_cluster_tests::Sandbox;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

pub(crate) fn docker_available() -> bool {
    Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs `docker --config <config> args…`, feeding `stdin`, and returns stdout.
pub(crate) fn docker(config: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting docker")?;
    if let Some(input) = stdin {
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn docker_login_push_and_pull_round_trip() {
    if !docker_available() {
        eprintln!("t22_docker: no Docker engine here; docker round trip not exercised");
        return;
    }
    with_shared(&SANDBOX, |sandbox: &Sandbox| {
        let work = tempfile::tempdir()?;
        let (config, rootfs) = (work.path().join("docker-config"), work.path().join("rootfs"));
        std::fs::create_dir_all(&config)?;
        std::fs::create_dir_all(&rootfs)?;
        let payload = random_bytes(300_000);
        std::fs::write(rootfs.join("payload.bin"), &payload)?;
        let tarball = work.path().join("rootfs.tar");
        let tar = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status()?;
        ensure!(tar.success(), "tar failed");

        let host = sandbox.node(0).host();
        let image = format!("{host}/{}:v1", repo("t22", "docker"));
        docker(&config, &["import", tarball.to_str().context("path")?, &image], None)?;
        docker(&config, &["login", &host, "-u", "admin", "--password-stdin"], Some(sandbox.admin_password()))?;
        docker(&config, &["push", &image], None)?;
        docker(&config, &["rmi", &image], None)?;
        docker(&config, &["pull", &image], None)?;

        let container = docker(&config, &["create", &image, "/payload.bin"], None)?;
        let copied = work.path().join("copied.bin");
        let copy =
            docker(&config, &["cp", &format!("{container}:/payload.bin"), copied.to_str().context("path")?], None);
        let _ = docker(&config, &["rm", &container], None);
        let _ = docker(&config, &["rmi", &image], None);
        copy?;
        ensure!(std::fs::read(&copied)? == payload, "the pulled image holds different bytes");
        Ok(())
    });
}
