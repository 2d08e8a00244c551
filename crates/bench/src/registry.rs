//! Starting, probing and stopping the registry processes: `flotilla serve` and
//! `docker-registry serve`, each on fresh loopback ports with a fresh data
//! directory, logs in a file beside it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::cli::{Plan, Target};
use crate::cpu_limit::CpuCgroup;

/// The account both registries are sent (docker-registry ignores it).
pub const ADMIN_USER: &str = "admin";
/// Flotilla's admin password, set through `FLOTILLA_ADMIN_PASSWORD`.
pub const ADMIN_PASSWORD: &str = "bench";
/// Pause between readiness probes.
const READY_POLL: Duration = Duration::from_millis(100);
/// Deadline of one readiness probe.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of a registry's log quoted when it fails to start.
const LOG_TAIL_BYTES: u64 = 4096;

/// A running registry process, killed when dropped.
pub struct RunningRegistry {
    pub target: Target,
    pub base_url: String,
    log_path: PathBuf,
    child: Child,
    /// With `--registry-cpus`: the cgroup the process runs in; removed after
    /// the process (fields drop after `Drop::drop` killed it).
    _cgroup: Option<CpuCgroup>,
}

impl RunningRegistry {
    /// Starts `target` under `root/<name>/` and waits until it is ready.
    pub async fn start(target: Target, plan: &Plan, root: &Path) -> anyhow::Result<Self> {
        let dir = root.join(target.name());
        let data_dir = dir.join("data");
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let log_path = dir.join("registry.log");
        let ports = free_ports()?;
        let http_port = ports[0];
        let mut command = match target {
            Target::Flotilla => flotilla_command(plan, &data_dir, ports),
            Target::DockerRegistry => docker_registry_command(plan, &dir, &data_dir, http_port)?,
        };
        let cgroup = match plan.registry_cpus {
            Some(cores) => Some(limit_cpu(&mut command, target, cores)?),
            None => None,
        };
        let log = File::create(&log_path)?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        die_with_parent(&mut command);
        let child = command.spawn().with_context(|| format!("starting {command:?}"))?;
        let base_url = format!("http://127.0.0.1:{http_port}");
        let mut registry = RunningRegistry { target, base_url, log_path, child, _cgroup: cgroup };
        registry.wait_ready(plan.ready_timeout()).await?;
        Ok(registry)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last few KiB of the registry's log.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path).unwrap_or_else(|error| format!("(log unreadable: {error})"))
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let path = match self.target {
            Target::Flotilla => "/readyz",
            Target::DockerRegistry => "/v2/",
        };
        let url = format!("{}{path}", self.base_url);
        let probe = reqwest::Client::builder().timeout(READY_PROBE_TIMEOUT).build()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before becoming ready:\n{}", self.target.name(), self.log_tail());
            }
            if probe.get(&url).send().await.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL).await;
        }
        bail!("{} not ready on {url} within {timeout:?}:\n{}", self.target.name(), self.log_tail())
    }
}

impl Drop for RunningRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts the process `command` starts in a cgroup of its own limited to
/// `cores`. Flotilla sizes its runtime from the quota by itself (Rust's
/// `available_parallelism` reads it); Go before 1.25 does not, so
/// docker-registry is told with `GOMAXPROCS`, as its operators would in a
/// container of that size.
fn limit_cpu(command: &mut Command, target: Target, cores: f64) -> anyhow::Result<CpuCgroup> {
    let cgroup = CpuCgroup::create(&format!("flotilla-bench-{}-{}", std::process::id(), target.name()), cores)
        .with_context(|| format!("limiting {} to {cores} cores", target.name()))?;
    cgroup.join_on_exec(command)?;
    if target == Target::DockerRegistry {
        command.env("GOMAXPROCS", (cores.ceil() as u64).max(1).to_string());
    }
    Ok(cgroup)
}

/// Fails early, with the fix, when `target`'s binary is missing.
pub fn ensure_installed(target: Target, plan: &Plan) -> anyhow::Result<()> {
    match target {
        Target::Flotilla => ensure!(
            plan.flotilla_bin.is_file(),
            "no flotilla binary at {} (build it with `cargo build --release -p flotilla-node --bin flotilla`, \
             or pass --only docker-registry)",
            plan.flotilla_bin.display()
        ),
        Target::DockerRegistry => ensure!(
            plan.docker_registry_bin.is_file(),
            "no docker-registry binary at {} (`apt-get install -y docker-registry`, or pass --only flotilla)",
            plan.docker_registry_bin.display()
        ),
    }
    Ok(())
}

/// `flotilla serve` on the HTTP, RPC and gossip `ports`.
fn flotilla_command(plan: &Plan, data_dir: &Path, ports: [u16; 3]) -> Command {
    let [http_port, rpc_port, gossip_port] = ports;
    let mut command = Command::new(&plan.flotilla_bin);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--rpc-addr")
        .arg(format!("127.0.0.1:{rpc_port}"))
        .arg("--gossip-addr")
        .arg(format!("127.0.0.1:{gossip_port}"))
        .env("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD);
    if plan.quiet_logs {
        command.env("RUST_LOG", "warn");
    }
    command
}

fn docker_registry_command(plan: &Plan, dir: &Path, data_dir: &Path, http_port: u16) -> anyhow::Result<Command> {
    let config_path = dir.join("config.yml");
    std::fs::write(&config_path, docker_registry_config(data_dir, http_port, plan.quiet_logs))?;
    let mut command = Command::new(&plan.docker_registry_bin);
    command.arg("serve").arg(&config_path);
    Ok(command)
}

/// distribution's example configuration (filesystem storage, in-memory blob
/// descriptor cache, deletes enabled) on loopback without auth.
fn docker_registry_config(data_dir: &Path, http_port: u16, quiet_logs: bool) -> String {
    let log = if quiet_logs { "log:\n  level: warn\n  accesslog:\n    disabled: true\n" } else { "" };
    format!(
        "version: 0.1\n{log}storage:\n  filesystem:\n    rootdirectory: {}\n  cache:\n    blobdescriptor: inmemory\n  \
         delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{http_port}\n",
        data_dir.display()
    )
}

/// Three distinct loopback ports free at the time of asking (all held open
/// together so the kernel cannot hand out one twice).
fn free_ports() -> anyhow::Result<[u16; 3]> {
    let listeners =
        [TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?];
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Has the kernel kill the child when the benchmark dies, so an interrupted
/// run leaves no registry behind.
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub(crate) fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    Ok(String::from_utf8_lossy(&tail).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_registry_config_names_dir_port_and_deletes() {
        let config = docker_registry_config(Path::new("/tmp/x"), 5123, false);
        assert!(config.contains("rootdirectory: /tmp/x"));
        assert!(config.contains("addr: 127.0.0.1:5123"));
        assert!(config.contains("delete:\n    enabled: true"));
        assert!(!config.contains("accesslog"));
        assert!(docker_registry_config(Path::new("/tmp/x"), 5123, true).contains("disabled: true"));
    }
}
