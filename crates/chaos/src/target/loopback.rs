//! A cluster of `flotilla` processes on this machine's loopback addresses.
//!
//! Each node listens on, and sends from, an address of its own (127.1.x.y;
//! see `flotilla_cluster_tests::sandbox`), so iptables rules on address pairs
//! cut exactly one link while the workload (from 127.0.0.1) still reaches
//! every node. With `disk_bytes` each data directory is a tmpfs of that size,
//! which a filler file can take to the last byte. A clock shift needs
//! libfaketime (Debian's `faketime` package): each node is then started with
//! it preloaded, reading its offset from a file of its own.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use flotilla_cluster_tests::faults::{self, Partition};
use flotilla_cluster_tests::sandbox::LIBFAKETIME;
use flotilla_cluster_tests::{Credentials, Sandbox};

use super::Target;
use crate::schedule::FaultKind;

/// The filler file [`Target::fill_disk`] writes in a data directory.
const FILLER: &str = "chaos-disk-filler";

/// How to start a loopback cluster.
#[derive(Debug, Clone)]
pub struct LoopbackOptions {
    pub nodes: usize,
    /// Extra `flotilla serve` arguments for every node.
    pub node_args: Vec<String>,
    /// A tmpfs of this size per data directory (needs root); `None`: plain directories.
    pub disk_bytes: Option<u64>,
    /// Preload libfaketime so clocks can be shifted (if it is installed).
    pub fake_clocks: bool,
}

/// The loopback cluster and the faults in place.
pub struct Loopback {
    sandbox: Sandbox,
    network: Partition,
    network_faults: bool,
    /// Nodes a fault killed (the others that are not running exited on their own).
    killed: BTreeSet<usize>,
    /// The directory of each node's clock offset file (`offset-<node>`).
    clocks: Option<PathBuf>,
    replication_factor: usize,
    /// The nodes faults and clients use: the first ones of the sandbox.
    nodes: usize,
    /// The sandbox index of the spare ([`Target::add_spare`]), once started.
    spare: Option<usize>,
}

impl Loopback {
    /// Starts `options.nodes` nodes and waits until they form one cluster.
    pub fn start(options: &LoopbackOptions) -> anyhow::Result<Loopback> {
        let voters = options.nodes.min(5);
        let mut builder = Sandbox::builder()
            .nodes(options.nodes)
            .env("FLOTILLA_VOTERS", voters.to_string())
            .ready_timeout(Duration::from_secs(120));
        for arg in &options.node_args {
            builder = builder.arg(arg.clone());
        }
        if let Some(bytes) = options.disk_bytes {
            builder = builder.data_dir_tmpfs(bytes);
        }
        let clocks = if options.fake_clocks && Path::new(LIBFAKETIME).exists() {
            let dir = tempfile::Builder::new().prefix("flotilla-chaos-clock-").tempdir()?.keep();
            for node in 0..options.nodes {
                std::fs::write(dir.join(format!("offset-{node}")), "+0\n")?;
            }
            builder = builder.faked_clocks(&dir);
            Some(dir)
        } else {
            None
        };
        let sandbox = builder.build()?;
        sandbox.wait_until_formed(voters, Duration::from_secs(120))?;
        let replication_factor = options.nodes.min(3);
        Ok(Loopback {
            sandbox,
            network: Partition::new(),
            network_faults: faults::available(),
            killed: BTreeSet::new(),
            clocks,
            replication_factor,
            nodes: options.nodes,
            spare: None,
        })
    }

    /// The processes.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    fn filler(&self, node: usize) -> PathBuf {
        self.sandbox.node(node).data_dir().join(FILLER)
    }
}

impl Target for Loopback {
    fn nodes(&self) -> usize {
        self.nodes
    }

    fn base_url(&self, node: usize) -> String {
        self.sandbox.node(node).base_url()
    }

    fn credentials(&self) -> Credentials {
        self.sandbox.admin_credentials()
    }

    fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    fn supports(&self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Kill | FaultKind::Pause => Ok(()),
            FaultKind::Isolate | FaultKind::Split | FaultKind::Bridge | FaultKind::OneWay | FaultKind::Loss => {
                if self.network_faults {
                    Ok(())
                } else {
                    Err("iptables is not usable here (needs root)".into())
                }
            }
            FaultKind::DiskFull => {
                if self.sandbox.nodes().iter().all(|node| is_own_filesystem(node.data_dir())) {
                    Ok(())
                } else {
                    Err("the data directories share a disk (start with --disk-mib)".into())
                }
            }
            FaultKind::ClockJump => match self.clocks {
                Some(_) => Ok(()),
                None => Err(format!("libfaketime is not at {LIBFAKETIME} (apt install faketime)")),
            },
        }
    }

    fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        self.sandbox.node(node).kill9();
        self.killed.insert(node);
        Ok(())
    }

    fn start(&mut self, node: usize) -> anyhow::Result<()> {
        self.killed.remove(&node);
        self.sandbox.node(node).restart()
    }

    fn revive(&mut self) -> anyhow::Result<Vec<usize>> {
        let exited: Vec<usize> = (0..self.nodes())
            .filter(|node| !self.killed.contains(node) && !self.sandbox.node(*node).is_running())
            .collect();
        for &node in &exited {
            self.sandbox.node(node).restart()?;
        }
        Ok(exited)
    }

    fn pause(&mut self, node: usize) -> anyhow::Result<()> {
        self.sandbox.node(node).pause()
    }

    fn resume(&mut self, node: usize) -> anyhow::Result<()> {
        self.sandbox.node(node).resume()
    }

    fn cut(&mut self, from: usize, to: usize) -> anyhow::Result<()> {
        self.network.cut(self.sandbox.node(from).ip(), self.sandbox.node(to).ip())
    }

    fn lossy(&mut self, from: usize, to: usize, probability: f64) -> anyhow::Result<()> {
        self.network.lossy(self.sandbox.node(from).ip(), self.sandbox.node(to).ip(), probability)
    }

    fn heal_network(&mut self) -> anyhow::Result<()> {
        std::mem::take(&mut self.network).heal();
        Ok(())
    }

    fn fill_disk(&mut self, node: usize) -> anyhow::Result<()> {
        fill(&self.filler(node))
    }

    fn free_disk(&mut self, node: usize) -> anyhow::Result<()> {
        match std::fs::remove_file(self.filler(node)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    fn shift_clock(&mut self, node: usize, seconds: i64) -> anyhow::Result<()> {
        let dir = self.clocks.as_ref().context("clocks are not faked")?;
        std::fs::write(dir.join(format!("offset-{node}")), format!("{seconds:+}\n"))?;
        Ok(())
    }

    fn add_spare(&mut self) -> anyhow::Result<u64> {
        anyhow::ensure!(self.spare.is_none(), "the spare was started already");
        if let Some(dir) = &self.clocks {
            // Its clock stays true, but libfaketime is preloaded into it too.
            std::fs::write(dir.join(format!("offset-{}", self.sandbox.nodes().len())), "+0\n")?;
        }
        // Joins through every node; with FLOTILLA_VOTERS set to the first
        // nodes' count it stays a non-voting storage node.
        self.sandbox.add_node().context("starting the spare")?;
        let index = self.sandbox.nodes().len() - 1;
        self.spare = Some(index);
        Ok(index as u64 + 1)
    }

    fn supports_spare(&self) -> Result<(), String> {
        Ok(())
    }

    fn stop_spare(&mut self) -> anyhow::Result<()> {
        if let Some(index) = self.spare {
            self.sandbox.node(index).kill9();
        }
        Ok(())
    }

    fn copies(&self, digest: &str) -> anyhow::Result<usize> {
        Ok(self.sandbox.nodes()[..self.nodes].iter().filter(|node| node.blob_path(digest).is_file()).count())
    }

    fn log_tails(&self, lines: usize) -> String {
        self.sandbox.log_tails(lines)
    }
}

/// Whether `dir` is a mount point (a disk of its own).
fn is_own_filesystem(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(own), Some(Ok(parent))) => own.dev() != parent.dev(),
        _ => false,
    }
}

/// Writes `path` until its filesystem has no byte left.
fn fill(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("a filler needs a directory")?;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut chunk = free_bytes(dir)?;
    let mut offset: u64 = 0;
    while chunk >= 4096 {
        // SAFETY: a valid open file descriptor and non-negative offsets.
        let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as libc::off_t, chunk as libc::off_t) };
        if result == 0 {
            offset += chunk;
        } else {
            chunk /= 2;
        }
    }
    if free_bytes(dir)? > 1 << 20 {
        bail!("{} still has {} bytes free", dir.display(), free_bytes(dir)?);
    }
    Ok(())
}

fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs writes into the zeroed struct it is given.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("statvfs {}", dir.display()));
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}
