//! Where registries commonly go wrong (CLIENT-NOTES 1.4 and 7.2) and bad
//! input: every refusal must carry the right status and OCI error code, and
//! leave NOTHING behind, which a follow-up GET/HEAD/tags list checks.

use anyhow::ensure;
use flotilla_cluster_tests::client::string_array;
use flotilla_cluster_tests::content::{media, random_bytes, sha256_digest, Blob, ImageManifest, Manifest};
use flotilla_cluster_tests::{raw, Credentials, OciClient, Sandbox};
use serde_json::json;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

/// Fails unless neither `reference` nor the manifest's digest resolves and the
/// tag is not listed.
fn assert_manifest_absent(client: &OciClient, name: &str, tag: &str, digest: &str) -> anyhow::Result<()> {
    client.get_manifest(name, tag)?.expect_status(404)?;
    client.head_manifest(name, digest)?.expect_status(404)?;
    let tags = client.tags_list(name, "")?;
    if tags.status == 200 {
        let listed = string_array(&tags.json()?, "tags");
        ensure!(!listed.iter().any(|t| t == tag), "refused tag {tag} is listed: {listed:?}");
    } else {
        tags.expect_error(404, "NAME_UNKNOWN")?;
    }
    Ok(())
}

/// A repository holding one config blob; returns it.
fn repo_with_config(client: &OciClient, test: &str) -> anyhow::Result<(String, Blob)> {
    let name = repo("t14", test);
    let config = Blob::random_config();
    client.push_blob_monolithic(&name, &config.bytes)?;
    Ok((name, config))
}

#[test]
fn manifest_referencing_a_missing_layer_is_manifest_blob_unknown() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "missing-layer")?;
        let never_pushed = Blob::random_layer(100);
        let manifest = ImageManifest::new(&config, &[&never_pushed]).build();
        client
            .put_manifest(&name, "bad", media::OCI_MANIFEST, &manifest.bytes)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")?;
        assert_manifest_absent(&client, &name, "bad", &manifest.digest)
    });
}

#[test]
fn manifest_referencing_a_missing_config_is_manifest_blob_unknown() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "missing-config");
        let layer = Blob::random_layer(100);
        client.push_blob_monolithic(&name, &layer.bytes)?;
        let manifest = ImageManifest::new(&Blob::random_config(), &[&layer]).build();
        client
            .put_manifest(&name, "bad", media::OCI_MANIFEST, &manifest.bytes)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")?;
        assert_manifest_absent(&client, &name, "bad", &manifest.digest)
    });
}

#[test]
fn manifest_referencing_a_blob_of_another_repository_is_manifest_blob_unknown() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "foreign-layer")?;
        let layer = Blob::random_layer(100);
        client.push_blob_monolithic(&repo("t14", "foreign-owner"), &layer.bytes)?;
        let manifest = ImageManifest::new(&config, &[&layer]).build();
        client
            .put_manifest(&name, "bad", media::OCI_MANIFEST, &manifest.bytes)?
            .expect_error(400, "MANIFEST_BLOB_UNKNOWN")?;
        assert_manifest_absent(&client, &name, "bad", &manifest.digest)
    });
}

#[test]
fn malformed_manifests_are_manifest_invalid_and_not_stored() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "malformed")?;
        let good = ImageManifest::new(&config, &[]).to_json();
        let mut wrong_schema = good.clone();
        wrong_schema["schemaVersion"] = json!(3);
        let mut config_not_object = good.clone();
        config_not_object["config"] = json!("sha256:abc");
        let mut layers_not_array = good.clone();
        layers_not_array["layers"] = json!({"not": "an array"});
        let mut no_config = good.clone();
        no_config.as_object_mut().expect("object").remove("config");
        let mut size_negative = good.clone();
        size_negative["config"]["size"] = json!(-1);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not-json", b"{this is not json".to_vec()),
            ("empty-body", Vec::new()),
            ("json-array", b"[]".to_vec()),
            ("schema-version-3", serde_json::to_vec(&wrong_schema)?),
            ("config-not-object", serde_json::to_vec(&config_not_object)?),
            ("layers-not-array", serde_json::to_vec(&layers_not_array)?),
            ("no-config", serde_json::to_vec(&no_config)?),
            ("negative-size", serde_json::to_vec(&size_negative)?),
        ];
        for (tag, body) in cases {
            let reply = client.put_manifest(&name, tag, media::OCI_MANIFEST, &body)?;
            reply.expect_error(400, "MANIFEST_INVALID").map_err(|e| e.context(format!("case {tag}")))?;
            assert_manifest_absent(&client, &name, tag, &sha256_digest(&body))?;
        }
        Ok(())
    });
}

