//! SWIM failure detection between cluster nodes, over authenticated UDP.
//!
//! This module answers one question: *which cluster members are alive right now?* It runs the
//! [SWIM] protocol (via the [`foca`] crate) between the nodes that Raft says are members and exposes
//! the result as a [`Liveness`] per node. It never changes membership by itself: the member list is
//! pushed in with [`Gossip::set_members`] whenever Raft membership changes, and gossip only reports
//! on those members (anything else foca learns about is ignored when answering).
//!
//! # Wire format
//!
//! Every datagram is `payload || tag`, where `payload` is a foca message (postcard encoded) and
//! `tag` is the first [`TAG_LEN`] bytes of `HMAC-SHA256(secret, DOMAIN || payload)`. Datagrams with
//! a missing or wrong tag (or of impossible size) are dropped silently and counted in
//! [`Gossip::rejected_packets`]; the tag is checked in constant time. Datagrams never exceed
//! [`MAX_DATAGRAM`] bytes, tag included.
//!
//! The tag authenticates the sender as a holder of the cluster secret; it does not protect against
//! replay of captured datagrams (SWIM messages carry probe numbers and incarnations, so a replay
//! can at worst delay the detection of a failure, not forge membership).
//!
//! # Identities
//!
//! A foca identity is `(node id, advertised address, generation)`; foca's "address" is the node id,
//! so there is at most one identity per node. The generation is the start time in milliseconds
//! since the Unix epoch and [`foca::Identity::renew`] bumps it, so a restarted node (same id, maybe a
//! new port) always wins the conflict against its previous, possibly-Down, identity, and a node
//! that the cluster declared Down (e.g. after a partition) rejoins automatically with a new
//! generation.
//!
//! # Driver
//!
//! [`Gossip::start`] binds the socket and spawns one task that owns the [`foca::Foca`] instance and
//! `select!`s over: datagrams, foca timers (kept in a min-heap, every timer is delivered), member
//! list changes, a periodic re-announce tick and shutdown. After every event the liveness table
//! (behind a `parking_lot::Mutex`) is rebuilt from foca's membership state, which also exposes
//! `Suspect`. Configured members that foca does not currently consider active at their configured
//! address are (re-)announced to immediately on change and then every [`REANNOUNCE_EVERY`], so a
//! restarted node is rediscovered and partitions heal. On shutdown the node leaves the cluster
//! gracefully (others see it Down right away) and its own view becomes `Unknown` for all peers.
//!
//! [SWIM]: https://www.cs.cornell.edu/projects/Quicksilver/public_pdfs/SWIM.pdf

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{
    AccumulatingRuntime, Config, Foca, NoCustomBroadcast, OwnedNotification, PeriodicParams, PostcardCodec, State,
    Timer,
};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand09::rngs::StdRng;
use rand09::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Cluster node identifier (same as the Raft node id).
pub type NodeId = u64;

/// Largest datagram we send or accept, authentication tag included.
pub const MAX_DATAGRAM: usize = 1400;
/// Length of the truncated HMAC-SHA256 tag appended to every datagram.
pub const TAG_LEN: usize = 16;
/// Default SWIM probe period: a crashed node is declared Down after roughly 2–4 s.
pub const DEFAULT_PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How often configured members that are not currently alive (or are at another address) are
/// announced to again.
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// Domain separation for the HMAC, so the cluster secret can be reused elsewhere safely.
const DOMAIN: &[u8] = b"flotilla/gossip/v1\0";
/// Smallest accepted probe period (a zero or tiny period would spin the driver).
const MIN_PROBE_PERIOD: Duration = Duration::from_millis(50);
/// How long foca remembers Down members before forgetting them.
const REMOVE_DOWN_AFTER: Duration = Duration::from_secs(120);

type HmacSha256 = Hmac<Sha256>;
type FocaInstance = Foca<PeerId, PostcardCodec, StdRng, NoCustomBroadcast>;

/// What gossip says of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answering probes.
    Alive,
    /// Some member failed to reach it; it is declared Down unless it refutes in time.
    Suspect,
    /// Confirmed unreachable (or left the cluster).
    Down,
    /// Never heard of (or gossip is not running).
    Unknown,
}

