//! oras-py (the Python ORAS SDK) pushes files as an artifact through the token
//! flow (monolithic POST + PUT, and chunked PATCHes that follow every
//! `Location`), lists tags, pulls the files back byte-exact, and deletes a tag
//! the oras way (HEAD for `Docker-Content-Digest`, then DELETE by digest = 202).
//! Driven through `scripts/oras_roundtrip.py`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::{random_bytes, sha256_digest};
use flotilla_cluster_tests::tools;
use flotilla_cluster_tests::Sandbox;
use serde_json::Value;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

const PYTHON_TIMEOUT: Duration = Duration::from_secs(180);

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oras_roundtrip.py")
}

/// Fails with an installation hint unless `python3` can import oras-py.
fn require_oras() -> anyhow::Result<()> {
    let mut probe = Command::new("python3");
    probe.args(["-c", "import oras.provider, oras.version; print(oras.version.__version__)"]);
    let finished = tools::run(probe, Duration::from_secs(60)).context("python3 is not runnable")?;
    ensure!(
        finished.code == Some(0),
        "python3 cannot import oras-py; install it with `python3 -m pip install oras==0.2.43` \
         (scripts/deps.sh does)\n{}",
        finished.stderr
    );
    Ok(())
}

/// Runs the round-trip script and returns its JSON report.
fn oras_roundtrip(
    sandbox: &Sandbox,
    name: &str,
    tag: &str,
    outdir: &Path,
    files: &[PathBuf],
    extra: &[&str],
) -> anyhow::Result<Value> {
    oras_roundtrip_on(sandbox, 0, name, tag, outdir, files, extra)
}

/// Like [`oras_roundtrip`], against node `index` of the sandbox.
pub(crate) fn oras_roundtrip_on(
    sandbox: &Sandbox,
    index: usize,
    name: &str,
    tag: &str,
    outdir: &Path,
    files: &[PathBuf],
    extra: &[&str],
) -> anyhow::Result<Value> {
    require_oras()?;
    let node = sandbox.node(index);
    let no_proxy = format!("127.0.0.1,localhost,{}", node.ip());
    let mut command = Command::new("python3");
    command
        .arg(script_path())
        .args(["--host", &node.host(), "--user", "admin", "--password", sandbox.admin_password()])
        .args(["--repo", name, "--tag", tag])
        .arg("--outdir")
        .arg(outdir)
        .args(extra)
        .args(files)
        .env("NO_PROXY", no_proxy)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy");
    let finished = tools::run(command, PYTHON_TIMEOUT)?.expect_success()?;
    let last_line = finished.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last_line).with_context(|| format!("oras script printed no JSON report:\n{}", finished.stdout))
}

pub(crate) fn write_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    files
        .iter()
        .map(|(file_name, bytes)| {
            let path = dir.join(file_name);
            std::fs::write(&path, bytes)?;
            Ok(path)
        })
        .collect()
}

/// Fails unless every file came back into `outdir` byte-exact and the registry
/// serves each as a layer of `tag`.
fn assert_round_trip(
    sandbox: &Sandbox,
    name: &str,
    tag: &str,
    outdir: &Path,
    files: &[(&str, Vec<u8>)],
    report: &Value,
) -> anyhow::Result<()> {
    ensure!(report["push_status"] == 201, "oras manifest PUT status: {report}");
    let pulled = report["pulled"].as_array().context("report without `pulled`")?;
    ensure!(pulled.len() == files.len(), "pulled {pulled:?}, pushed {} files", files.len());
    let client = sandbox.client();
    let manifest = client.get_manifest(name, tag)?.expect_status(200)?.json()?;
    for (file_name, bytes) in files {
        let back = std::fs::read(outdir.join(file_name)).with_context(|| format!("{file_name} was not pulled"))?;
        ensure!(&back == bytes, "{file_name} came back different ({} vs {} bytes)", back.len(), bytes.len());
        let digest = sha256_digest(bytes);
        let layer = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["digest"] == digest.as_str())
            .with_context(|| format!("manifest has no layer for {file_name}: {manifest}"))?;
        assert_eq!(layer["annotations"]["org.opencontainers.image.title"], *file_name);
        ensure!(
            client.get_blob(name, &digest)?.expect_status(200)?.body == *bytes,
            "registry blob of {file_name} differs"
        );
    }
    Ok(())
}

#[test]
fn oras_pushes_and_pulls_files_byte_exact() {
    run(|sandbox| {
        let work = tempfile::tempdir()?;
        let files = vec![("notes.txt", b"hello from oras-py\n".to_vec()), ("payload.bin", random_bytes(1_500_000))];
        let paths = write_files(&work.path().join("in"), &files)?;
        let name = repo("t21", "files");
        let outdir = work.path().join("out");
        let report = oras_roundtrip(sandbox, &name, "v1", &outdir, &paths, &["--annotation", "org.example.kind=test"])?;
        assert_round_trip(sandbox, &name, "v1", &outdir, &files, &report)?;
        assert_eq!(report["tags"], serde_json::json!(["v1"]));
        assert_eq!(report["manifest"]["annotations"]["org.example.kind"], "test");
        Ok(())
    });
}

#[test]
fn oras_chunked_push_follows_every_location() {
    run(|sandbox| {
        let work = tempfile::tempdir()?;
        let files = vec![("big.bin", random_bytes(3 * 1024 * 1024 + 123))];
        let paths = write_files(&work.path().join("in"), &files)?;
        let name = repo("t21", "chunked");
        let outdir = work.path().join("out");
        let report = oras_roundtrip(sandbox, &name, "chunked", &outdir, &paths, &["--chunk-size", "1048576"])?;
        assert_round_trip(sandbox, &name, "chunked", &outdir, &files, &report)
    });
}

#[test]
fn oras_delete_tag_removes_it_and_keeps_the_others() {
    run(|sandbox| {
        let work = tempfile::tempdir()?;
        let name = repo("t21", "delete");
        let keep_files = vec![("keep.txt", b"keep me".to_vec())];
        let keep_paths = write_files(&work.path().join("keep"), &keep_files)?;
        oras_roundtrip(sandbox, &name, "keep", &work.path().join("out-keep"), &keep_paths, &[])?;

        let drop_files = vec![("drop.txt", b"drop me".to_vec())];
        let drop_paths = write_files(&work.path().join("drop"), &drop_files)?;
        let report = oras_roundtrip(sandbox, &name, "drop", &work.path().join("out-drop"), &drop_paths, &["--delete"])?;
        assert_eq!(report["tags"], serde_json::json!(["drop", "keep"]));
        assert_eq!(report["deleted"], true);
        assert_eq!(report["tags_after_delete"], serde_json::json!(["keep"]));
        sandbox.client().get_manifest(&name, "drop")?.expect_status(404)?;
        sandbox.client().get_manifest(&name, "keep")?.expect_status(200)?;
        Ok(())
    });
}
