//! OCI conformance v1.1.1 "Push" workflow: streamed, monolithic, two-step and
//! chunked blob uploads with their sharp edges (416, `Range: 0-N`, 204 status
//! GET), cross-repository mounts, and every kind of manifest.

use anyhow::ensure;
use flotilla_cluster_tests::content::{
    media, random_bytes, sha256_digest, Blob, ImageManifest, IndexManifest, Manifest,
};
use flotilla_cluster_tests::Sandbox;
use serde_json::json;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

#[test]
fn streamed_upload_patch_then_put_creates_the_blob() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "streamed");
        let bytes = random_bytes(300_000);
        let digest = sha256_digest(&bytes);
        let post = client.start_upload(&name)?.expect_status(202)?;
        let location = post.location()?;
        let patch = client.patch_streamed(&location, &bytes)?.expect_status(202)?;
        assert_eq!(patch.header("Range"), Some(format!("0-{}", bytes.len() - 1).as_str()));
        let put = client.put_upload(&patch.location()?, &digest, &[])?.expect_status(201)?;
        assert_eq!(put.header("Docker-Content-Digest"), Some(digest.as_str()));
        let blob_location = put.location()?;
        assert!(client.call(reqwest::Method::GET, &blob_location)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn monolithic_post_with_digest_answers_201_with_location() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "monolithic");
        let bytes = random_bytes(5000);
        let digest = sha256_digest(&bytes);
        client.push_blob_monolithic(&name, b"repository exists")?;
        client.get_blob(&name, &digest)?.expect_status(404)?;
        let post = client.post_monolithic(&name, &digest, &bytes)?.expect_status(201)?;
        assert_eq!(post.header("Docker-Content-Digest"), Some(digest.as_str()));
        let get = client.call(reqwest::Method::GET, &post.location()?)?.expect_status(200)?;
        assert!(get.body == bytes);
        Ok(())
    });
}

#[test]
fn post_then_put_with_body_creates_blob_and_layer() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "post-put");
        for bytes in [Blob::random_config().bytes, random_bytes(64 * 1024)] {
            let post = client.start_upload(&name)?.expect_status(202)?;
            let location = post.location()?;
            ensure!(location.contains("/blobs/uploads/"), "session Location {location:?} has no upload id path");
            let digest = sha256_digest(&bytes);
            client.put_upload(&location, &digest, &bytes)?.expect_status(201)?;
            assert!(client.get_blob(&name, &digest)?.expect_status(200)?.body == bytes);
        }
        Ok(())
    });
}

