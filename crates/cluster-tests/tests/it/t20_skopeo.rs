//! skopeo (Debian's, containers/image) copies hand-built OCI layouts into the
//! registry and back out; every blob must come back byte-exact and the
//! manifests keep their digests. skopeo authenticates through the Bearer
//! challenge and token realm with `--*-creds`, pushes with POST, one streamed
//! PATCH and `PUT ?digest=`, and checks blobs with HEAD first.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::{image_config, random_gzip_layer, Blob, ImageManifest, IndexManifest, Manifest};
use flotilla_cluster_tests::oci_layout::{read_blob, tagged_digest, OciLayout};
use flotilla_cluster_tests::tools::{self, Finished};
use flotilla_cluster_tests::Sandbox;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

const SKOPEO: &str = "/usr/bin/skopeo";
const SKOPEO_TIMEOUT: Duration = Duration::from_secs(180);

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

/// One image: its manifest and every blob it references.
pub(crate) struct BuiltImage {
    pub(crate) manifest: Manifest,
    pub(crate) blobs: Vec<Blob>,
}

pub(crate) fn build_image(layer_sizes: &[usize], architecture: &str) -> BuiltImage {
    let layers: Vec<_> = layer_sizes.iter().map(|&size| random_gzip_layer(size)).collect();
    let config = image_config(&layers, "linux", architecture);
    let layer_blobs: Vec<&Blob> = layers.iter().map(|l| &l.blob).collect();
    let manifest = ImageManifest::new(&config, &layer_blobs).build();
    let mut blobs = vec![config.clone()];
    blobs.extend(layers.into_iter().map(|l| l.blob));
    BuiltImage { manifest, blobs }
}

pub(crate) fn write_image(layout: &mut OciLayout, image: &BuiltImage) -> anyhow::Result<()> {
    for blob in &image.blobs {
        layout.add_blob(blob)?;
    }
    layout.add_manifest(&image.manifest)
}

fn skopeo(args: &[&str]) -> anyhow::Result<Finished> {
    tools::require_executable(SKOPEO, "install Debian's skopeo (`apt-get install skopeo`; scripts/deps.sh does)")?;
    let mut command = Command::new(SKOPEO);
    command.arg("--insecure-policy").args(args);
    tools::run(command, SKOPEO_TIMEOUT)?.expect_success()
}