#[test]
fn manifest_whose_media_type_contradicts_content_type_is_refused() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "media-type-mismatch")?;
        let manifest = ImageManifest::new(&config, &[]).build();
        client.put_manifest(&name, "bad", media::OCI_INDEX, &manifest.bytes)?.expect_error(400, "MANIFEST_INVALID")?;
        assert_manifest_absent(&client, &name, "bad", &manifest.digest)
    });
}

#[test]
fn manifest_descriptor_with_malformed_digest_is_refused() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "bad-descriptor")?;
        let mut value = ImageManifest::new(&config, &[]).to_json();
        value["layers"] = json!([{"mediaType": media::OCI_LAYER_TAR, "digest": "sha256:NOT-HEX", "size": 3}]);
        let body = serde_json::to_vec(&value)?;
        let reply = client.put_manifest(&name, "bad", media::OCI_MANIFEST, &body)?.expect_status(400)?;
        let codes = reply.error_codes();
        ensure!(
            matches!(codes.first().map(String::as_str), Some("MANIFEST_INVALID" | "DIGEST_INVALID")),
            "expected MANIFEST_INVALID or DIGEST_INVALID, got {}",
            reply.summary()
        );
        assert_manifest_absent(&client, &name, "bad", &sha256_digest(&body))
    });
}

#[test]
fn manifest_put_under_a_digest_that_does_not_match_is_digest_invalid() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "manifest-digest-mismatch")?;
        let manifest = ImageManifest::new(&config, &[]).build();
        let claimed = sha256_digest(b"something else");
        client
            .put_manifest(&name, &claimed, media::OCI_MANIFEST, &manifest.bytes)?
            .expect_error(400, "DIGEST_INVALID")?;
        client.head_manifest(&name, &claimed)?.expect_status(404)?;
        client.head_manifest(&name, &manifest.digest)?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn manifest_over_the_size_limit_is_size_invalid_and_not_stored() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "oversized-manifest")?;
        let filler = "y".repeat(64 * 1024);
        let mut builder = ImageManifest::new(&config, &[]);
        for index in 0..(9 * 16 + 1) {
            builder = builder.annotation(&format!("org.example.filler.{index:04}"), &filler);
        }
        let manifest = builder.build();
        ensure!(manifest.size() > 9 * 1024 * 1024, "test manifest is only {} bytes", manifest.size());
        client.put_manifest(&name, "huge", media::OCI_MANIFEST, &manifest.bytes)?.expect_error(413, "SIZE_INVALID")?;
        assert_manifest_absent(&client, &name, "huge", &manifest.digest)
    });
}

#[test]
fn invalid_tags_are_refused_and_not_stored() {
    run(|sandbox| {
        let client = sandbox.client();
        let (name, config) = repo_with_config(&client, "bad-tags")?;
        let manifest = ImageManifest::new(&config, &[]).build();
        for tag in ["x".repeat(129), "-leading-dash".to_owned(), ".leading-dot".to_owned(), "has%20space".to_owned()] {
            let reply = client.put_manifest(&name, &tag, media::OCI_MANIFEST, &manifest.bytes)?;
            let reply = reply.expect_status(400).map_err(|e| e.context(format!("tag {tag:?}")))?;
            reply.expect_oci_error_body()?;
        }
        client.head_manifest(&name, &manifest.digest)?.expect_status(404)?;
        let tags = client.tags_list(&name, "")?;
        if tags.status == 200 {
            assert_eq!(string_array(&tags.json()?, "tags"), Vec::<String>::new());
        }
        Ok(())
    });
}

