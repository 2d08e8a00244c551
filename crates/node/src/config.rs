//! The node's configuration: one documented struct, read from a TOML file
//! (`--config`), then `FLOTILLA_<NAME>` environment variables, then flags
//! (flag wins), and validated once at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flotilla_raft::network::tls::TlsFiles;
use serde::{Deserialize, Serialize};

/// Everything a node needs to start. Field names are the TOML keys and, upper-cased
/// with a `FLOTILLA_` prefix, the environment variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the RocksDB database, blobs and upload sessions live.
    pub data_dir: PathBuf,
    /// This node's id, unique in the cluster and never reused. Defaults to 1.
    pub node_id: u64,
    /// Add the ordinal at the end of the host name to `node_id`: with the
    /// default `node_id` 1, StatefulSet pod `flotilla-0` is node 1 and
    /// `flotilla-2` node 3 (`node_id` is the id of ordinal 0).
    pub node_id_from_hostname: bool,
    /// HTTP listen address of every REST surface.
    pub http_addr: SocketAddr,
    /// gRPC listen address for Raft and inter-node RPC.
    pub rpc_addr: SocketAddr,
    /// UDP listen address of SWIM gossip (failure detection between nodes).
    pub gossip_addr: SocketAddr,
    /// HTTP address other nodes and clients use to reach this node (defaults to `http_addr`).
    pub advertise_http: Option<String>,
    /// gRPC address other nodes use to reach this node (defaults to `rpc_addr`).
    pub advertise_rpc: Option<String>,
    /// UDP gossip address other nodes use to reach this node (defaults to `gossip_addr`).
    pub advertise_gossip: Option<String>,
    /// Addresses of existing nodes to join through; empty = bootstrap a new cluster.
    /// This node's own `advertise_rpc` may be listed too: it is skipped.
    pub join: Vec<String>,
    /// With the same `join` list on every node (a StatefulSet): the node listed
    /// first, when it has no Raft state, creates a new cluster once every other
    /// listed node answers that it is up and in no cluster. Every other node
    /// waits to be admitted, as without this setting.
    pub bootstrap_if_first: bool,
    /// Failure zone, for placing replicas in distinct zones.
    pub zone: Option<String>,
    /// Capacity weight for blob placement, in bytes of disk this node offers.
    pub capacity: u64,
    /// Copies of each blob (R = min(replication_factor, nodes)).
    pub replication_factor: u32,
    /// Raft voters the cluster keeps (1 to 5; 3 survives one failure, 5 two).
    /// Nodes beyond this join as non-voting storage nodes.
    pub voters: u32,
    /// How long an unreferenced blob is kept before garbage collection may delete it (`1h`, `30m`, `0s`).
    pub gc_grace: String,
    /// Start a garbage collection this long after the last one (`24h`); `0s` = only on demand.
    pub gc_interval: String,
    /// How far the clocks of two nodes may disagree (`2s`). A node keeps a copy of a
    /// collected blob that was stored less than this before the collection.
    pub gc_clock_margin: String,
    /// Copies of collected blobs each node deletes per second at most (`0` = as fast as it can).
    pub gc_reclaim_rate: u32,
    /// Bytes per second each node copies for repair and pushes for rebalancing (`0` = unpaced).
    pub copy_rate: u64,
    /// Bytes per second each node re-hashes while scrubbing (`0` = unpaced).
    pub scrub_rate: u64,
    /// Start a scrub this long after the last one (`7d`); `0s` = only on demand.
    pub scrub_interval: String,
    /// Start a repair by itself when a fault may have left copies missing
    /// (a blob acknowledged below its replication factor, a node back after
    /// being down), once every data node is alive (`true`).
    pub auto_repair: bool,
    /// `linearizable` (read index from the leader) or `local` (may be stale on a follower).
    pub read_consistency: String,
    /// A leader answers linearizable reads from its lease (a quorum accepted
    /// its heartbeat within the last 200 ms) rather than with a heartbeat round
    /// per batch of reads; assumes the nodes' clocks tick at rates within 2×
    /// of each other (`true`).
    pub read_lease: bool,
    /// Largest manifest accepted, bytes (the spec asks for at least 4 MiB).
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, bytes.
    pub max_blob_bytes: u64,
    /// Upload sessions idle longer than this are removed (`24h`).
    pub upload_expiry: String,
    /// Grants read on every repository to unauthenticated clients. Off by default.
    pub anonymous_read: bool,
    /// `service` named in registry token challenges.
    pub service_name: String,
    /// `text` or `json` logs.
    pub log_format: String,
    /// Tuning: take a Raft snapshot after this many log entries (then purge the log before it).
    pub raft_snapshot_logs: u64,
    /// Tuning: bytes per snapshot chunk sent to a lagging node.
    pub raft_snapshot_chunk_bytes: u64,
    /// Take a Raft snapshot (and purge the log before it) at least this often when
    /// anything was applied since the last one (`1h`); `0s` = only by `raft_snapshot_logs`.
    pub raft_snapshot_interval: String,
    /// Compact RocksDB fully this often (`24h`); `0s` = only RocksDB's own compactions.
    pub compaction_interval: String,
    /// PEM file of the cluster CA; with `tls_cert` and `tls_key`, inter-node
    /// gRPC is mutual TLS (all three or none).
    pub tls_ca: Option<PathBuf>,
    /// PEM file of this node's certificate (issued by the cluster CA for `tls_server_name`).
    pub tls_cert: Option<PathBuf>,
    /// PEM file of this node's private key.
    pub tls_key: Option<PathBuf>,
    /// The name every node's certificate carries and peers verify.
    pub tls_server_name: String,
    /// Upgrade testing only: the model version this node claims to support
    /// (default: its binary's, `flotilla_model::MODEL_VERSION`). The cluster
    /// runs the lowest version its nodes claim.
    pub model_version: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./flotilla-data"),
            node_id: 1,
            node_id_from_hostname: false,
            http_addr: ([127, 0, 0, 1], 5000).into(),
            rpc_addr: ([127, 0, 0, 1], 5001).into(),
            gossip_addr: ([127, 0, 0, 1], 5002).into(),
            advertise_http: None,
            advertise_rpc: None,
            advertise_gossip: None,
            join: Vec::new(),
            bootstrap_if_first: false,
            zone: None,
            capacity: 1 << 40,
            replication_factor: 3,
            voters: 3,
            gc_grace: "1h".into(),
            gc_interval: "24h".into(),
            gc_clock_margin: "2s".into(),
            gc_reclaim_rate: 1000,
            copy_rate: 100 << 20,
            scrub_rate: 32 << 20,
            scrub_interval: "7d".into(),
            auto_repair: true,
            read_consistency: "linearizable".into(),
            read_lease: true,
            max_manifest_bytes: 8 << 20,
            max_blob_bytes: 1 << 40,
            upload_expiry: "24h".into(),
            anonymous_read: false,
            service_name: "flotilla".into(),
            log_format: "text".into(),
            raft_snapshot_logs: 10_000,
            raft_snapshot_chunk_bytes: 3 << 20,
            raft_snapshot_interval: "1h".into(),
            compaction_interval: "24h".into(),
            model_version: flotilla_model::MODEL_VERSION,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: flotilla_raft::network::tls::DEFAULT_SERVER_NAME.into(),
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid value for {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    /// Reads a TOML file; missing keys take their defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks every value once, at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: &str| Err(ConfigError::Invalid { name, reason: reason.into() });
        // Upload session ids carry the node id in 48 bits.
        if !(1..=flotilla_storage::upload::MAX_UPLOAD_ORIGIN).contains(&self.node_id) {
            return invalid("node_id", "must be between 1 and 2^48 - 1");
        }
        if !(1..=5).contains(&self.replication_factor) {
            return invalid("replication_factor", "must be between 1 and 5");
        }
        if self.raft_snapshot_logs < 10 {
            return invalid("raft_snapshot_logs", "must be at least 10");
        }
        if !(4096..=(64 << 20)).contains(&self.raft_snapshot_chunk_bytes) {
            return invalid("raft_snapshot_chunk_bytes", "must be between 4 KiB and 64 MiB");
        }
        if self.tls_files().is_none() && (self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some()) {
            return invalid("tls_ca", "tls_ca, tls_cert and tls_key go together");
        }
        if !(1..=5).contains(&self.voters) {
            return invalid("voters", "must be between 1 and 5");
        }
        if self.max_manifest_bytes < 4 << 20 {
            return invalid(
                "max_manifest_bytes",
                "must be at least 4 MiB (the OCI spec asks registries to accept 4 MiB)",
            );
        }
        if !matches!(self.read_consistency.as_str(), "linearizable" | "local") {
            return invalid("read_consistency", "must be `linearizable` or `local`");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return invalid("log_format", "must be `text` or `json`");
        }
        parse_duration(&self.gc_grace).map_err(|reason| ConfigError::Invalid { name: "gc_grace", reason })?;
        parse_duration(&self.gc_interval).map_err(|reason| ConfigError::Invalid { name: "gc_interval", reason })?;
        parse_duration(&self.scrub_interval)
            .map_err(|reason| ConfigError::Invalid { name: "scrub_interval", reason })?;
        parse_duration(&self.gc_clock_margin)
            .map_err(|reason| ConfigError::Invalid { name: "gc_clock_margin", reason })?;
        parse_duration(&self.upload_expiry).map_err(|reason| ConfigError::Invalid { name: "upload_expiry", reason })?;
        parse_duration(&self.raft_snapshot_interval)
            .map_err(|reason| ConfigError::Invalid { name: "raft_snapshot_interval", reason })?;
        parse_duration(&self.compaction_interval)
            .map_err(|reason| ConfigError::Invalid { name: "compaction_interval", reason })?;
        Ok(())
    }

    /// With `node_id_from_hostname`, adds the ordinal of this machine's host
    /// name (see [`hostname_ordinal`]) to `node_id`; otherwise leaves it alone.
    pub fn resolve_node_id(&mut self) -> Result<(), ConfigError> {
        if self.node_id_from_hostname {
            let hostname =
                system_hostname().map_err(|reason| ConfigError::Invalid { name: "node_id_from_hostname", reason })?;
            self.node_id = node_id_of(self.node_id, &hostname)
                .map_err(|reason| ConfigError::Invalid { name: "node_id_from_hostname", reason })?;
        }
        Ok(())
    }

    /// The `join` addresses other than this node's own advertised RPC address.
    pub fn join_peers(&self) -> Vec<String> {
        let own = self.advertised_rpc();
        self.join.iter().filter(|member| !same_address(member, &own)).cloned().collect()
    }

    /// Whether this node's advertised RPC address is the first entry of `join`
    /// (the node that may create the cluster under `bootstrap_if_first`).
    pub fn is_first_in_join(&self) -> bool {
        self.join.first().is_some_and(|first| same_address(first, &self.advertised_rpc()))
    }

    /// The TLS files of inter-node gRPC, when all three are set.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        let (ca, cert, key) = (self.tls_ca.clone()?, self.tls_cert.clone()?, self.tls_key.clone()?);
        Some(TlsFiles { ca, cert, key, server_name: self.tls_server_name.clone() })
    }

    /// The advertised HTTP address.
    pub fn advertised_http(&self) -> String {
        self.advertise_http.clone().unwrap_or_else(|| self.http_addr.to_string())
    }

    /// The advertised gRPC address.
    pub fn advertised_rpc(&self) -> String {
        self.advertise_rpc.clone().unwrap_or_else(|| self.rpc_addr.to_string())
    }

    /// The advertised gossip address: `advertise_gossip`, else the host of
    /// the advertised RPC address with the gossip port when gossip listens on
    /// a wildcard address, else `gossip_addr`.
    pub fn advertised_gossip(&self) -> String {
        if let Some(addr) = &self.advertise_gossip {
            return addr.clone();
        }
        if self.gossip_addr.ip().is_unspecified() {
            if let Some((host, _port)) = self.advertised_rpc().rsplit_once(':') {
                return format!("{host}:{}", self.gossip_addr.port());
            }
        }
        self.gossip_addr.to_string()
    }
}

