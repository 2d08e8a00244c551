//! OCI conformance v1.1.1 "Pull" workflow plus the main-branch data matrix
//! items for reads: HEAD/GET of blobs and manifests, Range GETs, sha512,
//! empty and `{}` blobs, Docker media types, error bodies.

use anyhow::ensure;
use flotilla_cluster_tests::content::{
    docker_manifest, media, random_bytes, sha256_digest, sha512_digest, Blob, ImageManifest,
};
use flotilla_cluster_tests::Sandbox;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

const ABSENT_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

#[test]
fn base_endpoint_answers_200_with_the_api_version_header() {
    run(|sandbox| {
        let reply = sandbox.client().ping()?.expect_status(200)?;
        assert_eq!(reply.header("Docker-Distribution-Api-Version"), Some("registry/2.0"), "{reply:?}");
        Ok(())
    });
}

#[test]
fn health_ready_and_metrics_endpoints_answer() {
    run(|sandbox| {
        let client = sandbox.client();
        client.call(reqwest::Method::GET, "/healthz")?.expect_status(200)?;
        client.call(reqwest::Method::GET, "/readyz")?.expect_status(200)?;
        let metrics = client.call(reqwest::Method::GET, "/metrics")?.expect_status(200)?;
        let text = metrics.text();
        ensure!(
            text.lines().any(|l| l.starts_with("# TYPE ")),
            "metrics are not Prometheus text: {}",
            metrics.summary()
        );
        Ok(())
    });
}

#[test]
fn nonexistent_blob_is_404_on_head_and_blob_unknown_on_get() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "absent-blob");
        client.push_blob_monolithic(&name, b"makes the repository exist")?;
        let head = client.head_blob(&name, ABSENT_DIGEST)?.expect_status(404)?;
        assert!(head.body.is_empty(), "HEAD must have no body");
        client.get_blob(&name, ABSENT_DIGEST)?.expect_error(404, "BLOB_UNKNOWN")?;
        Ok(())
    });
}

#[test]
fn existing_blob_head_and_get_return_digest_length_and_exact_bytes() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "blob");
        let bytes = random_bytes(100_003);
        let digest = client.push_blob_monolithic(&name, &bytes)?;

        let head = client.head_blob(&name, &digest)?.expect_status(200)?;
        assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(head.header("Content-Length"), Some(bytes.len().to_string().as_str()));
        assert!(head.body.is_empty());

        let get = client.get_blob(&name, &digest)?.expect_status(200)?;
        assert_eq!(get.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert!(get.body == bytes, "GET returned {} bytes that differ from the {} pushed", get.body.len(), bytes.len());
        Ok(())
    });
}

/// `flotilla_http_sendfile_bytes_total` of the sandbox's node.
fn sendfile_bytes(sandbox: &Sandbox) -> anyhow::Result<u64> {
    let metrics = sandbox.client().call(reqwest::Method::GET, "/metrics")?.expect_status(200)?;
    let text = metrics.text();
    let line = text.lines().find_map(|line| line.strip_prefix("flotilla_http_sendfile_bytes_total "));
    let value = line.ok_or_else(|| anyhow::anyhow!("no flotilla_http_sendfile_bytes_total in {text}"))?;
    Ok(value.trim().parse()?)
}

#[test]
fn blob_gets_over_http1_are_sent_from_the_page_cache() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "sendfile");
        let bytes = random_bytes(3 * 1024 * 1024 + 7);
        let digest = client.push_blob_monolithic(&name, &bytes)?;
        let before = sendfile_bytes(sandbox)?;

        let whole = client.get_blob(&name, &digest)?.expect_status(200)?;
        let range = client.get_blob_range(&name, &digest, "bytes=1000-2099999")?.expect_status(206)?;

        assert!(
            whole.body == bytes,
            "GET returned {} bytes that differ from the {} pushed",
            whole.body.len(),
            bytes.len()
        );
        assert!(range.body[..] == bytes[1000..2_100_000], "the range differs");
        let sent = sendfile_bytes(sandbox)? - before;
        // Other tests share the node, so the counter can only have grown more.
        ensure!(
            sent >= (bytes.len() + range.body.len()) as u64,
            "only {sent} bytes went out with sendfile (a kernel without cachestat(2), before Linux 6.5, sends none)"
        );
        Ok(())
    });
}