#[test]
fn chunked_upload_sharp_edges_416_range_and_204_status() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "chunked");
        let bytes = random_bytes(10_000);
        let (first, second) = bytes.split_at(4000);
        let digest = sha256_digest(&bytes);

        // Out of order: the second chunk before the first.
        let stale = client.start_upload(&name)?.expect_status(202)?.location()?;
        client.patch_chunk(&stale, second, Some((4000, 9999)))?.expect_status(416)?;

        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let patched = client.patch_chunk(&location, first, Some((0, 3999)))?.expect_status(202)?;
        assert_eq!(patched.header("Range"), Some("0-3999"), "Range must be 0-<end> without `bytes=`");
        let location = patched.location()?;

        // Retrying the same chunk is out of order now.
        client.patch_chunk(&location, first, Some((0, 3999)))?.expect_status(416)?;

        let status = client.upload_status(&location)?.expect_status(204)?;
        assert_eq!(status.header("Range"), Some("0-3999"));
        let location = status.location()?;

        let patched = client.patch_chunk(&location, second, Some((4000, 9999)))?.expect_status(202)?;
        assert_eq!(patched.header("Range"), Some("0-9999"));
        let put = client.put_upload(&patched.location()?, &digest, &[])?.expect_status(201)?;
        assert_eq!(put.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert!(client.get_blob(&name, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn chunked_upload_may_close_with_the_last_chunk_in_the_put() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "put-last-chunk");
        let bytes = random_bytes(9000);
        let digest = sha256_digest(&bytes);
        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let location =
            client.patch_chunk(&location, &bytes[..5000], Some((0, 4999)))?.expect_status(202)?.location()?;
        client.put_upload(&location, &digest, &bytes[5000..])?.expect_status(201)?;
        assert!(client.get_blob(&name, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn many_chunk_upload_reassembles_exactly() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "many-chunks");
        let bytes = random_bytes(1_000_000);
        let digest = client.push_blob_chunked(&name, &bytes, 64 * 1024 + 7)?;
        assert!(client.get_blob(&name, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn upload_session_status_before_any_chunk_is_204_with_location() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "fresh-status");
        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let status = client.upload_status(&location)?.expect_status(204)?;
        status.location()?;
        if let Some(range) = status.header("Range") {
            ensure!(!range.starts_with("bytes="), "Range {range:?} must not carry `bytes=`");
        }
        Ok(())
    });
}

#[test]
fn cancelled_upload_session_is_gone() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "cancel");
        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let location = client.patch_chunk(&location, b"partial", Some((0, 6)))?.expect_status(202)?.location()?;
        client.cancel_upload(&location)?.expect_status(204)?;
        client.upload_status(&location)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.put_upload(&location, &sha256_digest(b"partial"), &[])?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.head_blob(&name, &sha256_digest(b"partial"))?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn cross_repository_mount_with_from_answers_201() {
    run(|sandbox| {
        let client = sandbox.client();
        let source = repo("t11", "mount-source");
        let target = repo("t11", "mount-target");
        let bytes = random_bytes(2000);
        let digest = client.push_blob_monolithic(&source, &bytes)?;
        let mount = client.mount(&target, &digest, Some(&source))?.expect_status(201)?;
        assert_eq!(mount.header("Docker-Content-Digest"), Some(digest.as_str()));
        let location = mount.location()?;
        ensure!(location.ends_with(&format!("/v2/{target}/blobs/{digest}")), "mount Location {location:?}");
        assert!(client.get_blob(&target, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn mount_without_from_mounts_or_opens_a_session() {
    run(|sandbox| {
        let client = sandbox.client();
        let source = repo("t11", "anon-mount-source");
        let target = repo("t11", "anon-mount-target");
        let bytes = random_bytes(1500);
        let digest = client.push_blob_monolithic(&source, &bytes)?;
        let mount = client.mount(&target, &digest, None)?.expect_status_in(&[201, 202])?;
        let location = mount.location()?;
        if mount.status == 201 {
            assert!(client.get_blob(&target, &digest)?.expect_status(200)?.body == bytes);
        } else {
            client.put_upload(&location, &digest, &bytes)?.expect_status(201)?;
            assert!(client.get_blob(&target, &digest)?.expect_status(200)?.body == bytes);
        }
        Ok(())
    });
}

#[test]
fn mount_of_a_missing_blob_yields_a_usable_session() {
    run(|sandbox| {
        let client = sandbox.client();
        let source = repo("t11", "missing-mount-source");
        let target = repo("t11", "missing-mount-target");
        client.push_blob_monolithic(&source, b"source exists")?;
        let bytes = random_bytes(777);
        let digest = sha256_digest(&bytes);
        let session = client.mount(&target, &digest, Some(&source))?.expect_status(202)?;
        let location = session.location()?;
        ensure!(location.contains("/blobs/uploads/"), "Location {location:?} is not an upload session");
        client.get_blob(&target, &digest)?.expect_status(404)?;
        client.put_upload(&location, &digest, &bytes)?.expect_status(201)?;
        assert!(client.get_blob(&target, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn mount_from_a_repository_that_lacks_the_blob_does_not_mount() {
    run(|sandbox| {
        let client = sandbox.client();
        let holder = repo("t11", "holder");
        let empty_source = repo("t11", "empty-source");
        let target = repo("t11", "leak-target");
        let digest = client.push_blob_monolithic(&holder, &random_bytes(999))?;
        client.push_blob_monolithic(&empty_source, b"unrelated")?;
        client.mount(&target, &digest, Some(&empty_source))?.expect_status(202)?;
        client.get_blob(&target, &digest)?.expect_status(404)?;
        Ok(())
    });
}

fn push_image(client: &flotilla_cluster_tests::OciClient, name: &str) -> anyhow::Result<(Blob, Blob, Manifest)> {
    let config = Blob::random_config();
    let layer = Blob::random_layer(4096);
    client.push_blob_monolithic(name, &config.bytes)?;
    client.push_blob_monolithic(name, &layer.bytes)?;
    let manifest = ImageManifest::new(&config, &[&layer]).build();
    Ok((config, layer, manifest))
}

#[test]
fn manifest_put_by_tag_answers_201_with_digest_and_location() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "manifest");
        let (_, _, manifest) = push_image(&client, &name)?;
        client.get_manifest(&name, "v1")?.expect_status(404)?;
        let put = client.push_manifest(&name, "v1", &manifest)?;
        assert_eq!(put.header("Docker-Content-Digest"), Some(manifest.digest.as_str()));
        put.location()?;
        let by_digest = client.get_manifest(&name, &manifest.digest)?.expect_status(200)?;
        assert_eq!(by_digest.body, manifest.bytes);
        Ok(())
    });
}

#[test]
fn manifest_put_by_digest_is_stored_untagged() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "by-digest");
        let (_, _, manifest) = push_image(&client, &name)?;
        client.push_manifest(&name, &manifest.digest, &manifest)?;
        assert_eq!(client.get_manifest(&name, &manifest.digest)?.expect_status(200)?.body, manifest.bytes);
        Ok(())
    });
}

#[test]
fn manifest_with_no_layers_is_accepted() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "no-layers");
        let config = Blob::random_config();
        client.push_blob_monolithic(&name, &config.bytes)?;
        let manifest = ImageManifest::new(&config, &[]).build();
        client.push_manifest(&name, "empty", &manifest)?;
        assert_eq!(client.get_manifest(&name, "empty")?.expect_status(200)?.body, manifest.bytes);
        Ok(())
    });
}

