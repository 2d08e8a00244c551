//! The `flotilla` command line: `serve` and its flags (each also read from
//! `FLOTILLA_<NAME>`), merged over the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about = "A highly available artifact registry cluster")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Commands>,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a node (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Look at and change a running cluster through any node's `/_cluster` API.
    Cluster(ClusterArgs),
    /// Manage user accounts (one account for every API) through any node.
    User(UserArgs),
}

/// Where the cluster is and who asks.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of any node.
    #[arg(long, env = "FLOTILLA_URL", default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// An administrator account.
    #[arg(long, env = "FLOTILLA_USER", default_value = "admin")]
    pub user: String,
    /// Its password.
    #[arg(long, env = "FLOTILLA_PASSWORD", hide_env_values = true)]
    pub password: String,
}

/// `flotilla cluster …`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// `flotilla user …`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: UserCommand,
}

/// Account subcommands. A new password is read from `--new-password`
/// (`FLOTILLA_NEW_PASSWORD`) or, when absent, from the first line of stdin.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        name: String,
        /// Its e-mail address.
        #[arg(long)]
        email: String,
        /// Make it an administrator.
        #[arg(long)]
        admin: bool,
        /// Groups it belongs to (comma-separated; they must exist).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long, env = "FLOTILLA_NEW_PASSWORD", hide_env_values = true)]
        new_password: Option<String>,
    },
    /// List the accounts.
    List,
    /// Set an account's password.
    Passwd {
        name: String,
        #[arg(long, env = "FLOTILLA_NEW_PASSWORD", hide_env_values = true)]
        new_password: Option<String>,
    },
    /// Delete an account (with its memberships, permissions and tokens).
    Delete { name: String },
}

/// Flags of the task-starting subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct TaskFlags {
    /// Only report what would be done.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for the task to end and print its result; fails unless it finished.
    #[arg(long)]
    pub wait: bool,
}

/// Operator subcommands; each prints the API's JSON answer.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Health: green, yellow or red.
    Health,
    /// Cluster id, leader, term, nodes and layout summary.
    Status,
    /// The nodes.
    Nodes,
    /// The partition layout.
    Layout,
    /// Move a node's data to the other nodes, then remove it.
    Drain { node_id: u64 },
    /// Remove a node now (for a node that is gone for good).
    Remove { node_id: u64 },
    /// Start garbage collection: blobs no manifest references, unreferenced for the grace period.
    Gc {
        /// Only report what would be collected.
        #[arg(long)]
        dry_run: bool,
        /// Grace period for this run (`1h`, `0s`); the cluster's `gc_grace` when absent.
        #[arg(long)]
        grace: Option<String>,
        /// First delete untagged manifests that no index or live subject keeps
        /// and that are older than the grace period.
        #[arg(long)]
        untagged: bool,
        /// Wait for the task to end and print its result; fails unless it finished.
        #[arg(long)]
        wait: bool,
    },
    /// Start a repair: every owner copies the recorded blobs it lacks from a replica.
    Repair(TaskFlags),
    /// Start a scrub: every node re-hashes its copies and replaces corrupt ones.
    Scrub(TaskFlags),
    /// Start storage optimization: once the layout is synced, drop copies no owner list names.
    Optimize(TaskFlags),
    /// The cluster tasks, newest first.
    Tasks,
    /// One task.
    Task { id: String },
    /// Cancel a scheduled or running task.
    Cancel { id: String },
}

