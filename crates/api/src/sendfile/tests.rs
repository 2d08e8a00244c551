//! Real sockets, real files: what a client receives, and how it was sent.

use std::path::{Path, PathBuf};

use axum::extract::{ConnectInfo, Path as UrlPath};
use axum::http::{header, HeaderValue, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;

/// Content that differs at every offset a chunk could start at.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i >> 20) as u8).collect()
}

fn file_with(dir: &tempfile::TempDir, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join("blob");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Serves `GET /file/{start}/{end}` (`/chunked/…`: without a length, so
/// HTTP/1 frames it in chunks) from the file at `path`, as the blob handler
/// does: with `sendfile` where the connection allows.
async fn serve(path: &Path) -> (SocketAddr, Arc<AtomicU64>) {
    let sent = Arc::<AtomicU64>::default();
    let listener = SendfileListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap(), sent.clone());
    let addr = listener.local_addr().unwrap();
    let (sized, chunked) = (path.to_owned(), path.to_owned());
    let app = Router::new()
        .route(
            "/file/{start}/{end}",
            get(move |info: ConnectInfo<Sender>, version: Version, range: UrlPath<(u64, u64)>| {
                respond(sized.clone(), info.0, version, range.0, true)
            }),
        )
        .route(
            "/chunked/{start}/{end}",
            get(move |info: ConnectInfo<Sender>, version: Version, range: UrlPath<(u64, u64)>| {
                respond(chunked.clone(), info.0, version, range.0, false)
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<Sender>()).await.unwrap();
    });
    (addr, sent)
}

async fn respond(
    path: PathBuf,
    sender: Sender,
    version: Version,
    (start, end): (u64, u64),
    sized: bool,
) -> Response<Body> {
    let region = FileRegion { file: std::fs::File::open(path).unwrap(), start, end };
    let body = match Sender::for_request(Some(&sender), version) {
        Some(sender) => file_body(sender, region),
        None => Body::from_stream(region.into_stream()),
    };
    let mut response = Response::new(body);
    if sized {
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    }
    response
}

/// Reads one HTTP/1.1 response: its status and body (by `Content-Length`, or
/// chunked); the body is cut short, not an error, when the connection closes.
async fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
    }
    let mut body = Vec::new();
    match length {
        Some(length) => {
            let _ = reader.take(length as u64).read_to_end(&mut body).await;
        }
        None => loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).await.unwrap();
            let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await.unwrap();
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        },
    }
    (status, body)
}

async fn get_http1(addr: SocketAddr, paths: &[String]) -> Vec<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Every request in one write: pipelined on one connection.
    let requests: String = paths.iter().map(|path| format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")).collect();
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut responses = Vec::new();
    for _ in paths {
        responses.push(read_response(&mut reader).await);
    }
    responses
}

fn cachestat_works(path: &Path, len: usize) -> bool {
    is_cached(&std::fs::File::open(path).unwrap(), 0, len as u64).is_some()
}

#[tokio::test]
async fn a_cached_file_is_sent_whole_with_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(3 * CHUNK_BYTES + 12_345);
    let path = file_with(&dir, &bytes);
    let (addr, sent) = serve(&path).await;

    let responses = get_http1(addr, &[format!("/file/0/{}", bytes.len())]).await;

    assert_eq!(responses[0].0, 200);
    assert!(responses[0].1 == bytes, "the body differs from the file");
    let expected = if cachestat_works(&path, bytes.len()) { bytes.len() as u64 } else { 0 };
    assert_eq!(sent.load(Ordering::Relaxed), expected, "bytes sent with sendfile");
}

#[tokio::test]
async fn pipelined_ranges_and_chunked_bodies_on_one_connection_come_out_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(2 * CHUNK_BYTES + 777);
    let path = file_with(&dir, &bytes);
    let (addr, sent) = serve(&path).await;
    let ranges = [(0, 1000), (5, CHUNK_BYTES + 3), (CHUNK_BYTES, 2 * CHUNK_BYTES + 1), (17, 18)];
    let mut paths: Vec<String> = ranges.iter().map(|(start, end)| format!("/file/{start}/{end}")).collect();
    paths.push(format!("/chunked/3/{}", bytes.len()));

    let responses = get_http1(addr, &paths).await;

    for ((start, end), (status, body)) in ranges.iter().zip(&responses) {
        assert_eq!(*status, 200);
        assert!(body[..] == bytes[*start..*end], "range {start}..{end} differs");
    }
    assert!(responses[4].1[..] == bytes[3..], "the chunked body differs");
    if cachestat_works(&path, bytes.len()) {
        let total: usize = ranges.iter().map(|(start, end)| end - start).sum::<usize>() + bytes.len() - 3;
        assert_eq!(sent.load(Ordering::Relaxed), total as u64);
    }
}