#[test]
fn monolithic_blob_with_the_wrong_digest_is_digest_invalid_and_not_stored() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "blob-wrong-digest");
        client.push_blob_monolithic(&name, b"repository exists")?;
        let bytes = random_bytes(2048);
        let claimed = sha256_digest(b"not these bytes");
        client.post_monolithic(&name, &claimed, &bytes)?.expect_error(400, "DIGEST_INVALID")?;
        client.head_blob(&name, &claimed)?.expect_status(404)?;
        client.head_blob(&name, &sha256_digest(&bytes))?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn chunked_upload_closed_with_the_wrong_digest_is_digest_invalid_and_not_stored() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "chunked-wrong-digest");
        let bytes = random_bytes(10_000);
        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let location = client.patch_chunk(&location, &bytes, Some((0, 9999)))?.expect_status(202)?.location()?;
        let claimed = sha256_digest(&bytes[1..]);
        client.put_upload(&location, &claimed, &[])?.expect_error(400, "DIGEST_INVALID")?;
        client.head_blob(&name, &claimed)?.expect_status(404)?;
        client.head_blob(&name, &sha256_digest(&bytes))?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn malformed_digests_are_digest_invalid() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "malformed-digest");
        client.push_blob_monolithic(&name, b"repository exists")?;
        let bytes = b"payload".to_vec();
        let hex = sha256_digest(&bytes)["sha256:".len()..].to_owned();
        let malformed = [
            "sha256:zz".to_owned(),
            format!("sha256:{}", &hex[..40]),
            format!("sha256:{}", hex.to_uppercase()),
            format!("md5:{hex}"),
            hex.clone(),
            "sha256:".to_owned(),
        ];
        for digest in &malformed {
            let reply = client.post_monolithic(&name, digest, &bytes)?;
            reply.expect_error(400, "DIGEST_INVALID").map_err(|e| e.context(format!("POST ?digest={digest}")))?;
        }
        client.head_blob(&name, &sha256_digest(&bytes))?.expect_status(404)?;
        for digest in ["sha256:zz", "sha256:abc", "notadigest"] {
            let reply = client.get_blob(&name, digest)?;
            reply.expect_error(400, "DIGEST_INVALID").map_err(|e| e.context(format!("GET blobs/{digest}")))?;
        }
        Ok(())
    });
}

#[test]
fn chunk_whose_content_range_disagrees_with_its_body_is_refused() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "range-mismatch");
        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let reply = client.patch_chunk(&location, &random_bytes(50), Some((0, 99)))?.expect_status_in(&[400, 416])?;
        reply.expect_oci_error_body()?;
        // Nothing of the refused chunk may remain: a correct first chunk must
        // start at 0 (or the session was discarded).
        let bytes = random_bytes(100);
        let retry = client.patch_chunk(&location, &bytes, Some((0, 99)))?;
        if retry.status == 404 {
            retry.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
            return Ok(());
        }
        let retry = retry.expect_status(202)?;
        assert_eq!(retry.header("Range"), Some("0-99"));
        let digest = sha256_digest(&bytes);
        client.put_upload(&retry.location()?, &digest, &[])?.expect_status(201)?;
        assert!(client.get_blob(&name, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn unknown_and_foreign_upload_sessions_are_blob_upload_unknown() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "session-owner");
        let thief = repo("t14", "session-thief");
        client.push_blob_monolithic(&thief, b"repository exists")?;
        let bogus = format!("/v2/{name}/blobs/uploads/00000000-0000-4000-8000-000000000000");
        client.upload_status(&bogus)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.patch_chunk(&bogus, b"abc", Some((0, 2)))?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.put_upload(&bogus, &sha256_digest(b"abc"), b"abc")?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.head_blob(&name, &sha256_digest(b"abc"))?.expect_status(404)?;

        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        let session_id = location.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default();
        let stolen = format!("/v2/{thief}/blobs/uploads/{session_id}");
        client.put_upload(&stolen, &sha256_digest(b"abc"), b"abc")?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.head_blob(&thief, &sha256_digest(b"abc"))?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn a_completed_upload_session_cannot_be_reused() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "reuse-session");
        let bytes = random_bytes(1000);
        let location = client.start_upload(&name)?.expect_status(202)?.location()?;
        client.put_upload(&location, &sha256_digest(&bytes), &bytes)?.expect_status(201)?;
        let other = random_bytes(1000);
        client.put_upload(&location, &sha256_digest(&other), &other)?.expect_error(404, "BLOB_UPLOAD_UNKNOWN")?;
        client.head_blob(&name, &sha256_digest(&other))?.expect_status(404)?;
        Ok(())
    });
}