#[test]
fn artifact_manifest_with_artifact_type_and_empty_config_round_trips() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "artifact");
        let empty = Blob::empty_json();
        let payload = Blob::new("application/vnd.example.payload", random_bytes(333));
        client.push_blob_monolithic(&name, &empty.bytes)?;
        client.push_blob_monolithic(&name, &payload.bytes)?;
        let with_layer = ImageManifest::new(&empty, &[&payload]).artifact_type("application/vnd.example.thing").build();
        let without_layers = ImageManifest::new(&empty, &[]).artifact_type("application/vnd.example.bare").build();
        for (tag, manifest) in [("with-layer", &with_layer), ("bare", &without_layers)] {
            client.push_manifest(&name, tag, manifest)?;
            let get = client.get_manifest(&name, tag)?.expect_status(200)?;
            assert_eq!(get.body, manifest.bytes);
            assert_eq!(get.header("Content-Type"), Some(media::OCI_MANIFEST));
        }
        Ok(())
    });
}

#[test]
fn manifest_with_subject_answers_with_oci_subject_header() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "subject");
        let (_, _, subject) = push_image(&client, &name)?;
        client.push_manifest(&name, "base", &subject)?;
        let empty = Blob::empty_json();
        client.push_blob_monolithic(&name, &empty.bytes)?;
        let referrer =
            ImageManifest::new(&empty, &[]).artifact_type("application/vnd.example.sig").subject(&subject).build();
        let put = client.push_manifest(&name, &referrer.digest, &referrer)?;
        assert_eq!(put.header("OCI-Subject"), Some(subject.digest.as_str()));
        Ok(())
    });
}

#[test]
fn image_index_and_docker_manifest_list_round_trip() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "index");
        let (_, _, amd64) = push_image(&client, &name)?;
        let (_, _, arm64) = push_image(&client, &name)?;
        client.push_manifest(&name, &amd64.digest, &amd64)?;
        client.push_manifest(&name, &arm64.digest, &arm64)?;
        let index = IndexManifest::oci()
            .platform_manifest(&amd64, "linux", "amd64")
            .platform_manifest(&arm64, "linux", "arm64")
            .annotation("org.opencontainers.image.ref.name", "multi")
            .build();
        let list = IndexManifest::docker_list()
            .platform_manifest(&amd64, "linux", "amd64")
            .platform_manifest(&arm64, "linux", "arm64")
            .build();
        for (tag, manifest) in [("oci-index", &index), ("docker-list", &list)] {
            let put = client.push_manifest(&name, tag, manifest)?;
            assert_eq!(put.header("Docker-Content-Digest"), Some(manifest.digest.as_str()));
            let get = client.get_manifest(&name, tag)?.expect_status(200)?;
            assert_eq!(get.header("Content-Type"), Some(manifest.media_type.as_str()));
            assert_eq!(get.body, manifest.bytes);
        }
        Ok(())
    });
}

#[test]
fn four_mib_manifest_is_accepted_and_served_unchanged() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "large-manifest");
        let config = Blob::random_config();
        client.push_blob_monolithic(&name, &config.bytes)?;
        let filler = "x".repeat(10 * 1024);
        let mut builder = ImageManifest::new(&config, &[]);
        let mut index = 0;
        while builder.build().size() < 4 * 1024 * 1024 {
            builder = builder.annotation(&format!("org.example.filler.{index:04}"), &filler);
            index += 1;
        }
        let manifest = builder.build();
        ensure!(manifest.size() >= 4 * 1024 * 1024 && manifest.size() < 4 * 1024 * 1024 + 20 * 1024);
        client.push_manifest(&name, "large", &manifest)?;
        assert!(client.get_manifest(&name, "large")?.expect_status(200)?.body == manifest.bytes);
        Ok(())
    });
}

#[test]
fn manifest_with_custom_fields_and_no_media_type_field_is_kept_byte_exact() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "custom-fields");
        let config = Blob::random_config();
        client.push_blob_monolithic(&name, &config.bytes)?;
        let mut value = ImageManifest::new(&config, &[]).without_media_type_field().to_json();
        value["org.example.custom"] = json!({"nested": [1, 2, 3]});
        // Pretty-printed on purpose: registries must not re-serialise.
        let bytes = serde_json::to_vec_pretty(&value)?;
        let manifest = Manifest::from_bytes(media::OCI_MANIFEST, bytes);
        client.push_manifest(&name, "custom", &manifest)?;
        let get = client.get_manifest(&name, &manifest.digest)?.expect_status(200)?;
        assert_eq!(get.body, manifest.bytes);
        Ok(())
    });
}

#[test]
fn retagging_moves_the_tag_to_the_new_manifest() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t11", "retag");
        let (_, _, first) = push_image(&client, &name)?;
        let (_, _, second) = push_image(&client, &name)?;
        client.push_manifest(&name, "latest", &first)?;
        client.push_manifest(&name, "latest", &second)?;
        let head = client.head_manifest(&name, "latest")?.expect_status(200)?;
        assert_eq!(head.header("Docker-Content-Digest"), Some(second.digest.as_str()));
        // The first manifest is still there by digest.
        client.get_manifest(&name, &first.digest)?.expect_status(200)?;
        Ok(())
    });
}
