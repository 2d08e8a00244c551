//! The one OCI client both registries are driven with: reqwest over plain
//! HTTP/1.1 on loopback, Basic credentials sent preemptively on every request.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, Response, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::content::{sha256_digest, BlobSpec, ContentCheck, MIB};

/// Media type of the manifests the benchmark pushes and asks for.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// How long establishing a loopback connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a request that moves no more than a few MiB.
pub const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Slowest transfer rate a large request is allowed (sets its deadline).
const SLOWEST_TRANSFER_MIB_PER_SEC: u64 = 5;
/// Most characters of an error response body quoted in an error.
const ERROR_BODY_CHARS: usize = 300;

/// How a pulled blob is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullCheck {
    /// Every byte hashed with SHA-256 and the digest compared, as docker,
    /// skopeo and oras do.
    Digest,
    /// Every byte compared with the generated content ([`ContentCheck`]):
    /// as exact, at a fraction of the client's CPU.
    Content,
}

/// Chunks of a pulled blob received but not yet checked, at most.
const CHECK_QUEUE_CHUNKS: usize = 64;

/// Checks the chunks of `blob` from `queue` as `check` says, until the queue closes.
fn check_chunks(
    blob: &BlobSpec,
    check: PullCheck,
    mut queue: tokio::sync::mpsc::Receiver<Bytes>,
) -> anyhow::Result<()> {
    match check {
        PullCheck::Digest => {
            let mut hasher = Sha256::new();
            while let Some(chunk) = queue.blocking_recv() {
                hasher.update(&chunk);
            }
            let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
            ensure!(digest == blob.digest, "content digest {digest} instead of {}", blob.digest);
        }
        PullCheck::Content => {
            let mut content = ContentCheck::new(blob);
            let mut checked = 0u64;
            while let Some(chunk) = queue.blocking_recv() {
                ensure!(content.matches(&chunk), "a byte at or after offset {checked} differs from the content");
                checked += chunk.len() as u64;
            }
            ensure!(content.is_complete(), "the content ends after {checked} bytes");
        }
    }
    Ok(())
}

/// A registry at `base` (`http://127.0.0.1:<port>`).
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
}

/// A prepared request of the small-operation phases.
#[derive(Debug, Clone)]
pub struct Probe {
    pub method: Method,
    pub url: String,
    pub accept: Option<&'static str>,
}

impl RegistryClient {
    /// A client with a connection pool of `pool` idle connections.
    pub fn new(base: &str, user: &str, password: &str, pool: usize) -> anyhow::Result<Self> {
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Basic {credentials}"))?);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(RegistryClient { http, base: base.trim_end_matches('/').to_owned() })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Streams `blob` in the way skopeo does: `POST uploads/`, one `PATCH`
    /// with the whole body (chunked, no `Content-Range`), `PUT ?digest=`.
    pub async fn push_blob(&self, repo: &str, blob: &BlobSpec) -> anyhow::Result<()> {
        let location = self.start_upload(repo).await?;
        let body = Body::wrap_stream(futures::stream::iter(blob.chunks().map(Ok::<_, std::io::Error>)));
        let response = self
            .http
            .patch(&location)
            .header(CONTENT_TYPE, "application/octet-stream")
            .timeout(transfer_timeout(blob.size))
            .body(body)
            .send()
            .await
            .with_context(|| format!("PATCH {location}"))?;
        let response = expect_status(response, StatusCode::ACCEPTED, "PATCH upload").await?;
        let location = self.location(&response)?;
        self.finish_upload(&location, &blob.digest, Bytes::new()).await
    }

    /// Uploads a small in-memory blob (`POST` then a monolithic `PUT ?digest=`)
    /// and returns its digest.
    pub async fn push_bytes(&self, repo: &str, bytes: Bytes) -> anyhow::Result<String> {
        let digest = sha256_digest(&bytes);
        let location = self.start_upload(repo).await?;
        self.finish_upload(&location, &digest, bytes).await?;
        Ok(digest)
    }

    /// Uploads a small in-memory blob in one request (`POST ?digest=`) and returns its digest.
    pub async fn post_bytes(&self, repo: &str, bytes: Bytes) -> anyhow::Result<String> {
        let digest = sha256_digest(&bytes);
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"));
        let response = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .timeout(SMALL_REQUEST_TIMEOUT)
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        expect_status(response, StatusCode::CREATED, "POST monolithic upload").await?;
        Ok(digest)
    }

    /// A JSON request to an admin API (`/_cluster/…`); the JSON answer, which must be `expected`.
    pub async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        expected: StatusCode,
    ) -> anyhow::Result<serde_json::Value> {
        let url = self.url(path);
        let mut request = self.http.request(method.clone(), &url).timeout(SMALL_REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let response = expect_status(response, expected, path).await?;
        Ok(response.json().await?)
    }

    /// A JSON request to an admin API whose answer has no JSON body; fails unless it answers `expected`.
    pub async fn admin_send(
        &self,
        method: Method,
        path: &str,
        body: serde_json::Value,
        expected: StatusCode,
    ) -> anyhow::Result<()> {
        let url = self.url(path);
        let request = self.http.request(method.clone(), &url).timeout(SMALL_REQUEST_TIMEOUT).json(&body);
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        expect_status(response, expected, path).await?;
        Ok(())
    }

    /// The value of an unlabelled counter or gauge in the node's `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let url = self.url("/metrics");
        let text = self.http.get(&url).timeout(SMALL_REQUEST_TIMEOUT).send().await?.text().await?;
        let line =
            text.lines().find(|line| line.starts_with(&format!("{name} "))).with_context(|| format!("no {name}"))?;
        Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
    }