#[test]
fn manifests_by_digest_and_tag_head_and_get() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "manifests");
        let layer = Blob::random_layer(2048);
        client.push_blob_monolithic(&name, &layer.bytes)?;
        let mut manifests = Vec::new();
        for _ in 0..2 {
            let config = Blob::random_config();
            client.push_blob_monolithic(&name, &config.bytes)?;
            manifests.push(ImageManifest::new(&config, &[&layer]).build());
        }
        for manifest in &manifests {
            client.push_manifest(&name, &manifest.digest, manifest)?;
        }
        client.push_manifest(&name, "tagtest0", &manifests[0])?;

        client.head_manifest(&name, ABSENT_DIGEST)?.expect_status(404)?;
        client.head_manifest(&name, "no-such-tag")?.expect_status(404)?;
        client.get_manifest(&name, ABSENT_DIGEST)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        client.get_manifest(&name, "no-such-tag")?.expect_error(404, "MANIFEST_UNKNOWN")?;

        for manifest in &manifests {
            let head = client.head_manifest(&name, &manifest.digest)?.expect_status(200)?;
            assert_eq!(head.header("Docker-Content-Digest"), Some(manifest.digest.as_str()));
            assert_eq!(head.header("Content-Type"), Some(media::OCI_MANIFEST));
            assert_eq!(head.header("Content-Length"), Some(manifest.size().to_string().as_str()));
            let get = client.get_manifest(&name, &manifest.digest)?.expect_status(200)?;
            assert_eq!(get.body, manifest.bytes, "manifest bytes must come back unchanged");
            assert_eq!(get.header("Content-Type"), Some(media::OCI_MANIFEST));
            assert_eq!(get.header("Docker-Content-Digest"), Some(manifest.digest.as_str()));
        }
        let head = client.head_manifest(&name, "tagtest0")?.expect_status(200)?;
        assert_eq!(head.header("Docker-Content-Digest"), Some(manifests[0].digest.as_str()));
        let get = client.get_manifest(&name, "tagtest0")?.expect_status(200)?;
        assert_eq!(get.body, manifests[0].bytes);
        Ok(())
    });
}

#[test]
fn range_requests_return_206_with_content_range_or_416() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "range");
        let bytes = random_bytes(4000);
        let digest = client.push_blob_monolithic(&name, &bytes)?;
        let total = bytes.len();

        let cases: [(&str, std::ops::Range<usize>); 4] = [
            ("bytes=500-1499", 500..1500),
            ("bytes=500-", 500..total),
            ("bytes=-500", total - 500..total),
            ("bytes=0-0", 0..1),
        ];
        for (range, expected) in cases {
            let reply = client.get_blob_range(&name, &digest, range)?.expect_status(206)?;
            let content_range = format!("bytes {}-{}/{total}", expected.start, expected.end - 1);
            assert_eq!(reply.header("Content-Range"), Some(content_range.as_str()), "Range {range}");
            assert!(reply.body == bytes[expected.clone()], "Range {range}: wrong bytes ({} long)", reply.body.len());
        }
        for unsatisfiable in [format!("bytes={total}-"), format!("bytes={}-{}", total + 10, total + 20)] {
            client.get_blob_range(&name, &digest, &unsatisfiable)?.expect_status(416)?;
        }
        Ok(())
    });
}

#[test]
fn sha512_blob_is_stored_and_served_under_its_sha512_digest() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "sha512");
        let bytes = random_bytes(70_000);
        let digest = sha512_digest(&bytes);
        client.post_monolithic(&name, &digest, &bytes)?.expect_status(201)?;
        let head = client.head_blob(&name, &digest)?.expect_status(200)?;
        assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
        let get = client.get_blob(&name, &digest)?.expect_status(200)?;
        assert!(get.body == bytes, "sha512 blob bytes differ");
        let chunked_bytes = random_bytes(10_000);
        let chunked_digest = sha512_digest(&chunked_bytes);
        client.push_blob_chunked_as(&name, &chunked_bytes, 4096, &chunked_digest)?;
        assert!(client.get_blob(&name, &chunked_digest)?.expect_status(200)?.body == chunked_bytes);
        Ok(())
    });
}

#[test]
fn empty_and_brace_blobs_round_trip() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "tiny-blobs");
        for bytes in [&b""[..], &b"{}"[..]] {
            let digest = client.push_blob_monolithic(&name, bytes)?;
            assert_eq!(digest, sha256_digest(bytes));
            let head = client.head_blob(&name, &digest)?.expect_status(200)?;
            assert_eq!(head.header("Content-Length"), Some(bytes.len().to_string().as_str()));
            assert_eq!(client.get_blob(&name, &digest)?.expect_status(200)?.body, bytes);
        }
        Ok(())
    });
}

#[test]
fn docker_schema2_manifest_keeps_its_media_type() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "docker");
        let config = Blob::random_config();
        let layer = Blob::random_layer(512);
        client.push_blob_monolithic(&name, &config.bytes)?;
        client.push_blob_monolithic(&name, &layer.bytes)?;
        let manifest = docker_manifest(&config, &[&layer]);
        let put = client.push_manifest(&name, "v1", &manifest)?;
        assert_eq!(put.header("Docker-Content-Digest"), Some(manifest.digest.as_str()));
        let get = client.get_manifest(&name, "v1")?.expect_status(200)?;
        assert_eq!(get.header("Content-Type"), Some(media::DOCKER_MANIFEST));
        assert_eq!(get.body, manifest.bytes);
        Ok(())
    });
}

#[test]
fn blob_pull_from_another_repository_is_blob_unknown() {
    run(|sandbox| {
        let client = sandbox.client();
        let owner = repo("t10", "owner");
        let other = repo("t10", "other");
        let digest = client.push_blob_monolithic(&owner, &random_bytes(300))?;
        client.push_blob_monolithic(&other, b"other content")?;
        client.get_blob(&other, &digest)?.expect_error(404, "BLOB_UNKNOWN")?;
        client.head_blob(&other, &digest)?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn error_responses_are_oci_json() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t10", "errors");
        let bad = client.put_manifest(&name, "latest", media::OCI_MANIFEST, b"{not json")?.expect_status(400)?;
        bad.expect_oci_error_body()?;
        let missing = client.get_manifest(&name, "absent")?.expect_status(404)?;
        missing.expect_oci_error_body()?;
        Ok(())
    });
}