/// Host names are case-insensitive; surrounding blanks are a typo, not a different node.
fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The id of the node on `hostname` when ordinal 0 is `first_id`.
pub fn node_id_of(first_id: u64, hostname: &str) -> Result<u64, String> {
    let ordinal = hostname_ordinal(hostname)?;
    first_id.checked_add(ordinal).ok_or_else(|| format!("node_id {first_id} + ordinal {ordinal} is too large"))
}

/// The ordinal of a StatefulSet pod's host name: `flotilla-2` is 2. A fully
/// qualified name counts by its first label (`flotilla-2.flotilla-peers.ns.svc.cluster.local`).
pub fn hostname_ordinal(hostname: &str) -> Result<u64, String> {
    let name = hostname.trim().split('.').next().unwrap_or_default();
    let not_a_pod = || {
        format!(
            "host name `{}` does not end in `-<ordinal>` like a StatefulSet pod (`flotilla-2`); \
             set node_id instead",
            hostname.trim()
        )
    };
    let (base, ordinal) = name.rsplit_once('-').ok_or_else(not_a_pod)?;
    if base.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_pod());
    }
    ordinal.parse().map_err(|_| not_a_pod())
}

/// This machine's host name (a pod's is its name): the kernel's, else `HOSTNAME`.
fn system_hostname() -> Result<String, String> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned());
    match kernel {
        Ok(name) if !name.is_empty() => Ok(name),
        _ => match std::env::var("HOSTNAME") {
            Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
            _ => Err("cannot read the host name (/proc/sys/kernel/hostname, HOSTNAME)".into()),
        },
    }
}