impl Liveness {
    /// Lowercase name, for logs and admin APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Suspect => "suspect",
            Liveness::Down => "down",
            Liveness::Unknown => "unknown",
        }
    }
}

/// Configuration of the gossip endpoint of one node.
#[derive(Clone)]
pub struct GossipConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// Local UDP address to bind.
    pub bind: SocketAddr,
    /// Address the other nodes reach us at. Port 0 means "the bound port"; an unspecified IP means
    /// "the bound IP" (which must then be concrete).
    pub advertise: SocketAddr,
    /// Shared cluster secret (HMAC key); must not be empty.
    pub secret: Vec<u8>,
    /// SWIM probe period. With the default ([`DEFAULT_PROBE_PERIOD`], 500 ms) a crashed node is
    /// reported Down after roughly 2–4 s: suspicion after 1–2 periods, Down 4 periods later.
    pub probe_period: Duration,
}

impl std::fmt::Debug for GossipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipConfig")
            .field("node_id", &self.node_id)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("secret", &"<redacted>")
            .field("probe_period", &self.probe_period)
            .finish()
    }
}

impl GossipConfig {
    /// Config with the default probe period.
    pub fn new(node_id: NodeId, bind: SocketAddr, advertise: SocketAddr, secret: Vec<u8>) -> Self {
        Self { node_id, bind, advertise, secret, probe_period: DEFAULT_PROBE_PERIOD }
    }
}

/// Shared handle on the gossip endpoint; cheap to clone.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    local_addr: SocketAddr,
    /// Members to watch, from Raft: id -> gossip address.
    wanted: Mutex<HashMap<NodeId, SocketAddr>>,
    /// What foca says, keyed by node id (self excluded).
    liveness: Mutex<HashMap<NodeId, Liveness>>,
    rejected: AtomicU64,
    /// Wakes the driver when `wanted` changed.
    wake: Notify,
    /// Test hook: stop without leaving the cluster, as if the process had crashed.
    crash_on_shutdown: AtomicBool,
}

impl Gossip {
    /// Binds the UDP socket and spawns the foca driver task; stops on `shutdown`.
    pub async fn start(config: GossipConfig, shutdown: CancellationToken) -> io::Result<Gossip> {
        if config.secret.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "gossip secret must not be empty"));
        }
        if config.probe_period < MIN_PROBE_PERIOD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("gossip probe period must be at least {MIN_PROBE_PERIOD:?}"),
            ));
        }
        let mac = HmacSha256::new_from_slice(&config.secret)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid gossip secret"))?;

        let socket = UdpSocket::bind(config.bind).await?;
        let local_addr = socket.local_addr()?;
        let mut advertise = config.advertise;
        if advertise.port() == 0 {
            advertise.set_port(local_addr.port());
        }
        if advertise.ip().is_unspecified() {
            advertise.set_ip(local_addr.ip());
        }
        if advertise.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "gossip advertise address must be a concrete IP when binding a wildcard address",
            ));
        }

        let identity = PeerId { node: config.node_id, addr: advertise, generation: now_millis() };
        let foca = Foca::new(identity, foca_config(config.probe_period), StdRng::from_os_rng(), PostcardCodec);

        let inner = Arc::new(Inner {
            node_id: config.node_id,
            local_addr,
            wanted: Mutex::new(HashMap::new()),
            liveness: Mutex::new(HashMap::new()),
            rejected: AtomicU64::new(0),
            wake: Notify::new(),
            crash_on_shutdown: AtomicBool::new(false),
        });
        let driver = Driver {
            foca,
            runtime: AccumulatingRuntime::new(),
            mac,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            inner: Arc::clone(&inner),
        };
        tracing::info!(node = config.node_id, %local_addr, %advertise, "gossip started");
        tokio::spawn(driver.run(socket, shutdown));
        Ok(Gossip { inner })
    }

    /// Tells gossip about members to contact (called whenever Raft membership changes; idempotent):
    /// (id, gossip addr). The list replaces the previous one; our own id may be included.
    pub fn set_members(&self, members: &[(NodeId, SocketAddr)]) {
        let new: HashMap<NodeId, SocketAddr> = members.iter().copied().collect();
        let changed = {
            let mut wanted = self.inner.wanted.lock();
            if *wanted == new {
                false
            } else {
                *wanted = new;
                true
            }
        };
        if changed {
            self.inner.wake.notify_one();
        }
    }

    /// Liveness of a member (self is always Alive; never-heard-of = Unknown). Nodes that are not in
    /// the last [`Gossip::set_members`] list are Unknown.
    pub fn liveness(&self, node: NodeId) -> Liveness {
        if node == self.inner.node_id {
            return Liveness::Alive;
        }
        if !self.inner.wanted.lock().contains_key(&node) {
            return Liveness::Unknown;
        }
        self.inner.liveness.lock().get(&node).copied().unwrap_or(Liveness::Unknown)
    }

    /// Snapshot of all known members (self and the configured members) and their liveness,
    /// sorted by id.
    pub fn members(&self) -> Vec<(NodeId, Liveness)> {
        let mut ids: Vec<NodeId> = self.inner.wanted.lock().keys().copied().collect();
        if !ids.contains(&self.inner.node_id) {
            ids.push(self.inner.node_id);
        }
        ids.sort_unstable();
        let table = self.inner.liveness.lock();
        ids.into_iter()
            .map(|id| {
                let l = if id == self.inner.node_id {
                    Liveness::Alive
                } else {
                    table.get(&id).copied().unwrap_or(Liveness::Unknown)
                };
                (id, l)
            })
            .collect()
    }

    /// Number of datagrams dropped because of a missing/wrong authentication tag or a bad size.
    pub fn rejected_packets(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// The locally bound UDP address (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }
}