pub(crate) fn copy_in(sandbox: &Sandbox, layout: &Path, tag: &str, destination: &str, all: bool) -> anyhow::Result<()> {
    let creds = format!("admin:{}", sandbox.admin_password());
    let source = format!("oci:{}:{tag}", layout.display());
    let mut args = vec!["copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds.as_str()];
    if all {
        args.push("--all");
    }
    args.extend([source.as_str(), destination]);
    skopeo(&args).map(drop)
}

pub(crate) fn copy_out(sandbox: &Sandbox, source: &str, layout: &Path, tag: &str, all: bool) -> anyhow::Result<()> {
    let creds = format!("admin:{}", sandbox.admin_password());
    let destination = format!("oci:{}:{tag}", layout.display());
    let mut args = vec!["copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds", creds.as_str()];
    if all {
        args.push("--all");
    }
    args.extend([source, destination.as_str()]);
    skopeo(&args).map(drop)
}

/// Fails unless the layout at `dir` holds every blob byte-exact.
pub(crate) fn assert_blobs_identical(dir: &Path, blobs: &[Blob], manifests: &[&Manifest]) -> anyhow::Result<()> {
    for blob in blobs {
        let copied =
            read_blob(dir, &blob.digest)?.with_context(|| format!("blob {} did not come back", blob.digest))?;
        ensure!(
            copied == blob.bytes,
            "blob {} came back different ({} vs {} bytes)",
            blob.digest,
            copied.len(),
            blob.size()
        );
    }
    for manifest in manifests {
        let copied = read_blob(dir, &manifest.digest)?
            .with_context(|| format!("manifest {} did not come back", manifest.digest))?;
        ensure!(copied == manifest.bytes, "manifest {} came back different", manifest.digest);
    }
    Ok(())
}

#[test]
fn skopeo_copies_a_multi_layer_image_in_and_back_out_byte_exact() {
    run(|sandbox| {
        let work = tempfile::tempdir()?;
        let source_dir = work.path().join("source");
        let image = build_image(&[1500, 300_000, 2 * 1024 * 1024 + 17], "amd64");
        let mut layout = OciLayout::create(&source_dir)?;
        write_image(&mut layout, &image)?;
        layout.tag(&image.manifest, "v1");
        layout.finish()?;

        let name = repo("t20", "image");
        let reference = format!("docker://{}/{name}:v1", sandbox.node(0).host());
        copy_in(sandbox, &source_dir, "v1", &reference, false)?;

        let client = sandbox.client();
        let pushed = client.get_manifest(&name, "v1")?.expect_status(200)?;
        assert_eq!(pushed.body, image.manifest.bytes, "the registry must hold the manifest skopeo pushed, unchanged");
        for blob in &image.blobs {
            assert!(
                client.get_blob(&name, &blob.digest)?.expect_status(200)?.body == blob.bytes,
                "blob {}",
                blob.digest
            );
        }

        let out_dir = work.path().join("out");
        copy_out(sandbox, &reference, &out_dir, "v1", false)?;
        assert_eq!(tagged_digest(&out_dir, "v1")?, image.manifest.digest);
        assert_blobs_identical(&out_dir, &image.blobs, &[&image.manifest])
    });
}

#[test]
fn skopeo_copies_an_image_index_with_all_platforms() {
    run(|sandbox| {
        let work = tempfile::tempdir()?;
        let source_dir = work.path().join("source");
        let amd64 = build_image(&[40_000, 70_000], "amd64");
        let arm64 = build_image(&[50_000], "arm64");
        let index = IndexManifest::oci()
            .platform_manifest(&amd64.manifest, "linux", "amd64")
            .platform_manifest(&arm64.manifest, "linux", "arm64")
            .build();
        let mut layout = OciLayout::create(&source_dir)?;
        write_image(&mut layout, &amd64)?;
        write_image(&mut layout, &arm64)?;
        layout.add_manifest(&index)?;
        layout.tag(&index, "multi");
        layout.finish()?;

        let name = repo("t20", "index");
        let reference = format!("docker://{}/{name}:multi", sandbox.node(0).host());
        copy_in(sandbox, &source_dir, "multi", &reference, true)?;

        let client = sandbox.client();
        assert_eq!(client.get_manifest(&name, "multi")?.expect_status(200)?.body, index.bytes);
        for image in [&amd64, &arm64] {
            assert_eq!(
                client.get_manifest(&name, &image.manifest.digest)?.expect_status(200)?.body,
                image.manifest.bytes
            );
        }

        let out_dir = work.path().join("out");
        copy_out(sandbox, &reference, &out_dir, "multi", true)?;
        assert_eq!(tagged_digest(&out_dir, "multi")?, index.digest);
        let blobs: Vec<Blob> = amd64.blobs.iter().chain(&arm64.blobs).cloned().collect();
        assert_blobs_identical(&out_dir, &blobs, &[&index, &amd64.manifest, &arm64.manifest])
    });
}

#[test]
fn skopeo_inspect_and_list_tags_see_the_pushed_image() {
    run(|sandbox| {
        let work = tempfile::tempdir()?;
        let source_dir = work.path().join("source");
        let image = build_image(&[1000], "amd64");
        let mut layout = OciLayout::create(&source_dir)?;
        write_image(&mut layout, &image)?;
        layout.tag(&image.manifest, "v1");
        layout.finish()?;
        let name = repo("t20", "inspect");
        let host = sandbox.node(0).host();
        copy_in(sandbox, &source_dir, "v1", &format!("docker://{host}/{name}:v1"), false)?;
        copy_in(sandbox, &source_dir, "v1", &format!("docker://{host}/{name}:v2"), false)?;

        let creds = format!("admin:{}", sandbox.admin_password());
        let inspected = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{host}/{name}:v1"),
        ])?;
        assert_eq!(inspected.stdout.as_bytes(), image.manifest.bytes.as_slice());
        let listed =
            skopeo(&["list-tags", "--tls-verify=false", "--creds", &creds, &format!("docker://{host}/{name}")])?;
        let tags: serde_json::Value = serde_json::from_str(&listed.stdout)?;
        assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2"]));
        Ok(())
    });
}