/// Parses `90s`, `30m`, `1h`, `7d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30s, 15m, 1h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown duration unit in `{text}` (use s, m, h or d)")),
    };
    number.checked_mul(seconds).map(Duration::from_secs).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_in_deploy_parses_and_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/flotilla.toml");
        let config = Config::from_file(std::path::Path::new(path)).unwrap();
        config.validate().unwrap();
        assert_eq!(config.replication_factor, 3);
        assert_eq!(parse_duration(&config.gc_grace).unwrap(), Duration::from_secs(3600));
        assert_eq!(config.advertised_gossip(), "registry-1.internal:5002");
    }

    #[test]
    fn the_gossip_address_follows_the_advertised_rpc_host_on_a_wildcard() {
        assert_eq!(Config::default().advertised_gossip(), "127.0.0.1:5002");
        let wildcard = Config {
            gossip_addr: "0.0.0.0:7946".parse().unwrap(),
            advertise_rpc: Some("[fd00::1]:5001".into()),
            ..Config::default()
        };
        assert_eq!(wildcard.advertised_gossip(), "[fd00::1]:7946");
        let explicit = Config { advertise_gossip: Some("gw:9".into()), ..wildcard };
        assert_eq!(explicit.advertised_gossip(), "gw:9");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::from_toml("data_dri = \"/x\"").is_err());
        let config = Config { replication_factor: 9, ..Config::default() };
        assert!(config.validate().is_err());
        let config = Config { max_manifest_bytes: 1024, ..Config::default() };
        assert!(config.validate().is_err());
        let config = Config { node_id: 1 << 48, ..Config::default() };
        assert!(config.validate().is_err());
    }

    #[test]
    fn a_statefulset_ordinal_is_added_to_the_first_id() {
        assert_eq!(node_id_of(1, "flotilla-0"), Ok(1));
        assert_eq!(node_id_of(1, "flotilla-2"), Ok(3));
        assert_eq!(node_id_of(101, "flotilla-b-2"), Ok(103), "a second StatefulSet numbered from 101");
        assert_eq!(node_id_of(1, "my-registry-flotilla-41\n"), Ok(42));
        assert_eq!(node_id_of(1, "flotilla-2.flotilla-peers.prod.svc.cluster.local"), Ok(3));
        for bad in ["flotilla", "flotilla-", "-3", "flotilla-a", "flotilla-1a", "flotilla-+1", "", "node1.example"] {
            let error = node_id_of(1, bad).unwrap_err();
            assert!(error.contains("-<ordinal>") && error.contains("set node_id"), "{bad}: {error}");
        }
        assert!(node_id_of(1, &format!("flotilla-{}", u64::MAX)).unwrap_err().contains("too large"));
        assert!(hostname_ordinal("flotilla-99999999999999999999999").is_err());
        // The range check of validate() applies to the derived id too.
        let config = Config { node_id: node_id_of(1, "flotilla-281474976710655").unwrap(), ..Config::default() };
        assert!(config.validate().is_err());
    }

    #[test]
    fn the_host_name_sets_node_id_only_when_asked() {
        let mut config = Config { node_id: 7, ..Config::default() };
        config.resolve_node_id().unwrap();
        assert_eq!(config.node_id, 7, "off by default");
        // This test machine's name may or may not end in an ordinal: either the
        // id follows it or the error names the setting.
        let mut config = Config { node_id: 7, node_id_from_hostname: true, ..Config::default() };
        match (config.resolve_node_id(), system_hostname()) {
            (Ok(()), Ok(name)) => assert_eq!(Ok(config.node_id), node_id_of(7, &name)),
            (Err(ConfigError::Invalid { name, reason }), _) => {
                assert_eq!(name, "node_id_from_hostname");
                assert!(reason.contains("host name"), "{reason}");
            }
            (result, name) => panic!("{result:?} for {name:?}"),
        }
    }

    #[test]
    fn the_join_list_skips_this_node_and_knows_who_is_first() {
        let peers = |pod: u8| Config {
            advertise_rpc: Some(format!("flotilla-{pod}.flotilla-peers.ns.svc.cluster.local:5001")),
            join: (0..3).map(|i| format!("flotilla-{i}.flotilla-peers.ns.svc.cluster.local:5001")).collect(),
            ..Config::default()
        };
        let first = peers(0);
        assert!(first.is_first_in_join());
        assert_eq!(
            first.join_peers(),
            [
                "flotilla-1.flotilla-peers.ns.svc.cluster.local:5001",
                "flotilla-2.flotilla-peers.ns.svc.cluster.local:5001"
            ]
        );
        let third = peers(2);
        assert!(!third.is_first_in_join());
        assert_eq!(third.join_peers().len(), 2);
        assert!(!third.join_peers().iter().any(|peer| peer.starts_with("flotilla-2.")));
        // Without advertise_rpc the listen address is this node's address.
        let local = Config { join: vec!["127.0.0.1:5001".into(), "127.0.0.2:5001".into()], ..Config::default() };
        assert!(local.is_first_in_join());
        assert_eq!(local.join_peers(), ["127.0.0.2:5001"]);
        assert!(!Config::default().is_first_in_join(), "an empty join list has no first");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