/// Foca identity of a node: foca's "address" is the node id, so one identity per node survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct PeerId {
    node: NodeId,
    addr: SocketAddr,
    /// Start time (ms since the epoch), bumped by `renew`; the higher generation wins.
    generation: u64,
}

impl foca::Identity for PeerId {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(PeerId { generation: self.generation.saturating_add(1).max(now_millis()), ..*self })
    }

    fn addr(&self) -> NodeId {
        self.node
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Newer generation wins; the address only breaks (practically impossible) ties so the
        // relation stays a strict total order.
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn foca_config(probe_period: Duration) -> Config {
    let mut config = Config::simple();
    config.probe_period = probe_period;
    // Must be below the probe period; leaves time for the indirect probes.
    config.probe_rtt = probe_period * 2 / 5;
    config.suspect_to_down_after = probe_period * 4;
    config.remove_down_after = REMOVE_DOWN_AFTER;
    config.max_transmissions = NonZeroU8::new(6).unwrap_or(NonZeroU8::MIN);
    config.max_packet_size = NonZeroUsize::new(MAX_DATAGRAM - TAG_LEN).unwrap_or(NonZeroUsize::MIN);
    // Tell members we consider Down so that, if they are in fact alive (partition), they rejoin
    // with a renewed identity.
    config.notify_down_members = true;
    let three = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
    config.periodic_gossip = Some(PeriodicParams { frequency: Duration::from_millis(200), num_members: three });
    config.periodic_announce =
        Some(PeriodicParams { frequency: Duration::from_secs(10), num_members: NonZeroUsize::MIN });
    config.periodic_announce_to_down_members =
        Some(PeriodicParams { frequency: Duration::from_secs(5), num_members: NonZeroUsize::MIN.saturating_add(1) });
    config
}

/// Appends the authentication tag to `payload`.
fn seal(mac: &HmacSha256, payload: &[u8]) -> Vec<u8> {
    let tag = mac.clone().chain_update(DOMAIN).chain_update(payload).finalize().into_bytes();
    let mut datagram = Vec::with_capacity(payload.len() + TAG_LEN);
    datagram.extend_from_slice(payload);
    datagram.extend_from_slice(&tag[..TAG_LEN]);
    datagram
}

/// Checks the tag (constant time) and returns the payload, or `None` if the datagram must be dropped.
fn open<'a>(mac: &HmacSha256, datagram: &'a [u8]) -> Option<&'a [u8]> {
    if datagram.len() <= TAG_LEN || datagram.len() > MAX_DATAGRAM {
        return None;
    }
    let (payload, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    mac.clone().chain_update(DOMAIN).chain_update(payload).verify_truncated_left(tag).ok()?;
    Some(payload)
}