/// Flags of `flotilla serve`; unset flags leave the file's (or default) value.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "FLOTILLA_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "FLOTILLA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "FLOTILLA_NODE_ID")]
    pub node_id: Option<u64>,
    /// `true`: node id = --node-id (default 1) + the ordinal ending the host name (`flotilla-2`: 2).
    #[arg(long, env = "FLOTILLA_NODE_ID_FROM_HOSTNAME")]
    pub node_id_from_hostname: Option<bool>,
    #[arg(long, env = "FLOTILLA_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    #[arg(long, env = "FLOTILLA_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    #[arg(long, env = "FLOTILLA_GOSSIP_ADDR")]
    pub gossip_addr: Option<SocketAddr>,
    #[arg(long, env = "FLOTILLA_ADVERTISE_HTTP")]
    pub advertise_http: Option<String>,
    #[arg(long, env = "FLOTILLA_ADVERTISE_RPC")]
    pub advertise_rpc: Option<String>,
    #[arg(long, env = "FLOTILLA_ADVERTISE_GOSSIP")]
    pub advertise_gossip: Option<String>,
    /// Comma-separated addresses of existing nodes.
    #[arg(long, env = "FLOTILLA_JOIN", value_delimiter = ',')]
    pub join: Option<Vec<String>>,
    /// `true`: the node listed first in --join, without state, creates the
    /// cluster once every other listed node is up and in no cluster.
    #[arg(long, env = "FLOTILLA_BOOTSTRAP_IF_FIRST")]
    pub bootstrap_if_first: Option<bool>,
    #[arg(long, env = "FLOTILLA_ZONE")]
    pub zone: Option<String>,
    #[arg(long, env = "FLOTILLA_CAPACITY")]
    pub capacity: Option<u64>,
    #[arg(long, env = "FLOTILLA_REPLICATION_FACTOR")]
    pub replication_factor: Option<u32>,
    #[arg(long, env = "FLOTILLA_VOTERS")]
    pub voters: Option<u32>,
    #[arg(long, env = "FLOTILLA_GC_GRACE")]
    pub gc_grace: Option<String>,
    #[arg(long, env = "FLOTILLA_GC_INTERVAL")]
    pub gc_interval: Option<String>,
    #[arg(long, env = "FLOTILLA_GC_CLOCK_MARGIN")]
    pub gc_clock_margin: Option<String>,
    #[arg(long, env = "FLOTILLA_GC_RECLAIM_RATE")]
    pub gc_reclaim_rate: Option<u32>,
    #[arg(long, env = "FLOTILLA_COPY_RATE")]
    pub copy_rate: Option<u64>,
    #[arg(long, env = "FLOTILLA_SCRUB_RATE")]
    pub scrub_rate: Option<u64>,
    #[arg(long, env = "FLOTILLA_SCRUB_INTERVAL")]
    pub scrub_interval: Option<String>,
    #[arg(long, env = "FLOTILLA_AUTO_REPAIR")]
    pub auto_repair: Option<bool>,
    #[arg(long, env = "FLOTILLA_READ_CONSISTENCY")]
    pub read_consistency: Option<String>,
    #[arg(long, env = "FLOTILLA_READ_LEASE")]
    pub read_lease: Option<bool>,
    /// Upgrade testing only: the model version this node claims to support.
    #[arg(long, env = "FLOTILLA_MODEL_VERSION", hide = true)]
    pub model_version: Option<u32>,
    #[arg(long, env = "FLOTILLA_MAX_MANIFEST_BYTES")]
    pub max_manifest_bytes: Option<u64>,
    #[arg(long, env = "FLOTILLA_MAX_BLOB_BYTES")]
    pub max_blob_bytes: Option<u64>,
    #[arg(long, env = "FLOTILLA_UPLOAD_EXPIRY")]
    pub upload_expiry: Option<String>,
    #[arg(long, env = "FLOTILLA_ANONYMOUS_READ")]
    pub anonymous_read: Option<bool>,
    #[arg(long, env = "FLOTILLA_SERVICE_NAME")]
    pub service_name: Option<String>,
    #[arg(long, env = "FLOTILLA_LOG_FORMAT")]
    pub log_format: Option<String>,
    #[arg(long, env = "FLOTILLA_RAFT_SNAPSHOT_LOGS", hide = true)]
    pub raft_snapshot_logs: Option<u64>,
    #[arg(long, env = "FLOTILLA_RAFT_SNAPSHOT_CHUNK_BYTES", hide = true)]
    pub raft_snapshot_chunk_bytes: Option<u64>,
    #[arg(long, env = "FLOTILLA_RAFT_SNAPSHOT_INTERVAL", hide = true)]
    pub raft_snapshot_interval: Option<String>,
    #[arg(long, env = "FLOTILLA_COMPACTION_INTERVAL")]
    pub compaction_interval: Option<String>,
    /// Cluster CA (PEM); with --tls-cert and --tls-key, inter-node gRPC is mutual TLS.
    #[arg(long, env = "FLOTILLA_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    #[arg(long, env = "FLOTILLA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "FLOTILLA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    #[arg(long, env = "FLOTILLA_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
}

