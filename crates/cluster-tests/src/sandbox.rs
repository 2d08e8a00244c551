//! Real `flotilla` processes on loopback ports with temporary data directories.
//!
//! ```no_run
//! use flotilla_cluster_tests::Sandbox;
//! let sandbox = Sandbox::builder().nodes(1).build().unwrap();
//! let registry = sandbox.client();
//! assert_eq!(registry.ping().unwrap().status, 200);
//! ```
//!
//! Each node's stdout and stderr go to `node-<n>.log` in the sandbox directory;
//! a sandbox dropped while its thread panics prints the tail of every log.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::client::{Credentials, OciClient};
use crate::spawner::spawn_tied_to_process;
use crate::wait;

/// The account the sandbox creates through `FLOTILLA_ADMIN_PASSWORD`.
pub const ADMIN_USER: &str = "admin";
/// Sandbox directories are `<tmp>/flotilla-sandbox-<pid of the test process>-<random>`.
const SANDBOX_DIR_PREFIX: &str = "flotilla-sandbox-";
/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;
/// Where Debian's `faketime` package (installed by `scripts/deps.sh`) puts
/// libfaketime, which [`SandboxBuilder::faked_clocks`] preloads.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// How many times a node start is retried on fresh ports when its port was taken
/// between being picked and being bound.
const PORT_RETRIES: usize = 4;

/// Configures a [`Sandbox`]; see [`Sandbox::builder`].
#[derive(Debug, Clone)]
pub struct SandboxBuilder {
    nodes: usize,
    env: Vec<(String, String)>,
    args: Vec<String>,
    admin_password: String,
    ready_timeout: Duration,
    /// HTTP, RPC and gossip addresses for a one-node sandbox, instead of fresh ones.
    addresses: Option<[SocketAddr; 3]>,
    /// Each data directory is a tmpfs of this many bytes (a disk of its own).
    data_dir_bytes: Option<u64>,
}

impl SandboxBuilder {
    /// Number of nodes (default 1). Node `n` gets `--node-id n`; nodes after the
    /// first are started with `--join` pointing at the first node's RPC address.
    pub fn nodes(mut self, nodes: usize) -> Self {
        assert!(nodes >= 1, "a sandbox needs at least one node");
        self.nodes = nodes;
        self
    }

    /// An extra environment variable for every node; `{node}` in the value
    /// becomes the node's index.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// An extra `flotilla serve` argument for every node.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the (single) node on the addresses `node` had, so that peers
    /// of `node` reach this one instead (a reused address).
    pub fn reuse_addresses_of(mut self, node: &Node) -> Self {
        self.addresses = Some([node.http_addr, node.rpc_addr, node.gossip_addr]);
        self
    }

    /// The admin password (default: a random one).
    pub fn admin_password(mut self, password: impl Into<String>) -> Self {
        self.admin_password = password.into();
        self
    }

    /// How long each node may take to answer `/readyz` with 200 (default 90 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Preloads [`LIBFAKETIME`] into every node: node `n`'s wall clock is
    /// offset by what the file `offset-<n>` in `dir` says (`+0`, `-7200`, …;
    /// re-read every second, so a test may move it), while its monotonic
    /// clock stays true.
    pub fn faked_clocks(self, dir: &Path) -> Self {
        self.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", dir.join("offset-{node}").display().to_string())
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    }

    /// Gives every node a disk of its own: a tmpfs of `bytes` mounted on its
    /// data directory (needs root), so that one node's disk can fill up.
    pub fn data_dir_tmpfs(mut self, bytes: u64) -> Self {
        self.data_dir_bytes = Some(bytes);
        self
    }

    /// Starts every node and waits until each is ready.
    pub fn build(self) -> anyhow::Result<Sandbox> {
        let binary = locate_binary()?;
        remove_stale_sandbox_dirs();
        let prefix = format!("{SANDBOX_DIR_PREFIX}{}-", std::process::id());
        let root = tempfile::Builder::new().prefix(&prefix).tempdir().context("creating the sandbox dir")?;
        let mut sandbox = Sandbox {
            nodes: Vec::new(),
            builder: None,
            admin_password: self.admin_password.clone(),
            logs_printed: AtomicBool::new(false),
            root,
        };
        for _ in 0..self.nodes {
            sandbox.start_node(&self, &binary)?;
        }
        sandbox.builder = Some((self, binary));
        Ok(sandbox)
    }
}

