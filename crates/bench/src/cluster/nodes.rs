//! The cluster's processes: `flotilla serve` once per node, node `k` on its
//! own loopback address `127.0.0.(k+1)` with fresh ports, its data directory
//! and log under the work dir. Node 1 bootstraps the cluster, the others
//! `--join` its RPC address. Nodes can be killed with SIGKILL and restarted
//! with the same flags and data; all of them die with the benchmark.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use super::state::Admin;
use crate::cpu_limit::CpuCgroup;
use crate::registry::{die_with_parent, read_tail, ADMIN_PASSWORD};

/// Pause between readiness probes.
const READY_POLL: Duration = Duration::from_millis(100);
/// Attempts at restarting a node whose ports are briefly still held.
const RESTART_ATTEMPTS: u32 = 5;
/// Pause before another restart attempt.
const RESTART_PAUSE: Duration = Duration::from_millis(500);
/// Attempts at finding three ports free for both TCP and UDP on one address.
const PORT_ATTEMPTS: u32 = 20;

/// Where one node listens.
#[derive(Debug, Clone, Copy)]
pub struct NodeAddrs {
    pub http: SocketAddr,
    pub rpc: SocketAddr,
    pub gossip: SocketAddr,
}

/// One `flotilla serve` process (or its slot while it is killed).
pub struct ClusterNode {
    pub id: u64,
    pub addrs: NodeAddrs,
    /// `http://127.0.0.x:port`.
    pub base_url: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<OsString>,
    child: Option<Child>,
    /// With `--node-cpus`: the cgroup every run of this node is put in.
    cgroup: Option<CpuCgroup>,
}

impl ClusterNode {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The last few KiB of the node's log (every run of it, appended).
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path).unwrap_or_else(|error| format!("(log unreadable: {error})"))
    }
}

/// How every node of a [`LocalCluster`] is run.
#[derive(Debug, Clone)]
pub struct NodeLaunch {
    pub binary: PathBuf,
    /// Flags every node gets besides its own.
    pub extra_args: Vec<OsString>,
    /// Warning-level logs only.
    pub quiet_logs: bool,
    /// How long a node may take to become ready.
    pub ready_timeout: Duration,
    /// Cores each node may use (a cgroup per node), or unlimited.
    pub cpus: Option<f64>,
}

/// The running cluster; every node is killed when it is dropped.
pub struct LocalCluster {
    pub nodes: Vec<ClusterNode>,
    pub admin: Admin,
    launch: NodeLaunch,
    root: PathBuf,
    /// Voters the cluster keeps: the nodes of `start`; later ones are storage nodes.
    voters: u64,
}

impl LocalCluster {
    /// Starts `count` nodes under `root` one after the other, each once its
    /// `/readyz` answers 200 (formation is [`super::state::wait_formed`]'s job).
    pub async fn start(launch: NodeLaunch, count: u64, root: &Path) -> anyhow::Result<Self> {
        let mut cluster =
            LocalCluster { nodes: Vec::new(), admin: Admin::new()?, launch, root: root.to_owned(), voters: count };
        for _ in 0..count {
            cluster.add_node().await?;
        }
        Ok(cluster)
    }

    /// Starts one more node, joining through node 1 (beyond the voters it is a
    /// storage node); its id once its `/readyz` answers 200.
    pub async fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.nodes.len() as u64 + 1;
        let addrs = free_addrs(node_ip(id)).with_context(|| format!("finding ports on {}", node_ip(id)))?;
        let dir = self.root.join(format!("node-{id}"));
        let data_dir = dir.join("data");
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let join = self.nodes.first().map(|first: &ClusterNode| first.addrs.rpc);
        let mut args = serve_args(id, &data_dir, addrs, self.voters, join);
        args.extend(self.launch.extra_args.iter().cloned());
        let cgroup = match self.launch.cpus {
            Some(cores) => Some(CpuCgroup::create(&format!("flotilla-bench-{}-node-{id}", std::process::id()), cores)?),
            None => None,
        };
        self.nodes.push(ClusterNode {
            id,
            addrs,
            base_url: format!("http://{}", addrs.http),
            data_dir,
            log_path: dir.join("node.log"),
            args,
            child: None,
            cgroup,
        });
        self.spawn(id)?;
        self.wait_ready(id).await?;
        Ok(id)
    }

    /// How long a node may take to become ready.
    pub fn ready_timeout(&self) -> Duration {
        self.launch.ready_timeout
    }

    pub fn node(&self, id: u64) -> &ClusterNode {
        &self.nodes[index(id)]
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    /// The nodes started as voters (nodes added later are storage nodes).
    pub fn voter_ids(&self) -> Vec<u64> {
        self.ids().into_iter().filter(|id| *id <= self.voters).collect()
    }

    /// Sends SIGKILL to node `id` and reaps it; the instant the signal was sent.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<Instant> {
        let node = &mut self.nodes[index(id)];
        let mut child = node.child.take().with_context(|| format!("node {id} is not running"))?;
        // `Child::kill` is SIGKILL on Unix.
        child.kill().with_context(|| format!("killing node {id}"))?;
        let killed_at = Instant::now();
        child.wait().with_context(|| format!("reaping node {id}"))?;
        Ok(killed_at)
    }

    /// Starts node `id` again with its flags and data directory, until its
    /// `/readyz` answers 200 (retrying while its old ports are still held).
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            self.spawn(id)?;
            match self.wait_ready(id).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < RESTART_ATTEMPTS && !self.nodes[index(id)].is_running() => {
                    super::progress(format!("  node {id} exited on restart (attempt {attempt}): {error:#}; again"));
                    tokio::time::sleep(RESTART_PAUSE).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Fails, quoting its log, if a node that should run has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                if let Some(status) = child.try_wait()? {
                    node.child = None;
                    bail!("node {} exited with {status}; its log ends:\n{}", node.id, node.log_tail());
                }
            }
        }
        Ok(())
    }

    /// Every node's log tail, for an error message.
    pub fn log_tails(&self) -> String {
        self.nodes.iter().map(|node| format!("--- node {} log ---\n{}\n", node.id, node.log_tail())).collect()
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let node = &mut self.nodes[index(id)];
        ensure!(node.child.is_none(), "node {id} is already running");
        let log = OpenOptions::new().create(true).append(true).open(&node.log_path)?;
        let mut command = Command::new(&self.launch.binary);
        command
            .args(&node.args)
            .env("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.launch.quiet_logs {
            command.env("RUST_LOG", "warn");
        }
        die_with_parent(&mut command);
        if let Some(cgroup) = &node.cgroup {
            cgroup.join_on_exec(&mut command).with_context(|| format!("limiting node {id}'s CPU"))?;
        }
        let child = command.spawn().with_context(|| format!("starting node {id}: {command:?}"))?;
        node.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self, id: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.launch.ready_timeout;
        let url = format!("{}/readyz", self.nodes[index(id)].base_url);
        while Instant::now() < deadline {
            let node = &mut self.nodes[index(id)];
            let child = node.child.as_mut().with_context(|| format!("node {id} is not running"))?;
            if let Some(status) = child.try_wait()? {
                node.child = None;
                bail!("node {id} exited with {status} before becoming ready; its log ends:\n{}", node.log_tail());
            }
            if self.admin.ready(&url).await {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL).await;
        }
        bail!(
            "node {id} not ready on {url} within {:?}; its log ends:\n{}",
            self.launch.ready_timeout,
            self.node(id).log_tail()
        )
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Node `id`'s own loopback address (node 1 on 127.0.0.2, …).
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + id as u8)
}