/// A foca timer due at `at`; ordered so that `BinaryHeap` pops the earliest first (FIFO on ties).
struct Scheduled {
    at: Instant,
    seq: u64,
    timer: Timer<PeerId>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Clears the published view when the driver stops (even by panic): stale "Alive" would lie.
struct ClearOnDrop(Arc<Inner>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.liveness.lock().clear();
    }
}

struct Driver {
    foca: FocaInstance,
    runtime: AccumulatingRuntime<PeerId>,
    mac: HmacSha256,
    timers: BinaryHeap<Scheduled>,
    timer_seq: u64,
    inner: Arc<Inner>,
}

impl Driver {
    async fn run(mut self, socket: UdpSocket, shutdown: CancellationToken) {
        let _clear = ClearOnDrop(Arc::clone(&self.inner));
        // Large enough to notice (and reject) oversized datagrams instead of truncating them.
        let mut buf = vec![0u8; MAX_DATAGRAM * 2];
        let mut reannounce = tokio::time::interval(REANNOUNCE_EVERY);
        reannounce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|s| s.at);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = sleep_until_opt(next_timer), if next_timer.is_some() => self.fire_due_timers(),
                () = self.inner.wake.notified() => self.reannounce(),
                _ = reannounce.tick() => self.reannounce(),
                // Last, so that a flood of datagrams cannot starve timers or member updates.
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.handle_datagram(&buf[..len], from),
                    Err(err) => {
                        // Unconnected UDP sockets may surface ICMP errors; never spin on them.
                        tracing::debug!(%err, "gossip recv failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
            self.flush(&socket).await;
            self.publish();
        }
        if self.inner.crash_on_shutdown.load(Ordering::Relaxed) {
            tracing::info!(node = self.inner.node_id, "gossip stopped without leaving (simulated crash)");
            return;
        }
        if let Err(err) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(%err, "gossip leave_cluster failed");
        }
        self.flush(&socket).await;
        tracing::info!(node = self.inner.node_id, "gossip stopped");
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while self.timers.peek().is_some_and(|s| s.at <= now) {
            let Some(scheduled) = self.timers.pop() else { break };
            if let Err(err) = self.foca.handle_timer(scheduled.timer, &mut self.runtime) {
                tracing::debug!(%err, "gossip timer handling failed");
            }
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        match open(&self.mac, datagram) {
            Some(payload) => {
                if let Err(err) = self.foca.handle_data(payload, &mut self.runtime) {
                    tracing::trace!(%err, %from, "gossip datagram not applied");
                }
            }
            None => {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(%from, len = datagram.len(), "gossip datagram rejected (bad tag or size)");
            }
        }
    }

    /// Announces to configured members that foca does not consider active at their configured
    /// address (unknown, Down, or restarted elsewhere).
    fn reannounce(&mut self) {
        let wanted: Vec<(NodeId, SocketAddr)> =
            self.inner.wanted.lock().iter().map(|(id, addr)| (*id, *addr)).collect();
        let active: HashMap<NodeId, SocketAddr> =
            self.foca.iter_members().map(|m| (m.id().node, m.id().addr)).collect();
        for (node, addr) in wanted {
            if node == self.inner.node_id || active.get(&node) == Some(&addr) {
                continue;
            }
            // Announce is accepted by whoever owns that node id, whatever its generation.
            let target = PeerId { node, addr, generation: 0 };
            if let Err(err) = self.foca.announce(target, &mut self.runtime) {
                tracing::debug!(%err, node, %addr, "gossip announce failed");
            }
        }
    }