    /// Streams `blob` back and checks it as `check` says.
    pub async fn pull_blob(&self, repo: &str, blob: &BlobSpec, check: PullCheck) -> anyhow::Result<()> {
        let url = self.url(&format!("/v2/{repo}/blobs/{}", blob.digest));
        let response = self
            .http
            .get(&url)
            .timeout(transfer_timeout(blob.size))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let response = expect_status(response, StatusCode::OK, "GET blob").await?;
        let mut body = response.bytes_stream();
        // Checked on a thread of its own while the next bytes arrive, as a
        // client that hashes in a separate goroutine or thread does.
        let (chunks, queue) = tokio::sync::mpsc::channel(CHECK_QUEUE_CHUNKS);
        let checked = blob.clone();
        let checker = tokio::task::spawn_blocking(move || check_chunks(&checked, check, queue));
        let mut received = 0u64;
        let mut checker_gave_up = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("reading {url}"))?;
            received += chunk.len() as u64;
            ensure!(received <= blob.size, "{url}: more than the {} bytes pushed", blob.size);
            if chunks.send(chunk).await.is_err() {
                checker_gave_up = true; // Its error says why.
                break;
            }
        }
        drop(chunks);
        let verdict = checker.await?;
        ensure!(checker_gave_up || received == blob.size, "{url}: {received} bytes instead of {}", blob.size);
        verdict.with_context(|| format!("checking {url}"))
    }

    /// `PUT` an OCI image manifest under `tag`.
    pub async fn put_manifest(&self, repo: &str, tag: &str, manifest: Bytes) -> anyhow::Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"));
        let response = self
            .http
            .put(&url)
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .timeout(SMALL_REQUEST_TIMEOUT)
            .body(manifest)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        expect_status(response, StatusCode::CREATED, "PUT manifest").await?;
        Ok(())
    }

    /// Sends `probe`, expects 200 and reads the whole body; returns its length.
    pub async fn send_probe(&self, probe: &Probe) -> anyhow::Result<usize> {
        let mut request = self.http.request(probe.method.clone(), &probe.url).timeout(SMALL_REQUEST_TIMEOUT);
        if let Some(accept) = probe.accept {
            request = request.header(ACCEPT, accept);
        }
        let response = request.send().await?;
        let response = expect_status(response, StatusCode::OK, probe.method.as_str()).await?;
        Ok(response.bytes().await?.len())
    }

    async fn start_upload(&self, repo: &str) -> anyhow::Result<String> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let response = self
            .http
            .post(&url)
            .header(CONTENT_LENGTH, 0)
            .timeout(SMALL_REQUEST_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let response = expect_status(response, StatusCode::ACCEPTED, "POST upload").await?;
        self.location(&response)
    }

    async fn finish_upload(&self, location: &str, digest: &str, body: Bytes) -> anyhow::Result<()> {
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let response = self
            .http
            .put(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .timeout(transfer_timeout(body.len() as u64))
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        let response = expect_status(response, StatusCode::CREATED, "PUT upload").await?;
        if let Some(echoed) = response.headers().get("docker-content-digest") {
            ensure!(echoed.as_bytes() == digest.as_bytes(), "PUT upload: registry computed {echoed:?}, sent {digest}");
        }
        Ok(())
    }

    /// The absolute form of the response's `Location` (which may be relative).
    fn location(&self, response: &Response) -> anyhow::Result<String> {
        let location = response
            .headers()
            .get(LOCATION)
            .context("upload response without Location")?
            .to_str()
            .context("non-ASCII Location")?;
        if location.starts_with("http://") || location.starts_with("https://") {
            Ok(location.to_owned())
        } else {
            Ok(self.url(location))
        }
    }
}

/// Deadline of a request moving `bytes`: the small-request deadline plus the
/// time at [`SLOWEST_TRANSFER_MIB_PER_SEC`].
fn transfer_timeout(bytes: u64) -> Duration {
    SMALL_REQUEST_TIMEOUT + Duration::from_secs(bytes / (SLOWEST_TRANSFER_MIB_PER_SEC * MIB))
}

/// `response` if its status is `expected`, else an error quoting its body.
async fn expect_status(response: Response, expected: StatusCode, what: &str) -> anyhow::Result<Response> {
    let status = response.status();
    if status == expected {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(ERROR_BODY_CHARS).collect();
    bail!("{what}: expected {expected}, got {status}: {body}")
}
