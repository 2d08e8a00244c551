//! `ReadIndexLink` against real tonic servers on 127.0.0.1: one stream for
//! many rounds, a fresh stream after a round given up half-way (never a late
//! answer taken for the next question), and calls for a peer without the
//! stream method.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use flotilla_raft::network::client::ReadIndexLink;
use flotilla_raft::network::proto::raft_service_server::{RaftService, RaftServiceServer};
use flotilla_raft::network::proto::{Empty, Payload};
use flotilla_raft::network::ForwardError;

/// A leader stand-in: answer `n` of stream `s` is the index `100 * s + n`;
/// the first answer of the first stream comes only after `first_delay`.
/// Without `streams`, it is a peer of a version before the stream method,
/// answering every call with index 7. `opened` counts stream requests,
/// `calls` unary ones.
struct FakeLeader {
    streams: bool,
    first_delay: Duration,
    opened: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
}

fn answer(index: u64) -> Payload {
    Payload { data: serde_json::to_vec(&Ok::<_, ForwardError>(Some(index))).unwrap() }
}

#[tonic::async_trait]
impl RaftService for FakeLeader {
    async fn append_entries(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn vote(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn install_snapshot(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn forward(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(Status::unimplemented("test"))
    }

    async fn read_index(&self, _: Request<Empty>) -> Result<Response<Payload>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(answer(7)))
    }

    type ReadIndexStreamStream = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

    async fn read_index_stream(
        &self,
        request: Request<Streaming<Empty>>,
    ) -> Result<Response<Self::ReadIndexStreamStream>, Status> {
        let stream = self.opened.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.streams {
            return Err(Status::unimplemented("an older version"));
        }
        let delay = if stream == 1 { self.first_delay } else { Duration::ZERO };
        let answers = request.into_inner().enumerate().then(move |(question, asked)| async move {
            asked?;
            if question == 0 {
                tokio::time::sleep(delay).await;
            }
            Ok(answer(100 * stream + question as u64 + 1))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn campaign(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("test"))
    }
}

/// Serves `leader` on a free port until the test's runtime ends.
async fn serve(leader: FakeLeader) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder().add_service(RaftServiceServer::new(leader));
    tokio::spawn(server.serve_with_incoming(TcpListenerStream::new(listener)));
    addr
}

fn fake(streams: bool, first_delay: Duration) -> (FakeLeader, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (opened, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    (FakeLeader { streams, first_delay, opened: opened.clone(), calls: calls.clone() }, opened, calls)
}

#[tokio::test]
async fn many_rounds_share_one_stream() {
    let (leader, opened, calls) = fake(true, Duration::ZERO);
    let addr = serve(leader).await.to_string();
    let mut link = ReadIndexLink::default();
    for expected in [101, 102, 103, 104] {
        assert_eq!(link.ask(&addr).await, Ok(Some(expected)));
    }
    assert_eq!((opened.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (1, 0));
}

#[tokio::test]
async fn a_round_given_up_half_way_never_leaves_its_answer_to_the_next() {
    let (leader, opened, _) = fake(true, Duration::from_millis(300));
    let addr = serve(leader).await.to_string();
    let mut link = ReadIndexLink::default();
    let given_up = tokio::time::timeout(Duration::from_millis(50), link.ask(&addr)).await;
    assert!(given_up.is_err(), "the first answer is held back 300 ms");
    // The late answer 101 would arrive on the first stream; the next round
    // asks on a new one.
    assert_eq!(link.ask(&addr).await, Ok(Some(201)));
    assert_eq!(link.ask(&addr).await, Ok(Some(202)));
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_peer_without_the_stream_is_asked_with_calls() {
    let (leader, opened, calls) = fake(false, Duration::ZERO);
    let addr = serve(leader).await.to_string();
    let mut link = ReadIndexLink::default();
    assert_eq!(link.ask(&addr).await, Ok(Some(7)));
    assert_eq!(link.ask(&addr).await, Ok(Some(7)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(opened.load(Ordering::SeqCst), 1, "the stream is tried once, then the refusal is remembered");
}

#[tokio::test]
async fn an_unreachable_peer_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut link = ReadIndexLink::default();
    assert!(matches!(link.ask(&addr).await, Err(ForwardError::Unavailable(_))));
}