impl ServeArgs {
    /// The file (or defaults) overlaid with environment and flags, validated.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! overlay {
            ($($field:ident),*) => { $(if let Some(value) = self.$field { config.$field = value; })* };
        }
        overlay!(
            data_dir,
            node_id,
            node_id_from_hostname,
            http_addr,
            rpc_addr,
            gossip_addr,
            join,
            bootstrap_if_first,
            capacity,
            replication_factor,
            voters,
            gc_grace,
            gc_interval,
            gc_clock_margin,
            gc_reclaim_rate,
            copy_rate,
            scrub_rate,
            scrub_interval,
            auto_repair,
            read_consistency,
            read_lease,
            max_manifest_bytes,
            max_blob_bytes,
            upload_expiry,
            anonymous_read,
            service_name,
            log_format,
            raft_snapshot_logs,
            raft_snapshot_chunk_bytes,
            raft_snapshot_interval,
            compaction_interval,
            tls_server_name,
            model_version
        );
        for (flag, field) in [
            (self.tls_ca, &mut config.tls_ca),
            (self.tls_cert, &mut config.tls_cert),
            (self.tls_key, &mut config.tls_key),
        ] {
            if flag.is_some() {
                *field = flag;
            }
        }
        if self.advertise_http.is_some() {
            config.advertise_http = self.advertise_http;
        }
        if self.advertise_rpc.is_some() {
            config.advertise_rpc = self.advertise_rpc;
        }
        if self.advertise_gossip.is_some() {
            config.advertise_gossip = self.advertise_gossip;
        }
        if self.zone.is_some() {
            config.zone = self.zone;
        }
        config.resolve_node_id()?;
        config.validate()?;
        Ok(config)
    }
}

impl ServeArgs {
    /// `flotilla` with no subcommand: the serve flags from the environment only.
    pub fn try_from_env() -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct EnvOnly {
            #[command(flatten)]
            serve: ServeArgs,
        }
        EnvOnly::try_parse_from(["flotilla"]).map(|parsed| parsed.serve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, "node_id = 4\nreplication_factor = 5\n").unwrap();
        let cli =
            Cli::try_parse_from(["flotilla", "serve", "--config", file.to_str().unwrap(), "--node-id", "9"]).unwrap();
        let Some(Commands::Serve(args)) = cli.command else { panic!("serve expected") };
        let config = args.into_config().unwrap();
        assert_eq!(config.node_id, 9, "flag wins over file");
        assert_eq!(config.replication_factor, 5, "file wins over default");
    }

    #[test]
    fn the_statefulset_settings_are_flags_too() {
        let cli = Cli::try_parse_from([
            "flotilla",
            "serve",
            "--bootstrap-if-first",
            "true",
            "--node-id-from-hostname",
            "false",
            "--join",
            "a:5001,b:5001",
        ])
        .unwrap();
        let Some(Commands::Serve(args)) = cli.command else { panic!("serve expected") };
        let config = args.into_config().unwrap();
        assert!(config.bootstrap_if_first);
        assert!(!config.node_id_from_hostname);
        assert_eq!(config.join, ["a:5001", "b:5001"]);
    }
}