/// Running `flotilla` nodes; every child is killed when the sandbox is dropped
/// (and, through the parent-death signal, when the test process ends).
pub struct Sandbox {
    nodes: Vec<Node>,
    /// How the nodes were started, for [`Sandbox::add_node`].
    builder: Option<(SandboxBuilder, PathBuf)>,
    admin_password: String,
    logs_printed: AtomicBool,
    // Declared last: dropped after the nodes are killed.
    root: tempfile::TempDir,
}

impl Sandbox {
    /// A builder for one node with a random admin password.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            nodes: 1,
            env: Vec::new(),
            args: Vec::new(),
            admin_password: format!("pw-{}", hex::encode(rand::random::<[u8; 8]>())),
            ready_timeout: Duration::from_secs(90),
            addresses: None,
            data_dir_bytes: None,
        }
    }

    /// Starts one more node that joins through every existing node.
    pub fn add_node(&mut self) -> anyhow::Result<&Node> {
        let (builder, binary) = self.builder.clone().context("the sandbox was not built")?;
        self.start_node(&builder, &binary)?;
        Ok(self.nodes.last().expect("just added"))
    }

    /// Starts one more node like [`Sandbox::add_node`], but with `args`
    /// instead of the sandbox's extra arguments and its own ready timeout.
    pub fn add_node_with(&mut self, args: &[&str], ready_timeout: Duration) -> anyhow::Result<&Node> {
        let (mut builder, binary) = self.builder.clone().context("the sandbox was not built")?;
        builder.args = args.iter().map(|arg| arg.to_string()).collect();
        builder.ready_timeout = ready_timeout;
        self.start_node(&builder, &binary)?;
        Ok(self.nodes.last().expect("just added"))
    }

    fn start_node(&mut self, builder: &SandboxBuilder, binary: &Path) -> anyhow::Result<()> {
        let index = self.nodes.len();
        let join: Vec<SocketAddr> = self.nodes.iter().map(|node| node.rpc_addr).collect();
        let clustered = builder.nodes > 1 || index > 0;
        let node = Node::start_new(builder, binary, self.root.path(), index, join, clustered)?;
        self.nodes.push(node);
        Ok(())
    }

    /// Node `index` (0-based).
    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    /// All nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The admin password every node was started with.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// Basic credentials of the admin account.
    pub fn admin_credentials(&self) -> Credentials {
        Credentials::Basic { user: ADMIN_USER.into(), password: self.admin_password.clone() }
    }

    /// An OCI client for the first node, authenticated as admin.
    pub fn client(&self) -> OciClient {
        self.node(0).client(self.admin_credentials())
    }

    /// The sandbox's temporary directory (data dirs and logs).
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// The last `lines` lines of every node's log, headed by the node's name.
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes.iter().map(|node| node.log_tail(lines)).collect()
    }

    /// Prints the tail of every node's log to stderr (shown by the test harness
    /// only for failed tests).
    pub fn print_logs(&self) {
        self.logs_printed.store(true, Ordering::SeqCst);
        eprintln!("{}", self.log_tails(LOG_TAIL_LINES));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.logs_printed.load(Ordering::SeqCst) {
            self.print_logs();
        }
        for node in &self.nodes {
            node.kill9();
            if node.data_dir_mounted {
                let _ = Command::new("umount").arg("--lazy").arg(&node.data_dir).status();
            }
        }
    }
}

/// One `flotilla serve` process and everything needed to restart it.
pub struct Node {
    index: usize,
    http_addr: SocketAddr,
    rpc_addr: SocketAddr,
    gossip_addr: SocketAddr,
    data_dir: PathBuf,
    /// Whether `data_dir` is a tmpfs of its own ([`SandboxBuilder::data_dir_tmpfs`]).
    data_dir_mounted: bool,
    log_path: PathBuf,
    command_line: CommandLine,
    /// Environment set for this node alone from its next start on ([`Node::set_env`]).
    own_env: Mutex<Vec<(String, String)>>,
    child: Mutex<Option<Child>>,
}

/// What is needed to (re)start a node.
#[derive(Debug, Clone)]
struct CommandLine {
    binary: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    join: Vec<SocketAddr>,
    node_id: Option<usize>,
    ready_timeout: Duration,
}

