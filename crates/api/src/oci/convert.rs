//! Conversions from service errors to OCI errors, and body helpers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use flotilla_model::{blobs, oci, ErrorKind, StoreError};
use flotilla_raft::{MetaError, WriteError};
use flotilla_storage::blob_store::{BlobError, ByteStream};

use super::error::{OciError, OciErrorCode, OciResult};
use crate::error::{ServiceError, RETRY_AFTER_SECONDS};

impl From<ServiceError> for OciError {
    fn from(error: ServiceError) -> Self {
        let code = match error.code.as_str() {
            oci::code::BLOB_UNKNOWN => OciErrorCode::BlobUnknown,
            oci::code::MANIFEST_BLOB_UNKNOWN => OciErrorCode::ManifestBlobUnknown,
            oci::code::MANIFEST_UNKNOWN => OciErrorCode::ManifestUnknown,
            oci::code::NAME_UNKNOWN => OciErrorCode::NameUnknown,
            blobs::code::SIZE_CONFLICT => OciErrorCode::SizeInvalid,
            // The client uploads again when its session is refused.
            blobs::code::BLOB_COLLECTED => OciErrorCode::BlobUploadInvalid,
            _ => match error.kind {
                ErrorKind::Unavailable | ErrorKind::Timeout => OciErrorCode::Unavailable,
                ErrorKind::Forbidden => OciErrorCode::Denied,
                ErrorKind::Internal => return OciError::internal(error.message),
                _ => OciErrorCode::Unsupported,
            },
        };
        let mut oci_error = OciError::new(code, error.message.clone());
        if let Some(digest) = error.detail.get(flotilla_model::rejection::DETAIL_DIGEST) {
            oci_error = oci_error.with_detail(serde_json::json!({ "digest": digest }));
        }
        match error.retry_after() {
            Some(seconds) => oci_error.with_header(header::RETRY_AFTER, HeaderValue::from_static(seconds)),
            None => oci_error,
        }
    }
}

impl From<WriteError> for OciError {
    fn from(error: WriteError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<MetaError> for OciError {
    fn from(error: MetaError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<StoreError> for OciError {
    fn from(error: StoreError) -> Self {
        OciError::internal(error)
    }
}

/// Maps a blob store error; `not_found` says which code absence means here.
pub fn blob_error(error: BlobError, not_found: OciErrorCode) -> OciError {
    match error {
        BlobError::NotFound => OciError::new(not_found, "unknown to this registry"),
        BlobError::DigestMismatch { expected, actual } => {
            OciError::new(OciErrorCode::DigestInvalid, format!("content hashes to {actual}, not {expected}"))
        }
        BlobError::SizeMismatch { expected, actual } => {
            OciError::new(OciErrorCode::SizeInvalid, format!("size is {actual}, not {expected}"))
        }
        BlobError::TooLarge { limit } => {
            OciError::new(OciErrorCode::SizeInvalid, format!("larger than the limit of {limit} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        BlobError::RangeNotSatisfiable { size } => OciError::new(OciErrorCode::RangeInvalid, "range not satisfiable")
            .with_header(header::CONTENT_RANGE, header_value(&format!("bytes */{size}"))),
        BlobError::UploadOffsetMismatch { current } => {
            OciError::new(OciErrorCode::RangeInvalid, format!("chunk must start at offset {current}"))
                .with_header(header::RANGE, header_value(&upload_range(current)))
        }
        BlobError::Unavailable(message) => OciError::new(OciErrorCode::Unavailable, message)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)),
        BlobError::Io(error) if error.kind() == std::io::ErrorKind::StorageFull => {
            OciError::new(OciErrorCode::Unavailable, "a disk of the registry is full; free space or add a node")
                .with_status(StatusCode::INSUFFICIENT_STORAGE)
        }
        other => OciError::internal(other),
    }
}

/// The `Range` header value of an upload holding `offset` bytes (`0-<end>`, no `bytes=`).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// A header value from text we built ourselves (always visible ASCII).
pub fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The request body as a byte stream for the blob store.
pub fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Reads a whole body of at most `limit` bytes; larger → 413 `SIZE_INVALID`.
pub async fn read_limited(body: Body, limit: u64) -> OciResult<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| OciError::new(OciErrorCode::BlobUploadInvalid, error.to_string()))?;
        if (buffer.len() + chunk.len()) as u64 > limit {
            // The rest of the body is left unread, so the connection cannot be reused:
            // say so, or a pooling client may send its next request into a closing socket.
            return Err(OciError::new(OciErrorCode::SizeInvalid, format!("larger than the limit of {limit} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                .with_header(header::CONNECTION, HeaderValue::from_static("close")));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Wraps a stream so that it fails with `TooLarge` past `limit` bytes.
pub fn limit_stream(stream: ByteStream, limit: u64) -> ByteStream {
    let mut seen: u64 = 0;
    Box::pin(stream.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(std::io::Error::other(format!("body larger than {limit} bytes")));
        }
        Ok(chunk)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_and_other_io_errors_stay_internal() {
        let full = blob_error(BlobError::Io(std::io::ErrorKind::StorageFull.into()), OciErrorCode::BlobUnknown);
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.message.contains("full"), "{}", full.message);
        let other = blob_error(BlobError::Io(std::io::Error::other("boom")), OciErrorCode::BlobUnknown);
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