/// The slot of node `id` (ids start at 1).
fn index(id: u64) -> usize {
    id as usize - 1
}

/// `flotilla serve` flags of node `id` of a `voters`-node cluster; every node
/// but the first joins through `join`.
fn serve_args(id: u64, data_dir: &Path, addrs: NodeAddrs, voters: u64, join: Option<SocketAddr>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["serve".into(), "--node-id".into(), id.to_string().into()];
    args.extend(["--data-dir".into(), data_dir.as_os_str().to_owned()]);
    for (flag, addr) in [("--http-addr", addrs.http), ("--rpc-addr", addrs.rpc), ("--gossip-addr", addrs.gossip)] {
        args.extend([flag.into(), addr.to_string().into()]);
    }
    args.extend(["--voters".into(), voters.to_string().into()]);
    if let Some(join) = join {
        args.extend(["--join".into(), join.to_string().into()]);
    }
    args
}

/// Three distinct ports on `ip` free for TCP at the time of asking (held
/// together), the third also free for UDP (gossip).
fn free_addrs(ip: Ipv4Addr) -> anyhow::Result<NodeAddrs> {
    for _ in 0..PORT_ATTEMPTS {
        let listeners = [TcpListener::bind((ip, 0))?, TcpListener::bind((ip, 0))?, TcpListener::bind((ip, 0))?];
        let [http, rpc, gossip] = [0, 1, 2].map(|slot| listeners[slot].local_addr());
        let (http, rpc, gossip) = (http?, rpc?, gossip?);
        if UdpSocket::bind(gossip).is_ok() {
            return Ok(NodeAddrs { http, rpc, gossip });
        }
    }
    bail!("no free TCP+UDP port on {ip} after {PORT_ATTEMPTS} attempts")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|arg| arg.to_str().unwrap()).collect()
    }

    #[test]
    fn serve_args_join_all_but_the_first() {
        let addrs = NodeAddrs {
            http: "127.0.0.3:1000".parse().unwrap(),
            rpc: "127.0.0.3:1001".parse().unwrap(),
            gossip: "127.0.0.3:1002".parse().unwrap(),
        };
        let first = serve_args(1, Path::new("/w/node-1/data"), addrs, 3, None);
        assert_eq!(
            strings(&first),
            [
                "serve",
                "--node-id",
                "1",
                "--data-dir",
                "/w/node-1/data",
                "--http-addr",
                "127.0.0.3:1000",
                "--rpc-addr",
                "127.0.0.3:1001",
                "--gossip-addr",
                "127.0.0.3:1002",
                "--voters",
                "3"
            ]
        );
        let second = serve_args(2, Path::new("/d"), addrs, 5, Some("127.0.0.2:7000".parse().unwrap()));
        assert_eq!(strings(&second)[11..], ["--voters", "5", "--join", "127.0.0.2:7000"]);
    }

    #[test]
    fn each_node_has_its_own_loopback_address() {
        assert_eq!(node_ip(1), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(node_ip(5), Ipv4Addr::new(127, 0, 0, 6));
        let addrs = free_addrs(node_ip(3)).unwrap();
        assert_eq!(addrs.http.ip(), node_ip(3));
        assert!(addrs.http != addrs.rpc && addrs.rpc != addrs.gossip && addrs.http != addrs.gossip);
    }
}