/// Raw requests so that `..`, `%2F` and `//` reach the server untouched.
fn raw_status(sandbox: &Sandbox, method: &str, target: &str, body: &[u8]) -> anyhow::Result<raw::RawResponse> {
    let Credentials::Basic { user, password } = sandbox.admin_credentials() else { unreachable!() };
    let auth = format!("Basic {}", base64_encode(&format!("{user}:{password}")));
    raw::request(sandbox.node(0).http_addr(), method, target, &[("Authorization", &auth)], body)
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn invalid_repository_names_are_name_invalid_and_nothing_is_created() {
    run(|sandbox| {
        let client = sandbox.client();
        let bytes = b"name trick payload".to_vec();
        let digest = sha256_digest(&bytes);
        let long_component = "a".repeat(300);
        let names = [
            "t14/Upper/Case".to_owned(),
            "t14/a/../b".to_owned(),
            "t14/..".to_owned(),
            "t14/a%2Fb".to_owned(),
            "t14//empty".to_owned(),
            "t14/trailing/".to_owned(),
            format!("t14/{long_component}"),
            "t14/-dash".to_owned(),
            "t14/a__-b".to_owned(),
            "t14/sp%20ace".to_owned(),
        ];
        for name in &names {
            let post = raw_status(sandbox, "POST", &format!("/v2/{name}/blobs/uploads/?digest={digest}"), &bytes)?;
            ensure!(
                post.status == 400 && post.error_code().as_deref() == Some("NAME_INVALID"),
                "POST blob to {name:?}: expected 400 NAME_INVALID, got {} {}",
                post.status,
                String::from_utf8_lossy(&post.body)
            );
            let put = raw_status(sandbox, "PUT", &format!("/v2/{name}/manifests/latest"), b"{}")?;
            ensure!(
                put.status == 400 && put.error_code().as_deref() == Some("NAME_INVALID"),
                "PUT manifest to {name:?}: expected 400 NAME_INVALID, got {} {}",
                put.status,
                String::from_utf8_lossy(&put.body)
            );
        }
        let catalog = string_array(&client.catalog("")?.expect_status(200)?.json()?, "repositories");
        for listed in &catalog {
            ensure!(
                !listed.contains("..")
                    && !listed.contains("//")
                    && listed == &listed.to_lowercase()
                    && listed.len() < 256,
                "an invalid name was created: {listed:?}"
            );
        }
        Ok(())
    });
}

#[test]
fn valid_but_absent_names_are_404() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "absent/deeply/nested");
        client.tags_list(&name, "")?.expect_error(404, "NAME_UNKNOWN")?;
        let manifest = client.get_manifest(&name, "latest")?.expect_status(404)?;
        let code = manifest.error_codes();
        ensure!(
            matches!(code.first().map(String::as_str), Some("NAME_UNKNOWN" | "MANIFEST_UNKNOWN")),
            "{}",
            manifest.summary()
        );
        let blob = client.get_blob(&name, &sha256_digest(b"x"))?.expect_status(404)?;
        let code = blob.error_codes();
        ensure!(
            matches!(code.first().map(String::as_str), Some("NAME_UNKNOWN" | "BLOB_UNKNOWN")),
            "{}",
            blob.summary()
        );
        Ok(())
    });
}

#[test]
fn every_4xx_carries_an_oci_error_body() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "error-bodies");
        client.push_blob_monolithic(&name, b"exists")?;
        let absent = sha256_digest(b"absent");
        let anonymous = client.with_credentials(Credentials::Anonymous);
        let replies = vec![
            client.get_blob(&name, &absent)?,
            client.get_manifest(&name, "absent")?,
            client.delete_blob(&name, &absent)?,
            client.tags_list(&repo("t14", "nothing"), "")?,
            client.post_monolithic(&name, "sha256:bad", b"x")?,
            client.put_manifest(&name, "x", media::OCI_MANIFEST, b"nope")?,
            client.upload_status(&format!("/v2/{name}/blobs/uploads/nope"))?,
            anonymous.ping()?,
            anonymous.get_manifest(&name, "x")?,
        ];
        for reply in replies {
            ensure!((400..500).contains(&reply.status), "{} answered {}", reply.request, reply.status);
            reply.expect_oci_error_body()?;
            let content_type = reply.header("Content-Type").unwrap_or_default();
            ensure!(
                content_type.starts_with("application/json"),
                "{}: error Content-Type {content_type:?}",
                reply.request
            );
        }
        Ok(())
    });
}

#[test]
fn pushing_the_same_content_twice_is_idempotent() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t14", "idempotent");
        let bytes = random_bytes(3000);
        let first = client.push_blob_monolithic(&name, &bytes)?;
        let second = client.push_blob_chunked(&name, &bytes, 1000)?;
        assert_eq!(first, second);
        assert!(client.get_blob(&name, &first)?.expect_status(200)?.body == bytes);
        let config = Blob::random_config();
        client.push_blob_monolithic(&name, &config.bytes)?;
        let manifest: Manifest = ImageManifest::new(&config, &[]).build();
        client.push_manifest(&name, "t", &manifest)?;
        client.push_manifest(&name, "t", &manifest)?;
        assert_eq!(string_array(&client.tags_list(&name, "")?.expect_status(200)?.json()?, "tags"), ["t"]);
        Ok(())
    });
}
