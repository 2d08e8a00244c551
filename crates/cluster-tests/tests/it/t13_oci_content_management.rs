//! OCI conformance v1.1.1 "Content Management": DELETE of manifests by tag
//! and by digest (202), of blobs (202 then 404), and what listings show after.

use flotilla_cluster_tests::client::string_array;
use flotilla_cluster_tests::content::{random_bytes, Blob, ImageManifest, Manifest};
use flotilla_cluster_tests::{OciClient, Sandbox};
use serde_json::json;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

fn push_image(client: &OciClient, name: &str, tags: &[&str]) -> anyhow::Result<(Blob, Blob, Manifest)> {
    let config = Blob::random_config();
    let layer = Blob::random_layer(1024);
    client.push_blob_monolithic(name, &config.bytes)?;
    client.push_blob_monolithic(name, &layer.bytes)?;
    let manifest = ImageManifest::new(&config, &[&layer]).build();
    for tag in tags {
        client.push_manifest(name, tag, &manifest)?;
    }
    Ok((config, layer, manifest))
}

fn tags(client: &OciClient, name: &str) -> anyhow::Result<Vec<String>> {
    Ok(string_array(&client.tags_list(name, "")?.expect_status(200)?.json()?, "tags"))
}

#[test]
fn delete_by_tag_removes_only_that_tag() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t13", "delete-tag");
        let (_, _, manifest) = push_image(&client, &name, &["keep", "drop"])?;
        assert_eq!(tags(&client, &name)?, ["drop", "keep"]);

        client.delete_manifest(&name, "drop")?.expect_status(202)?;
        client.get_manifest(&name, "drop")?.expect_error(404, "MANIFEST_UNKNOWN")?;
        client.head_manifest(&name, "drop")?.expect_status(404)?;
        assert_eq!(tags(&client, &name)?, ["keep"]);
        let by_digest = client.get_manifest(&name, &manifest.digest)?.expect_status(200)?;
        assert_eq!(by_digest.body, manifest.bytes, "deleting a tag must keep the manifest");
        assert_eq!(client.get_manifest(&name, "keep")?.expect_status(200)?.body, manifest.bytes);
        Ok(())
    });
}

#[test]
fn delete_by_digest_removes_the_manifest_and_its_tags() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t13", "delete-digest");
        let (_, _, doomed) = push_image(&client, &name, &["a", "b"])?;
        let (_, _, survivor) = push_image(&client, &name, &["c"])?;
        let before = tags(&client, &name)?;
        assert_eq!(before, ["a", "b", "c"]);

        client.delete_manifest(&name, &doomed.digest)?.expect_status(202)?;
        client.get_manifest(&name, &doomed.digest)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        client.head_manifest(&name, &doomed.digest)?.expect_status(404)?;
        client.get_manifest(&name, "a")?.expect_status(404)?;
        client.get_manifest(&name, "b")?.expect_status(404)?;
        let after = tags(&client, &name)?;
        assert_eq!(after, ["c"], "tags list must reflect the deletion");
        assert_eq!(client.get_manifest(&name, "c")?.expect_status(200)?.body, survivor.bytes);
        Ok(())
    });
}

#[test]
fn deleting_an_unknown_manifest_is_manifest_unknown() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t13", "delete-unknown");
        push_image(&client, &name, &["x"])?;
        let absent = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        client.delete_manifest(&name, absent)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        client.delete_manifest(&name, "no-such-tag")?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn delete_blob_answers_202_then_the_blob_is_404() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t13", "delete-blob");
        let bytes = random_bytes(10_000);
        let digest = client.push_blob_monolithic(&name, &bytes)?;
        let kept = client.push_blob_monolithic(&name, &random_bytes(100))?;
        client.delete_blob(&name, &digest)?.expect_status(202)?;
        client.get_blob(&name, &digest)?.expect_error(404, "BLOB_UNKNOWN")?;
        client.head_blob(&name, &digest)?.expect_status(404)?;
        client.delete_blob(&name, &digest)?.expect_error(404, "BLOB_UNKNOWN")?;
        client.get_blob(&name, &kept)?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn deleting_a_blob_in_one_repository_keeps_it_in_another() {
    run(|sandbox| {
        let client = sandbox.client();
        let first = repo("t13", "shared-a");
        let second = repo("t13", "shared-b");
        let bytes = random_bytes(4321);
        let digest = client.push_blob_monolithic(&first, &bytes)?;
        client.push_blob_monolithic(&second, &bytes)?;
        client.delete_blob(&first, &digest)?.expect_status(202)?;
        client.get_blob(&first, &digest)?.expect_status(404)?;
        assert!(client.get_blob(&second, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn full_teardown_in_conformance_order_leaves_nothing() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t13", "teardown");
        let (config, layer, manifest) = push_image(&client, &name, &["tagtest0"])?;
        client.delete_manifest(&name, "tagtest0")?.expect_status(202)?;
        client.delete_manifest(&name, &manifest.digest)?.expect_status(202)?;
        client.delete_blob(&name, &config.digest)?.expect_status(202)?;
        client.delete_blob(&name, &layer.digest)?.expect_status(202)?;
        client.get_manifest(&name, &manifest.digest)?.expect_status(404)?;
        client.get_blob(&name, &config.digest)?.expect_status(404)?;
        client.get_blob(&name, &layer.digest)?.expect_status(404)?;
        let tags = client.tags_list(&name, "")?;
        if tags.status == 200 {
            assert_eq!(string_array(&tags.json()?, "tags"), Vec::<String>::new());
        } else {
            tags.expect_error(404, "NAME_UNKNOWN")?;
        }
        Ok(())
    });
}

#[test]
fn deleting_a_referrer_removes_it_from_the_referrers_list() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t13", "delete-referrer");
        let (_, _, subject) = push_image(&client, &name, &["base"])?;
        let empty = Blob::empty_json();
        client.push_blob_monolithic(&name, &empty.bytes)?;
        let keep = ImageManifest::new(&empty, &[]).artifact_type("application/vnd.example.a").subject(&subject).build();
        let drop = ImageManifest::new(&empty, &[]).artifact_type("application/vnd.example.b").subject(&subject).build();
        client.push_manifest(&name, &keep.digest, &keep)?;
        client.push_manifest(&name, &drop.digest, &drop)?;
        client.delete_manifest(&name, &drop.digest)?.expect_status(202)?;
        let body = client.referrers(&name, &subject.digest, None)?.expect_status(200)?.json()?;
        let digests: Vec<&str> =
            body["manifests"].as_array().into_iter().flatten().filter_map(|d| d["digest"].as_str()).collect();
        assert_eq!(digests, [keep.digest.as_str()], "{body}");
        assert_eq!(body["mediaType"], json!("application/vnd.oci.image.index.v1+json"));
        Ok(())
    });
}