    async fn flush(&mut self, socket: &UdpSocket) {
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => {
                    tracing::debug!(node = id.node, addr = %id.addr, "gossip: member up")
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::info!(node = id.node, addr = %id.addr, "gossip: member down")
                }
                OwnedNotification::Rename(old, new) => {
                    tracing::debug!(node = new.node, old = %old.addr, new = %new.addr, "gossip: member restarted")
                }
                OwnedNotification::Rejoin(id) => tracing::info!(generation = id.generation, "gossip: rejoined cluster"),
                OwnedNotification::Defunct => tracing::warn!("gossip: declared down by the cluster"),
                other => tracing::trace!(?other, "gossip notification"),
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timer_seq = self.timer_seq.wrapping_add(1);
            self.timers.push(Scheduled { at: Instant::now() + after, seq: self.timer_seq, timer });
        }
        while let Some((to, payload)) = self.runtime.to_send() {
            let datagram = seal(&self.mac, &payload);
            if let Err(err) = socket.send_to(&datagram, to.addr).await {
                tracing::debug!(%err, node = to.node, addr = %to.addr, "gossip send failed");
            }
        }
    }

    /// Rebuilds the liveness table from foca's membership state. Members foca forgot are Down.
    fn publish(&self) {
        let mut table = self.inner.liveness.lock();
        table.values_mut().for_each(|l| *l = Liveness::Down);
        for member in self.foca.iter_membership_state() {
            let liveness = match member.state() {
                State::Alive => Liveness::Alive,
                State::Suspect => Liveness::Suspect,
                State::Down => Liveness::Down,
            };
            table.insert(member.id().node, liveness);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    const SECRET: &[u8] = b"flotilla-test-cluster-secret";

    fn localhost() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    async fn node(id: NodeId, secret: &[u8]) -> (Gossip, CancellationToken) {
        let token = CancellationToken::new();
        let config = GossipConfig::new(id, localhost(), localhost(), secret.to_vec());
        let gossip = Gossip::start(config, token.clone()).await.expect("start gossip");
        (gossip, token)
    }

    /// Starts a node on a fixed address, retrying while a stopped predecessor still holds the port.
    async fn node_at(id: NodeId, addr: SocketAddr) -> (Gossip, CancellationToken) {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let token = CancellationToken::new();
            match Gossip::start(GossipConfig::new(id, addr, addr, SECRET.to_vec()), token.clone()).await {
                Ok(gossip) => return (gossip, token),
                Err(err) if std::time::Instant::now() < deadline => {
                    tracing::debug!(%err, "port still busy");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("cannot rebind {addr}: {err}"),
            }
        }
    }

    fn addrs(nodes: &[(NodeId, &Gossip)]) -> Vec<(NodeId, SocketAddr)> {
        nodes.iter().map(|(id, g)| (*id, g.local_addr())).collect()
    }

    /// Polls `cond` every 20 ms until it holds or `timeout` elapses; returns whether it held.
    async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn all_alive(nodes: &[(NodeId, &Gossip)]) -> bool {
        nodes.iter().all(|(_, g)| nodes.iter().all(|(other, _)| g.liveness(*other) == Liveness::Alive))
    }

    #[test]
    fn liveness_names() {
        assert_eq!(Liveness::Alive.as_str(), "alive");
        assert_eq!(Liveness::Suspect.as_str(), "suspect");
        assert_eq!(Liveness::Down.as_str(), "down");
        assert_eq!(Liveness::Unknown.as_str(), "unknown");
    }

    #[test]
    fn seal_open_roundtrip_and_rejections() {
        let mac = HmacSha256::new_from_slice(SECRET).unwrap();
        let other = HmacSha256::new_from_slice(b"another secret").unwrap();
        let datagram = seal(&mac, b"hello");
        assert_eq!(datagram.len(), 5 + TAG_LEN);
        assert_eq!(open(&mac, &datagram), Some(&b"hello"[..]));
        assert_eq!(open(&other, &datagram), None, "wrong key");
        let mut tampered = datagram.clone();
        tampered[0] ^= 1;
        assert_eq!(open(&mac, &tampered), None, "tampered payload");
        let mut bad_tag = datagram.clone();
        *bad_tag.last_mut().unwrap() ^= 1;
        assert_eq!(open(&mac, &bad_tag), None, "tampered tag");
        assert_eq!(open(&mac, &datagram[..TAG_LEN]), None, "tag only");
        assert_eq!(open(&mac, &[]), None, "empty");
        assert_eq!(open(&mac, b"hello"), None, "no tag");
        assert_eq!(open(&mac, &seal(&mac, &[0u8; MAX_DATAGRAM])), None, "oversized");
        let max = seal(&mac, &[7u8; MAX_DATAGRAM - TAG_LEN]);
        assert!(open(&mac, &max).is_some(), "max size accepted");
    }

    #[test]
    fn newer_generation_wins_conflicts() {
        let old = PeerId { node: 1, addr: SocketAddr::from(([127, 0, 0, 1], 9000)), generation: 10 };
        let restarted = PeerId { node: 1, addr: SocketAddr::from(([127, 0, 0, 1], 9001)), generation: 11 };
        assert!(restarted.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&restarted));
        let renewed = old.renew().unwrap();
        assert!(renewed.generation > old.generation);
        assert!(renewed.win_addr_conflict(&old));
        assert_eq!(renewed.addr(), old.addr());
    }

    #[tokio::test]
    async fn rejects_bad_config() {
        let token = CancellationToken::new();
        let empty = GossipConfig::new(1, localhost(), localhost(), Vec::new());
        assert!(Gossip::start(empty, token.clone()).await.is_err());
        let mut fast = GossipConfig::new(1, localhost(), localhost(), SECRET.to_vec());
        fast.probe_period = Duration::ZERO;
        assert!(Gossip::start(fast, token).await.is_err());
    }

    #[tokio::test]
    async fn garbage_is_rejected_and_counted() {
        let (g, token) = node(1, SECRET).await;
        let sock = UdpSocket::bind(localhost()).await.unwrap();
        for datagram in [&b""[..], b"x", &[0xffu8; 64], &[0u8; 3000]] {
            sock.send_to(datagram, g.local_addr()).await.unwrap();
        }
        assert!(wait_for(Duration::from_secs(2), || g.rejected_packets() == 4).await, "{}", g.rejected_packets());
        token.cancel();
    }

    #[tokio::test]
    async fn three_nodes_discover_each_other() {
        let (a, ta) = node(1, SECRET).await;
        let (b, tb) = node(2, SECRET).await;
        let (c, tc) = node(3, SECRET).await;
        let nodes = [(1, &a), (2, &b), (3, &c)];
        assert_eq!(a.liveness(2), Liveness::Unknown, "never heard of");
        let members = addrs(&nodes);
        for (_, g) in &nodes {
            g.set_members(&members);
        }
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes)).await, "views: {:?}", views(&nodes));
        assert_eq!(a.members(), vec![(1, Liveness::Alive), (2, Liveness::Alive), (3, Liveness::Alive)]);
        assert_eq!(a.liveness(42), Liveness::Unknown, "not a member");
        assert_eq!(a.rejected_packets(), 0);
        for t in [ta, tb, tc] {
            t.cancel();
        }
    }

    fn views(nodes: &[(NodeId, &Gossip)]) -> Vec<(NodeId, Vec<(NodeId, Liveness)>)> {
        nodes.iter().map(|(id, g)| (*id, g.members())).collect()
    }

    #[tokio::test]
    async fn stopped_node_goes_down_and_restarted_node_rejoins() {
        let (a, ta) = node(1, SECRET).await;
        let (b, tb) = node(2, SECRET).await;
        let (c, tc) = node(3, SECRET).await;
        let nodes = [(1, &a), (2, &b), (3, &c)];
        let members = addrs(&nodes);
        for (_, g) in &nodes {
            g.set_members(&members);
        }
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes)).await, "views: {:?}", views(&nodes));

        // Graceful stop: the node leaves the cluster.
        tc.cancel();
        let gone = || a.liveness(3) == Liveness::Down && b.liveness(3) == Liveness::Down;
        assert!(wait_for(Duration::from_secs(6), gone).await, "views: {:?}", views(&[(1, &a), (2, &b)]));
        assert!(wait_for(Duration::from_secs(1), || c.liveness(1) == Liveness::Unknown).await, "stopped view cleared");

        // Restart node 3 on a new port.
        let (c2, tc2) = node(3, SECRET).await;
        assert_ne!(c2.local_addr(), c.local_addr());
        let nodes = [(1, &a), (2, &b), (3, &c2)];
        let members = addrs(&nodes);
        for (_, g) in &nodes {
            g.set_members(&members);
        }
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes)).await, "views: {:?}", views(&nodes));
        for t in [ta, tb, tc2] {
            t.cancel();
        }
    }

    #[tokio::test]
    async fn crashed_node_is_detected() {
        let (a, ta) = node(1, SECRET).await;
        let (b, tb) = node(2, SECRET).await;
        let (c, tc) = node(3, SECRET).await;
        let nodes = [(1, &a), (2, &b), (3, &c)];
        let members = addrs(&nodes);
        for (_, g) in &nodes {
            g.set_members(&members);
        }
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes)).await, "views: {:?}", views(&nodes));

        // Crash: stop without leaving, so only failure detection can notice.
        c.inner.crash_on_shutdown.store(true, Ordering::Relaxed);
        let stopped = std::time::Instant::now();
        tc.cancel();
        let mut saw_suspect = false;
        let down = wait_for(Duration::from_secs(6), || {
            saw_suspect |= a.liveness(3) == Liveness::Suspect || b.liveness(3) == Liveness::Suspect;
            a.liveness(3) == Liveness::Down && b.liveness(3) == Liveness::Down
        })
        .await;
        let elapsed = stopped.elapsed();
        eprintln!("crash detection: both survivors report Down after {elapsed:?} (saw suspect: {saw_suspect})");
        assert!(down, "views after {elapsed:?}: {:?}", views(&[(1, &a), (2, &b)]));
        assert_eq!(a.liveness(2), Liveness::Alive);
        for t in [ta, tb] {
            t.cancel();
        }
    }

    #[tokio::test]
    async fn crashed_node_restarting_on_same_address_rejoins() {
        let (a, ta) = node(1, SECRET).await;
        let (b, tb) = node(2, SECRET).await;
        let (c, tc) = node(3, SECRET).await;
        let nodes = [(1, &a), (2, &b), (3, &c)];
        let members = addrs(&nodes);
        for (_, g) in &nodes {
            g.set_members(&members);
        }
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes)).await, "views: {:?}", views(&nodes));

        // Crash and restart immediately at the same address, before the others noticed anything:
        // the new generation must replace the old identity (whose probes it does not answer).
        c.inner.crash_on_shutdown.store(true, Ordering::Relaxed);
        tc.cancel();
        let (c2, tc2) = node_at(3, c.local_addr()).await;
        let nodes = [(1, &a), (2, &b), (3, &c2)];
        c2.set_members(&members);
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes)).await, "views: {:?}", views(&nodes));
        // And it stays alive: the old identity's failure must not be mistaken for the new one's.
        let flapped = wait_for(Duration::from_secs(3), || !all_alive(&nodes)).await;
        assert!(!flapped, "views: {:?}", views(&nodes));
        for t in [ta, tb, tc2] {
            t.cancel();
        }
    }

    #[tokio::test]
    async fn wrong_secret_is_never_alive() {
        let (a, ta) = node(1, SECRET).await;
        let (b, tb) = node(2, SECRET).await;
        let (evil, te) = node(3, b"not the cluster secret").await;
        let nodes = [(1, &a), (2, &b), (3, &evil)];
        let members = addrs(&nodes);
        for (_, g) in &nodes {
            g.set_members(&members);
        }
        assert!(wait_for(Duration::from_secs(5), || all_alive(&nodes[..2])).await, "views: {:?}", views(&nodes));
        // Watch for a while (spanning a re-announce round): node 3 must never look alive.
        let alive_seen = wait_for(REANNOUNCE_EVERY + Duration::from_millis(500), || {
            a.liveness(3) == Liveness::Alive || b.liveness(3) == Liveness::Alive || evil.liveness(1) == Liveness::Alive
        })
        .await;
        assert!(!alive_seen, "views: {:?}", views(&nodes));
        assert_ne!(a.liveness(3), Liveness::Alive);
        assert!(
            a.rejected_packets() > 0 && b.rejected_packets() > 0,
            "{} {}",
            a.rejected_packets(),
            b.rejected_packets()
        );
        assert!(evil.rejected_packets() > 0);
        for t in [ta, tb, te] {
            t.cancel();
        }
    }
}