impl Node {
    fn start_new(
        builder: &SandboxBuilder,
        binary: &Path,
        root: &Path,
        index: usize,
        join: Vec<SocketAddr>,
        clustered: bool,
    ) -> anyhow::Result<Node> {
        let mut env = vec![
            ("FLOTILLA_ADMIN_PASSWORD".to_owned(), builder.admin_password.clone()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            // Logs go to a file that is printed into test output: no ANSI colours.
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        env.extend(builder.env.iter().map(|(key, value)| (key.clone(), value.replace("{node}", &index.to_string()))));
        let command_line = CommandLine {
            binary: binary.to_owned(),
            env,
            args: builder.args.clone(),
            join,
            node_id: clustered.then_some(index + 1),
            ready_timeout: builder.ready_timeout,
        };
        let mut last_error = None;
        let ip = next_loopback_ip();
        for _attempt in 0..PORT_RETRIES {
            let [http_addr, rpc_addr, gossip_addr] = match builder.addresses {
                Some(addresses) => addresses,
                None => free_loopback_addrs(ip)?,
            };
            let data_dir = root.join(format!("node-{index}"));
            if data_dir.exists() {
                if builder.data_dir_bytes.is_some() {
                    // A previous attempt's tmpfs.
                    let _ = Command::new("umount").arg(&data_dir).status();
                }
                std::fs::remove_dir_all(&data_dir)?;
            }
            std::fs::create_dir_all(&data_dir)?;
            if let Some(bytes) = builder.data_dir_bytes {
                mount_tmpfs(&data_dir, bytes)?;
            }
            let node = Node {
                index,
                http_addr,
                rpc_addr,
                gossip_addr,
                data_dir_mounted: builder.data_dir_bytes.is_some(),
                data_dir,
                log_path: root.join(format!("node-{index}.log")),
                command_line: command_line.clone(),
                own_env: Mutex::new(Vec::new()),
                child: Mutex::new(None),
            };
            match node.start() {
                Ok(()) => return Ok(node),
                Err(error) if format!("{error:#}").contains("in use") => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.expect("at least one attempt")).context("every attempt hit a port already in use")
    }

    /// `127.0.0.1:<port>` of the HTTP surface.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `127.0.0.1:<port>` of the gRPC (Raft) surface.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// `127.0.0.1:<port>` of the gossip surface.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    /// `host:port` as a registry reference spells it (`127.0.0.1:5000`).
    pub fn host(&self) -> String {
        self.http_addr.to_string()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The node's data directory, kept across [`Node::restart`].
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the node keeps its copy of a `sha256:` blob (whether or not it has one).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.data_dir.join("blobs/blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// The file receiving the node's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// An OCI client for this node.
    pub fn client(&self, credentials: Credentials) -> OciClient {
        OciClient::new(&self.base_url(), credentials)
    }

    /// Whether the process is running (it has not exited or been killed).
    pub fn is_running(&self) -> bool {
        match self.child_slot().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The node's own loopback address (every port of it listens there).
    pub fn ip(&self) -> IpAddr {
        self.http_addr.ip()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child_slot().as_ref().map(Child::id)
    }

    /// Freezes the process (SIGSTOP): alive but silent, like a long GC pause.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("the node is not running")?;
        let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
        Ok(())
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child_slot().take() {
            let _ = child.kill();
            // A paused process dies of SIGKILL too; nothing to resume.
            let _ = child.wait();
        }
    }

    /// Sets an environment variable for this node alone, from its next
    /// (re)start on: one node of a cluster with another setting, such as
    /// a newer supported model version during an upgrade.
    pub fn set_env(&self, key: &str, value: &str) {
        let mut own = self.own_env.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        own.retain(|(existing, _)| existing != key);
        own.push((key.to_owned(), value.to_owned()));
    }

    /// Kills the process if it is running, then starts it again on the same
    /// ports and data directory and waits until it is ready.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.kill9();
        self.start()
    }

    /// The last `lines` lines of the node's log under a header.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "----- flotilla node {} ({}) log: {} -----\n{tail}\n",
            self.index,
            self.http_addr,
            self.log_path.display()
        )
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn child_slot(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn start(&self) -> anyhow::Result<()> {
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        writeln!(log, "===== sandbox: starting {} =====", self.describe())?;
        let log_offset = log.seek(SeekFrom::End(0))?;
        let command = self.command(&log)?;
        let child = spawn_tied_to_process(command)
            .with_context(|| format!("starting {}", self.command_line.binary.display()))?;
        *self.child_slot() = Some(child);
        self.wait_ready(log_offset)
    }

    fn command(&self, log: &File) -> anyhow::Result<Command> {
        let line = &self.command_line;
        let mut command = Command::new(&line.binary);
        command.arg("serve");
        command.arg("--data-dir").arg(&self.data_dir);
        command.arg("--http-addr").arg(self.http_addr.to_string());
        command.arg("--rpc-addr").arg(self.rpc_addr.to_string());
        command.arg("--gossip-addr").arg(self.gossip_addr.to_string());
        if let Some(node_id) = line.node_id {
            command.arg("--node-id").arg(node_id.to_string());
        }
        if !line.join.is_empty() {
            let members: Vec<String> = line.join.iter().map(SocketAddr::to_string).collect();
            command.arg("--join").arg(members.join(","));
        }
        command.args(&line.args);
        // Settings of the developer's shell must not leak into a sandbox.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLOTILLA_") {
                command.env_remove(key);
            }
        }
        command.envs(line.env.iter().map(|(k, v)| (k, v)));
        command.envs(self.own_env.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone());
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log.try_clone()?);
        Ok(command)
    }

    fn wait_ready(&self, log_offset: u64) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.base_url());
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
        let poll = Duration::from_millis(50);
        let waited =
            wait::until_some("the node to answer /readyz with 200", self.command_line.ready_timeout, poll, || {
                if let Some(child) = self.child_slot().as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Ok(Some(Err(status)));
                    }
                }
                match http.get(&url).send() {
                    Ok(response) if response.status() == 200 => Ok(Some(Ok(()))),
                    Ok(response) => Err(format!("/readyz answered {}", response.status())),
                    Err(error) => Err(error.to_string()),
                }
            });
        let failure = match waited {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(status)) => format!("{} exited with {status} before it was ready", self.describe()),
            Err(timeout) => {
                self.kill9();
                format!("{}: {timeout:#}", self.describe())
            }
        };
        let log = self.log_text();
        let since_start = log.get(log_offset as usize..).unwrap_or(&log);
        bail!("{failure}\n----- its log -----\n{since_start}")
    }

    fn describe(&self) -> String {
        format!(
            "node {} (http {}, rpc {}, gossip {}, data {})",
            self.index,
            self.http_addr,
            self.rpc_addr,
            self.gossip_addr,
            self.data_dir.display()
        )
    }
}

