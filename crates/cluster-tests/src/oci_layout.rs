//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`),
//! written by hand for `skopeo copy oci:DIR:tag` and read back after it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

use crate::content::{Blob, Manifest};

/// The annotation naming a reference (tag) in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image layout directory.
#[derive(Debug)]
pub struct OciLayout {
    dir: PathBuf,
    refs: Vec<Value>,
}

impl OciLayout {
    /// Creates `dir` with its `oci-layout` file and an empty blob store.
    pub fn create(dir: &Path) -> anyhow::Result<OciLayout> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(OciLayout { dir: dir.to_owned(), refs: Vec::new() })
    }

    /// Writes a blob.
    pub fn add_blob(&mut self, blob: &Blob) -> anyhow::Result<()> {
        self.write_content(&blob.digest, &blob.bytes)
    }

    /// Writes a manifest or index as a blob.
    pub fn add_manifest(&mut self, manifest: &Manifest) -> anyhow::Result<()> {
        self.write_content(&manifest.digest, &manifest.bytes)
    }

    /// Names `manifest` `tag` in `index.json` (the manifest must be added too).
    pub fn tag(&mut self, manifest: &Manifest, tag: &str) {
        let mut descriptor = manifest.descriptor();
        descriptor["annotations"] = json!({ REF_NAME: tag });
        self.refs.push(descriptor);
    }

    /// Writes `index.json`.
    pub fn finish(&self) -> anyhow::Result<()> {
        let index = json!({"schemaVersion": 2, "mediaType": crate::content::media::OCI_INDEX, "manifests": self.refs});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
        Ok(())
    }

    fn write_content(&self, digest: &str, bytes: &[u8]) -> anyhow::Result<()> {
        std::fs::write(blob_path(&self.dir, digest)?, bytes).with_context(|| format!("writing {digest}"))
    }
}

/// The path of `digest`'s blob inside the layout at `dir`.
pub fn blob_path(dir: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let (algorithm, hex) = digest.split_once(':').with_context(|| format!("malformed digest {digest}"))?;
    Ok(dir.join("blobs").join(algorithm).join(hex))
}

/// The bytes of `digest`'s blob in the layout at `dir`, if present.
pub fn read_blob(dir: &Path, digest: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let path = blob_path(dir, digest)?;
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(std::fs::read(path)?))
}

/// The digest `index.json` of the layout at `dir` names `tag`.
pub fn tagged_digest(dir: &Path, tag: &str) -> anyhow::Result<String> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    let manifests = index["manifests"].as_array().context("index.json without manifests")?;
    manifests
        .iter()
        .find(|d| d["annotations"][REF_NAME] == json!(tag))
        .and_then(|d| d["digest"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("index.json names no {tag}: {index}"))
}
