//! Serving stored files to HTTP/1 clients with `sendfile(2)`.
//!
//! Read through a buffer, every byte of a blob is copied twice in the
//! server (page cache → buffer → socket); on a machine whose clients hash
//! what they pull those copies compete with the clients for the same cores.
//! `sendfile` hands the page-cache pages to the socket instead.
//!
//! hyper writes an HTTP/1 response body by passing each chunk, unchanged, to
//! its connection's `poll_write_vectored` (it queues chunks rather than
//! copying them when the connection writes vectored, as this one does). So a
//! [`file_body`] yields, for each chunk of the file whose pages are in the
//! page cache, a *placeholder*: a slice of `PLACEHOLDER`, a static buffer
//! nothing else uses, and queues on its connection which file bytes the
//! placeholder stands for. The connection, a [`SendfileStream`], recognises
//! placeholder slices by their address and sends the queued file bytes in
//! their place; every other write goes to the socket as it is. A chunk whose
//! pages are not cached is read on the blocking pool and yielded as real
//! bytes, so a cold read never stalls an async worker.
//!
//! The placeholders are only ever yielded on connections that will send the
//! file in their place: the handler must check [`Sender::for_request`]
//! (HTTP/1, accepted by a [`SendfileListener`]). Should a placeholder ever
//! reach the socket out of step with the queue, the connection fails with an
//! error rather than send bytes that are not the file's.

use std::collections::VecDeque;
use std::future::Future as _;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use bytes::Bytes;
use futures::Stream;
use http::Version;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use flotilla_storage::file_stream::{is_cached, read_chunk, send_to_socket, FileRegion, FILE_CHUNK_BYTES};

/// Bytes per placeholder chunk, and the size of the placeholder buffer.
const CHUNK_BYTES: usize = FILE_CHUNK_BYTES;

/// The placeholder buffer. Its bytes are never sent: a slice of it in a write
/// means "the next queued file bytes". Zeroed and never written, so it takes
/// no memory.
static PLACEHOLDER: [u8; CHUNK_BYTES] = [0; CHUNK_BYTES];

/// Where `slice` lies in [`PLACEHOLDER`], if it lies there.
fn placeholder_offset(slice: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let start = slice.as_ptr() as usize;
    (!slice.is_empty() && start >= base && start + slice.len() <= base + CHUNK_BYTES).then(|| start - base)
}

/// Accepts TCP connections as [`SendfileStream`]s, with `TCP_NODELAY` set
/// (without it a small response waits on Nagle plus the peer's delayed ACK,
/// ~40 ms).
pub struct SendfileListener {
    inner: TcpListener,
    sent: Arc<AtomicU64>,
}

impl SendfileListener {
    /// Serves `inner`'s connections, adding every byte they send with
    /// `sendfile` to `sent`.
    pub fn new(inner: TcpListener, sent: Arc<AtomicU64>) -> SendfileListener {
        SendfileListener { inner, sent }
    }
}