fn mount_tmpfs(dir: &Path, bytes: u64) -> anyhow::Result<()> {
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .output()
        .context("running mount")?;
    anyhow::ensure!(
        output.status.success(),
        "mounting a tmpfs on {} (needs root): {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `FLOTILLA_BIN`, else `flotilla` next to the directory holding the test
/// executable (`target/debug/deps/it-…` → `target/debug/flotilla`).
pub fn locate_binary() -> anyhow::Result<PathBuf> {
    let (binary, origin) = match std::env::var_os("FLOTILLA_BIN") {
        Some(path) => (PathBuf::from(path), "FLOTILLA_BIN"),
        None => {
            let exe = std::env::current_exe().context("locating the test executable")?;
            let profile_dir = exe.parent().and_then(Path::parent).context("test executable has no grandparent dir")?;
            (profile_dir.join("flotilla"), "the test executable's target dir")
        }
    };
    if !binary.is_file() {
        bail!(
            "the flotilla binary was not found at {} (from {origin}). Build it first with \
             `cargo build -p flotilla-node --bin flotilla` (scripts/test.sh does), or set FLOTILLA_BIN.",
            binary.display()
        );
    }
    Ok(binary)
}

/// A loopback address of its own for each node this process starts
/// (127.1.x.y), so that network rules can single out one node's traffic
/// (see [`crate::faults`]); nodes send inter-node traffic from it too.
fn next_loopback_ip() -> IpAddr {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    IpAddr::V4(Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 2) as u8))
}

/// Three distinct free ports on `ip`, picked by binding port 0. The
/// listeners are closed before the node binds, so a race is possible; the
/// caller retries on "address in use".
fn free_loopback_addrs(ip: IpAddr) -> anyhow::Result<[SocketAddr; 3]> {
    let listeners = [bind_any(ip)?, bind_any(ip)?, bind_any(ip)?];
    Ok([listeners[0].local_addr()?, listeners[1].local_addr()?, listeners[2].local_addr()?])
}

fn bind_any(ip: IpAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind((ip, 0)).with_context(|| format!("binding a free port on {ip}"))
}

/// Removes sandbox directories left by test processes that are gone. Sandboxes
/// shared through statics are never dropped, so their directories outlive the
/// process; the next run cleans them up.
fn remove_stale_sandbox_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(SANDBOX_DIR_PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
