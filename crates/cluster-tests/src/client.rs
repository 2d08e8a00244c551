//! A small blocking OCI distribution client over reqwest.
//!
//! Low-level calls return a [`Reply`]: the status, headers and body exactly as
//! received, so a test asserts what a real client would see. The `push_*`
//! helpers run whole flows and fail unless the registry answers as the spec says.

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::blocking::{Body, Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use crate::content::{sha256_digest, Manifest};

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    Anonymous,
    /// `Authorization: Basic`.
    Basic { user: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// The `Accept` header real pull clients send for manifests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// A blocking client for one registry.
#[derive(Clone)]
pub struct OciClient {
    http: Client,
    base: String,
    credentials: Credentials,
}

impl OciClient {
    /// A client for `base` (`http://host:port`, no trailing slash).
    pub fn new(base: &str, credentials: Credentials) -> Self {
        OciClient::with_timeout(base, credentials, Duration::from_secs(120))
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(base: &str, credentials: Credentials, timeout: Duration) -> Self {
        let http = Client::builder()
            .no_proxy()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .build()
            .expect("building the reqwest client");
        OciClient { http, base: base.trim_end_matches('/').to_owned(), credentials }
    }

    /// The same registry with other credentials.
    pub fn with_credentials(&self, credentials: Credentials) -> Self {
        OciClient { http: self.http.clone(), base: self.base.clone(), credentials }
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `host:port`.
    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The credentials requests carry.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// An absolute URL: `target` itself if absolute, else `base + target`
    /// (registries may answer with relative `Location`s).
    pub fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else if target.starts_with('/') {
            format!("{}{target}", self.base)
        } else {
            format!("{}/{target}", self.base)
        }
    }

    /// A request with this client's credentials attached.
    pub fn request(&self, method: Method, target: &str) -> RequestBuilder {
        let builder = self.http.request(method, self.url(target));
        match &self.credentials {
            Credentials::Anonymous => builder,
            Credentials::Basic { user, password } => builder.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => builder.bearer_auth(token),
        }
    }

    /// Sends `builder` and reads the whole reply.
    pub fn send(&self, builder: RequestBuilder) -> anyhow::Result<Reply> {
        let request = builder.build().context("building a request")?;
        let label = format!("{} {}", request.method(), request.url());
        let response = self.http.execute(request).with_context(|| format!("sending {label}"))?;
        Reply::read(label, response)
    }

    /// `method target` with no body.
    pub fn call(&self, method: Method, target: &str) -> anyhow::Result<Reply> {
        self.send(self.request(method, target))
    }

    /// `GET /v2/`.
    pub fn ping(&self) -> anyhow::Result<Reply> {
        self.call(Method::GET, "/v2/")
    }

    /// `HEAD /v2/<name>/blobs/<digest>`.
    pub fn head_blob(&self, name: &str, digest: &str) -> anyhow::Result<Reply> {
        self.call(Method::HEAD, &format!("/v2/{name}/blobs/{digest}"))
    }

    /// `GET /v2/<name>/blobs/<digest>`.
    pub fn get_blob(&self, name: &str, digest: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, &format!("/v2/{name}/blobs/{digest}"))
    }

    /// `GET /v2/<name>/blobs/<digest>` with `Range: <range>` (e.g. `bytes=0-9`).
    pub fn get_blob_range(&self, name: &str, digest: &str, range: &str) -> anyhow::Result<Reply> {
        self.send(self.request(Method::GET, &format!("/v2/{name}/blobs/{digest}")).header("Range", range))
    }

    /// `DELETE /v2/<name>/blobs/<digest>`.
    pub fn delete_blob(&self, name: &str, digest: &str) -> anyhow::Result<Reply> {
        self.call(Method::DELETE, &format!("/v2/{name}/blobs/{digest}"))
    }

    /// `POST /v2/<name>/blobs/uploads/` with no body: opens an upload session.
    pub fn start_upload(&self, name: &str) -> anyhow::Result<Reply> {
        self.send(self.request(Method::POST, &format!("/v2/{name}/blobs/uploads/")).header("Content-Length", "0"))
    }

    /// `POST /v2/<name>/blobs/uploads/?digest=<digest>` with the whole blob.
    pub fn post_monolithic(&self, name: &str, digest: &str, bytes: &[u8]) -> anyhow::Result<Reply> {
        self.send(
            self.request(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"))
                .header("Content-Type", "application/octet-stream")
                .body(bytes.to_vec()),
        )
    }

    /// `POST /v2/<name>/blobs/uploads/?mount=<digest>[&from=<from>]`.
    pub fn mount(&self, name: &str, digest: &str, from: Option<&str>) -> anyhow::Result<Reply> {
        let from = from.map(|repo| format!("&from={repo}")).unwrap_or_default();
        self.send(
            self.request(Method::POST, &format!("/v2/{name}/blobs/uploads/?mount={digest}{from}"))
                .header("Content-Length", "0"),
        )
    }

    /// `PATCH <location>` with `bytes`; `Content-Range: <start>-<end>` (no
    /// `bytes=`) when `range` is given, as chunked clients send it.
    pub fn patch_chunk(&self, location: &str, bytes: &[u8], range: Option<(u64, u64)>) -> anyhow::Result<Reply> {
        let mut builder = self
            .request(Method::PATCH, location)
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec());
        if let Some((start, end)) = range {
            builder = builder.header("Content-Range", format!("{start}-{end}"));
        }
        self.send(builder)
    }

    /// `PATCH <location>` streaming `bytes` with `Transfer-Encoding: chunked`
    /// and no `Content-Range`, as docker and skopeo do.
    pub fn patch_streamed(&self, location: &str, bytes: &[u8]) -> anyhow::Result<Reply> {
        let reader = std::io::Cursor::new(bytes.to_vec());
        self.send(
            self.request(Method::PATCH, location)
                .header("Content-Type", "application/octet-stream")
                .body(Body::new(reader)),
        )
    }

    /// `PUT <location>?digest=<digest>` with `body` (possibly empty) closing a session.
    pub fn put_upload(&self, location: &str, digest: &str, body: &[u8]) -> anyhow::Result<Reply> {
        let separator = if location.contains('?') { '&' } else { '?' };
        self.send(
            self.request(Method::PUT, &format!("{location}{separator}digest={digest}"))
                .header("Content-Type", "application/octet-stream")
                .body(body.to_vec()),
        )
    }

    /// `GET <location>`: the status of an upload session.
    pub fn upload_status(&self, location: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, location)
    }

    /// `DELETE <location>`: cancels an upload session.
    pub fn cancel_upload(&self, location: &str) -> anyhow::Result<Reply> {
        self.call(Method::DELETE, location)
    }

    /// Pushes `bytes` in one request (`POST ?digest=`), requiring 201.
    pub fn push_blob_monolithic(&self, name: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        self.post_monolithic(name, &digest, bytes)?.expect_status(201)?;
        Ok(digest)
    }

    /// Pushes `bytes` as POST (202 + Location) then `PUT ?digest=` with the body.
    pub fn push_blob_post_put(&self, name: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        let location = self.start_upload(name)?.expect_status(202)?.location()?;
        self.put_upload(&location, &digest, bytes)?.expect_status(201)?;
        Ok(digest)
    }

    /// Pushes `bytes` in `chunk_size` PATCHes with `Content-Range`, following
    /// the `Location` of every reply, then `PUT ?digest=` with no body.
    pub fn push_blob_chunked(&self, name: &str, bytes: &[u8], chunk_size: usize) -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        self.push_blob_chunked_as(name, bytes, chunk_size, &digest)?;
        Ok(digest)
    }

    /// [`OciClient::push_blob_chunked`] under a given digest (e.g. sha512).
    pub fn push_blob_chunked_as(
        &self,
        name: &str,
        bytes: &[u8],
        chunk_size: usize,
        digest: &str,
    ) -> anyhow::Result<Reply> {
        assert!(chunk_size > 0, "chunk size must be positive");
        let mut location = self.start_upload(name)?.expect_status(202)?.location()?;
        let mut offset = 0usize;
        for chunk in bytes.chunks(chunk_size) {
            let end = offset + chunk.len() - 1;
            let reply = self.patch_chunk(&location, chunk, Some((offset as u64, end as u64)))?.expect_status(202)?;
            let range = reply.header("Range").unwrap_or_default();
            if range != format!("0-{end}") {
                bail!("PATCH {location} answered Range {range:?}, expected \"0-{end}\"");
            }
            location = reply.location()?;
            offset = end + 1;
        }
        self.put_upload(&location, digest, &[])?.expect_status(201)
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `Content-Type: media_type`.
    pub fn put_manifest(&self, name: &str, reference: &str, media_type: &str, body: &[u8]) -> anyhow::Result<Reply> {
        self.send(
            self.request(Method::PUT, &format!("/v2/{name}/manifests/{reference}"))
                .header("Content-Type", media_type)
                .body(body.to_vec()),
        )
    }

    /// Pushes `manifest` under `reference` (a tag, or its digest), requiring 201.
    pub fn push_manifest(&self, name: &str, reference: &str, manifest: &Manifest) -> anyhow::Result<Reply> {
        self.put_manifest(name, reference, &manifest.media_type, &manifest.bytes)?.expect_status(201)
    }

    /// `GET /v2/<name>/manifests/<reference>` accepting every manifest type.
    pub fn get_manifest(&self, name: &str, reference: &str) -> anyhow::Result<Reply> {
        self.send(
            self.request(Method::GET, &format!("/v2/{name}/manifests/{reference}")).header("Accept", MANIFEST_ACCEPT),
        )
    }

    /// `HEAD /v2/<name>/manifests/<reference>` accepting every manifest type.
    pub fn head_manifest(&self, name: &str, reference: &str) -> anyhow::Result<Reply> {
        self.send(
            self.request(Method::HEAD, &format!("/v2/{name}/manifests/{reference}")).header("Accept", MANIFEST_ACCEPT),
        )
    }

    /// `DELETE /v2/<name>/manifests/<reference>`.
    pub fn delete_manifest(&self, name: &str, reference: &str) -> anyhow::Result<Reply> {
        self.call(Method::DELETE, &format!("/v2/{name}/manifests/{reference}"))
    }

    /// `GET /v2/<name>/tags/list<query>` (`query` empty or starting with `?`).
    pub fn tags_list(&self, name: &str, query: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, &format!("/v2/{name}/tags/list{query}"))
    }

    /// Every tag of `name`, following `Link` pagination with page size `n`.
    pub fn all_tags(&self, name: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let mut target = format!("/v2/{name}/tags/list?n={n}");
        let mut tags = Vec::new();
        for _page in 0..10_000 {
            let reply = self.call(Method::GET, &target)?.expect_status(200)?;
            tags.extend(string_array(&reply.json()?, "tags"));
            match reply.next_link()? {
                Some(next) => target = next,
                None => return Ok(tags),
            }
        }
        bail!("tags/list pagination of {name} never ended")
    }

    /// `GET /v2/_catalog<query>`.
    pub fn catalog(&self, query: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, &format!("/v2/_catalog{query}"))
    }

    /// `GET /v2/<name>/referrers/<digest>[?artifactType=<type>]`.
    pub fn referrers(&self, name: &str, digest: &str, artifact_type: Option<&str>) -> anyhow::Result<Reply> {
        let query = artifact_type.map(|t| format!("?artifactType={t}")).unwrap_or_default();
        self.call(Method::GET, &format!("/v2/{name}/referrers/{digest}{query}"))
    }

    /// `GET /v2/token<query>` (`query` starting with `?`).
    pub fn token(&self, query: &str) -> anyhow::Result<Reply> {
        self.call(Method::GET, &format!("/v2/token{query}"))
    }

    /// Fetches a bearer token for `scopes` and returns a client that uses it.
    pub fn bearer_client(&self, scopes: &[&str]) -> anyhow::Result<OciClient> {
        let query: String = scopes.iter().map(|scope| format!("&scope={scope}")).collect();
        let reply = self.token(&format!("?service=flotilla{query}"))?.expect_status(200)?;
        let token = reply.json()?["token"].as_str().context("token response without `token`")?.to_owned();
        Ok(self.with_credentials(Credentials::Bearer(token)))
    }
}