#[tokio::test]
async fn pages_not_in_the_page_cache_are_read_on_the_blocking_pool() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(2 * CHUNK_BYTES + 5);
    let path = file_with(&dir, &bytes);
    let file = std::fs::File::open(&path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: fadvise on an open descriptor; DONTNEED drops the file's clean pages.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if is_cached(&file, 0, CHUNK_BYTES as u64) != Some(false) {
        eprintln!("skipped: cannot evict the test file's pages here");
        return;
    }
    let (addr, sent) = serve(&path).await;

    let responses = get_http1(addr, &[format!("/file/0/{}", bytes.len())]).await;

    assert!(responses[0].1 == bytes, "the body differs from the file");
    assert!(
        sent.load(Ordering::Relaxed) <= (bytes.len() - CHUNK_BYTES) as u64,
        "the cold first chunk was sent with sendfile"
    );
}

#[tokio::test]
async fn http2_responses_carry_real_bytes_without_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(CHUNK_BYTES + 99);
    let path = file_with(&dir, &bytes);
    let (addr, sent) = serve(&path).await;
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut client, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(connection);

    let uri = format!("http://{addr}/file/0/{}", bytes.len());
    let request = http::Request::get(uri).body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let response = client.send_request(request).await.unwrap();

    assert_eq!(response.version(), Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body == bytes, "the HTTP/2 body differs from the file");
    assert_eq!(sent.load(Ordering::Relaxed), 0);
}

/// A file that ends before its response's `Content-Length` (it shrank after
/// the length went out) fails the body, and hyper cuts the connection. What
/// that guarantees is that the client cannot mistake the short body for a
/// whole one; it does not guarantee that the client gets every byte the file
/// holds: hyper returns the body's error as soon as it polls it, without
/// first flushing the chunks it has queued but not yet written to the socket.
/// Here the 100 bytes after the first chunk are read from the disk and
/// queued, and the read that finds the end of the file often completes before
/// hyper's next flush, so they never reach the socket (every byte that does
/// reach it arrives, then a clean FIN).
#[tokio::test]
async fn a_file_shorter_than_its_response_cuts_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(CHUNK_BYTES + 100);
    let path = file_with(&dir, &bytes);
    let (addr, _) = serve(&path).await;
    let content_length = 2 * CHUNK_BYTES;

    let responses = get_http1(addr, &[format!("/file/0/{content_length}")]).await;

    let (status, body) = &responses[0];
    assert_eq!(*status, 200);
    // Only the file's bytes, in order: never the placeholder's zeros. How
    // many of them is up to what hyper flushed before the cut (see above).
    assert!(bytes.starts_with(body), "the client got bytes that are not a prefix of the file");
    // Fewer than announced: the connection ended (read_response reads to
    // Content-Length or the end of the connection) before the body was whole.
    assert!(body.len() < content_length, "a cut response must not look complete");
}

/// A connected pair: the server side as a [`SendfileStream`] with an empty
/// queue, and the client side.
async fn stream_pair() -> (SendfileStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let sender = Sender { queue: Arc::default(), sent: Arc::default() };
    (SendfileStream { inner: server, sender }, client)
}

#[tokio::test]
async fn a_placeholder_with_no_file_queued_is_an_error_not_zeros() {
    let (mut server, _client) = stream_pair().await;
    let error = server.write_all(&PLACEHOLDER[..10]).await.unwrap_err();
    assert!(error.to_string().contains("no file queued"), "{error}");
}

/// Writes `placeholder` to a [`stream_pair`] server with 10 bytes at
/// `offset` of a 100-byte file queued; the write's error.
async fn write_with_ten_bytes_queued_at(offset: u64, placeholder: &[u8]) -> io::Error {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(&dir, &content(100));
    let (mut server, _client) = stream_pair().await;
    let file = Arc::new(std::fs::File::open(path).unwrap());
    server.sender.queue.lock().push_back(Segment { file, offset, len: 10, sent: 0 });
    server.write_all(placeholder).await.unwrap_err()
}

#[tokio::test]
async fn a_placeholder_out_of_step_with_its_file_is_an_error() {
    let error = write_with_ten_bytes_queued_at(0, &PLACEHOLDER[5..10]).await;

    assert!(error.to_string().contains("out of step"), "{error}");
}

#[tokio::test]
async fn a_queued_range_past_the_end_of_its_file_is_unexpected_eof() {
    let error = write_with_ten_bytes_queued_at(100, &PLACEHOLDER[..10]).await;

    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn only_http1_requests_get_a_sender() {
    let sender = Sender { queue: Arc::default(), sent: Arc::default() };
    for (version, expected) in [
        (Version::HTTP_09, false),
        (Version::HTTP_10, true),
        (Version::HTTP_11, true),
        (Version::HTTP_2, false),
        (Version::HTTP_3, false),
    ] {
        assert_eq!(Sender::for_request(Some(&sender), version).is_some(), expected, "{version:?}");
    }
    assert!(Sender::for_request(None, Version::HTTP_11).is_none());
}

#[test]
fn placeholders_are_recognised_by_address_only() {
    assert_eq!(placeholder_offset(&PLACEHOLDER[..]), Some(0));
    assert_eq!(placeholder_offset(&PLACEHOLDER[7..20]), Some(7));
    assert_eq!(placeholder_offset(&PLACEHOLDER[7..7]), None);
    let zeros = vec![0u8; 64];
    assert_eq!(placeholder_offset(&zeros), None);
}