impl Listener for SendfileListener {
    type Io = SendfileStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SendfileStream, SocketAddr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let sender = Sender { queue: Arc::default(), sent: self.sent.clone() };
        (SendfileStream { inner: stream, sender }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// File bytes queued on a connection for the placeholder that stands for them.
struct Segment {
    file: Arc<std::fs::File>,
    offset: u64,
    len: usize,
    sent: usize,
}

/// One connection's handle for file bodies; handlers get it as
/// `ConnectInfo<Sender>` (serve with `into_make_service_with_connect_info`).
#[derive(Clone)]
pub struct Sender {
    queue: Arc<Mutex<VecDeque<Segment>>>,
    sent: Arc<AtomicU64>,
}

impl Sender {
    /// The sender to use for a response to a request of `version` arriving on
    /// a connection with `sender`: only HTTP/1 writes body chunks unchanged to
    /// the connection (HTTP/2 frames them into buffers of its own).
    pub fn for_request(sender: Option<&Sender>, version: Version) -> Option<Sender> {
        let http1 = matches!(version, Version::HTTP_10 | Version::HTTP_11);
        sender.filter(|_| http1).cloned()
    }
}

impl Connected<IncomingStream<'_, SendfileListener>> for Sender {
    fn connect_info(stream: IncomingStream<'_, SendfileListener>) -> Sender {
        stream.io().sender.clone()
    }
}

/// A response body of `region`, sent with `sendfile` where its pages are cached.
pub fn file_body(sender: Sender, region: FileRegion) -> Body {
    Body::from_stream(FileChunks {
        sender,
        file: Arc::new(region.file),
        position: region.start,
        end: region.end,
        cold_read: None,
    })
}

/// The chunks of a [`file_body`]: placeholders for cached pages, bytes read
/// on the blocking pool for the rest.
struct FileChunks {
    sender: Sender,
    file: Arc<std::fs::File>,
    position: u64,
    end: u64,
    cold_read: Option<JoinHandle<io::Result<Bytes>>>,
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let this = self.get_mut();
        if let Some(read) = this.cold_read.as_mut() {
            let chunk = ready!(Pin::new(read).poll(cx)).map_err(io::Error::other).and_then(|chunk| chunk);
            this.cold_read = None;
            return Poll::Ready(Some(this.advance(chunk)));
        }
        if this.position >= this.end {
            return Poll::Ready(None);
        }
        let len = usize::try_from(this.end - this.position).unwrap_or(usize::MAX).min(CHUNK_BYTES);
        if is_cached(&this.file, this.position, len as u64) == Some(true) {
            let segment = Segment { file: this.file.clone(), offset: this.position, len, sent: 0 };
            this.sender.queue.lock().push_back(segment);
            this.position += len as u64;
            return Poll::Ready(Some(Ok(Bytes::from_static(&PLACEHOLDER[..len]))));
        }
        let (file, position) = (this.file.clone(), this.position);
        this.cold_read = Some(tokio::task::spawn_blocking(move || read_chunk(&file, position, len)));
        Pin::new(this).poll_next(cx)
    }
}

impl FileChunks {
    /// Moves past a chunk read from the disk; a file that ended early is an error.
    fn advance(&mut self, chunk: io::Result<Bytes>) -> io::Result<Bytes> {
        let chunk = chunk?;
        if chunk.is_empty() {
            self.position = self.end;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stored file ended early"));
        }
        self.position += chunk.len() as u64;
        Ok(chunk)
    }
}

/// A TCP connection that sends file bytes in place of the placeholders
/// written to it; everything else passes through unchanged.
pub struct SendfileStream {
    inner: TcpStream,
    sender: Sender,
}

impl SendfileStream {
    /// Sends file bytes for `slice`, a placeholder at `offset` in the buffer:
    /// the front queued segment, which must have sent exactly `offset` bytes.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, slice: &[u8], offset: usize) -> Poll<io::Result<usize>> {
        let mut queue = self.sender.queue.lock();
        let Some(segment) = queue.front_mut() else {
            return Poll::Ready(Err(io::Error::other("a file placeholder was written with no file queued")));
        };
        if segment.sent != offset || offset + slice.len() > segment.len {
            return Poll::Ready(Err(io::Error::other("a file placeholder was written out of step with its file")));
        }
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let at = segment.offset + segment.sent as u64;
            let attempt = self
                .inner
                .try_io(Interest::WRITABLE, || send_to_socket(self.inner.as_fd(), &segment.file, at, slice.len()));
            match attempt {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stored file ended early",
                    )))
                }
                Ok(sent) => {
                    segment.sent += sent;
                    if segment.sent == segment.len {
                        queue.pop_front();
                    }
                    self.sender.sent.fetch_add(sent as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(sent));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match placeholder_offset(buf) {
            Some(offset) => this.poll_send_file(cx, buf, offset),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    /// Writes the slices before the first placeholder as one `writev`, or,
    /// when the first slice is a placeholder, sends its file bytes.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let plain = bufs.iter().take_while(|buf| placeholder_offset(buf).is_none()).count();
        if plain > 0 || bufs.is_empty() {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..plain]);
        }
        let first: &[u8] = &bufs[0];
        let offset = placeholder_offset(first).expect("the first slice is a placeholder");
        this.poll_send_file(cx, first, offset)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