/// A response as the client saw it: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    /// `METHOD url` of the request, for messages.
    pub request: String,
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads `response` to the end.
    pub fn read(request: String, mut response: reqwest::blocking::Response) -> anyhow::Result<Reply> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        response.read_to_end(&mut body).with_context(|| format!("reading the body of {request}"))?;
        Ok(Reply { request, status, headers, body })
    }

    /// The first value of header `name`, if present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("{} body is not JSON: {}", self.request, self.text()))
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Location` header (required).
    pub fn location(&self) -> anyhow::Result<String> {
        match self.header("Location") {
            Some(location) if !location.is_empty() => Ok(location.to_owned()),
            _ => bail!("{} answered {} without a Location header", self.request, self.status),
        }
    }

    /// The codes of an OCI error body `{"errors":[{"code":..}]}`; empty if the
    /// body is not one.
    pub fn error_codes(&self) -> Vec<String> {
        let Ok(value) = serde_json::from_slice::<Value>(&self.body) else { return Vec::new() };
        value["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["code"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Fails unless the status is `status`; the message shows the body.
    pub fn expect_status(self, status: u16) -> anyhow::Result<Reply> {
        if self.status != status {
            bail!("{}: expected {status}, got {} with body {}", self.request, self.status, self.summary());
        }
        Ok(self)
    }

    /// Fails unless the status is one of `statuses`.
    pub fn expect_status_in(self, statuses: &[u16]) -> anyhow::Result<Reply> {
        if !statuses.contains(&self.status) {
            bail!("{}: expected one of {statuses:?}, got {} with body {}", self.request, self.status, self.summary());
        }
        Ok(self)
    }

    /// Fails unless the status is `status` and the body is an OCI error
    /// document whose first error has code `code` and a `message` string.
    pub fn expect_error(self, status: u16, code: &str) -> anyhow::Result<Reply> {
        let reply = self.expect_status(status)?;
        reply.expect_oci_error_body()?;
        let codes = reply.error_codes();
        if codes.first().map(String::as_str) != Some(code) {
            bail!("{}: expected error code {code}, got {codes:?} in {}", reply.request, reply.summary());
        }
        Ok(reply)
    }

    /// Fails unless the body is `{"errors":[{"code":<known>,"message":<string>,…}]}`.
    pub fn expect_oci_error_body(&self) -> anyhow::Result<()> {
        let value = self.json()?;
        let errors = value["errors"]
            .as_array()
            .with_context(|| format!("{}: no `errors` array in {}", self.request, self.summary()))?;
        if errors.is_empty() {
            bail!("{}: empty `errors` array", self.request);
        }
        for error in errors {
            let code = error["code"].as_str().unwrap_or_default();
            if !OCI_ERROR_CODES.contains(&code) {
                bail!("{}: `{code}` is not an OCI error code in {}", self.request, self.summary());
            }
            if !error["message"].is_string() {
                bail!("{}: error without a string `message` in {}", self.request, self.summary());
            }
        }
        Ok(())
    }

    /// The `rel="next"` target of a `Link: <url>; rel="next"` header, if any.
    pub fn next_link(&self) -> anyhow::Result<Option<String>> {
        let Some(link) = self.header("Link") else { return Ok(None) };
        parse_next_link(link).map(Some).with_context(|| format!("{}: malformed Link header {link:?}", self.request))
    }

    /// Status and (truncated) body for messages.
    pub fn summary(&self) -> String {
        let text = self.text();
        let shown: String = text.chars().take(600).collect();
        format!("[{} {}]", self.status, shown)
    }
}

/// The error codes of the distribution spec (v1.1) error table.
pub const OCI_ERROR_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// Parses `<target>; rel="next"` (the spec's exact form for pagination).
pub fn parse_next_link(link: &str) -> Option<String> {
    let (target, params) = link.split_once(';')?;
    let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
    let rel = params.trim().strip_prefix("rel=")?.trim_matches('"');
    (rel == "next").then(|| target.to_owned())
}

/// The strings of array field `key` of `value` (empty when absent or null).
pub fn string_array(value: &Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .map(|items| items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The scheme and parameters of a `WWW-Authenticate` challenge such as
/// `Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `Bearer` or `Basic`.
    pub scheme: String,
    /// Parameter names (lowercased) and unquoted values.
    pub params: std::collections::BTreeMap<String, String>,
}

impl Challenge {
    /// Parses one challenge; quoted values may contain commas.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let mut params = std::collections::BTreeMap::new();
        let mut rest = rest.trim();
        while !rest.is_empty() {
            let (key, after_key) = rest.split_once('=')?;
            let (value, after_value) = if let Some(quoted) = after_key.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                after_key.split_once(',').map_or((after_key, ""), |(v, r)| (v, r))
            };
            params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
            rest = after_value.trim_start_matches([',', ' ']);
        }
        Some(Challenge { scheme: scheme.to_owned(), params })
    }

    /// Parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}
