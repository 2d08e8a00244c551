//! A process in a cgroup of its own with a CPU quota, as if it had a small
//! machine to itself: `flotilla-bench cluster --node-cpus` (every node) and
//! `flotilla-bench --registry-cpus` (each registry).
//!
//! On one host every process shares the same cores. A cluster's nodes then
//! cannot add capacity however well followers serve reads; a registry and the
//! client that measures it compete, so a registry that needs less CPU per
//! byte leaves more to the client rather than serving more. With a quota of
//! `F` cores per process, each is bound by its own `F` cores: what separate
//! machines would show, provided the host has the cores to give. The network
//! is still loopback.
//!
//! The quota is enforced by the kernel's CFS bandwidth control with a short
//! period ([`PERIOD_US`]), so a process is throttled in slices of
//! milliseconds, not in the default 100 ms ones that would stall heartbeats.
//! Both cgroup v2 (`cpu.max`) and v1 (the `cpu` hierarchy's
//! `cpu.cfs_quota_us`) are supported; creating a cgroup needs root. The
//! process joins its cgroup before it execs, so it sizes its thread pools to
//! its quota from the start, as on a machine (or in a container) of that size.

use std::ffi::CString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The CFS period of every quota, µs.
const PERIOD_US: u64 = 10_000;
/// The smallest quota the kernel accepts, µs.
const MIN_QUOTA_US: u64 = 1_000;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One process's cgroup; removed when dropped (after the process has exited).
#[derive(Debug)]
pub struct CpuCgroup {
    dir: PathBuf,
}

impl CpuCgroup {
    /// Creates the cgroup `name` limited to `cores` cores.
    pub fn create(name: &str, cores: f64) -> anyhow::Result<CpuCgroup> {
        let quota_us = quota_us(cores)?;
        let root = Path::new(CGROUP_ROOT);
        let group = if root.join("cgroup.controllers").is_file() {
            // v2: the cpu controller must be enabled for the root's children.
            let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))?;
            if !controllers.split_whitespace().any(|controller| controller == "cpu") {
                bail!("cgroup v2 without the cpu controller: cannot limit CPU");
            }
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            let group = CpuCgroup::make(root.join(name))?;
            group.write("cpu.max", &format!("{quota_us} {PERIOD_US}"))?;
            group
        } else if root.join("cpu/cpu.cfs_quota_us").is_file() {
            let group = CpuCgroup::make(root.join("cpu").join(name))?;
            group.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
            group.write("cpu.cfs_quota_us", &quota_us.to_string())?;
            group
        } else {
            bail!("no cgroup cpu controller under {CGROUP_ROOT}: cannot limit CPU");
        };
        Ok(group)
    }

    /// Has `command`'s child join the cgroup before it execs, so the process
    /// starts inside its quota and sizes its thread pools to it (Rust's
    /// `available_parallelism`, hence tokio's worker count, reads the cgroup
    /// quota), as a process on a machine of that size would.
    pub fn join_on_exec(&self, command: &mut Command) -> anyhow::Result<()> {
        let procs = CString::new(self.dir.join("cgroup.procs").into_os_string().into_vec())?;
        // SAFETY: open, write and close are async-signal-safe; the closure
        // reads only `procs`, built before the fork, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" means the writing process itself.
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let error = std::io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(error);
                }
                Ok(())
            });
        }
        Ok(())
    }

    fn make(dir: PathBuf) -> anyhow::Result<CpuCgroup> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the cgroup {} (limiting CPU needs root)", dir.display()))?;
        Ok(CpuCgroup { dir })
    }

    fn write(&self, file: &str, value: &str) -> anyhow::Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        // Fails while a process is still inside; the cgroup is then left behind, empty once it exits.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Parses a CPU-limit flag: cores per process, from 0.1 up.
pub fn parse_cores(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(cores) if (0.1..=1024.0).contains(&cores) => Ok(cores),
        _ => Err(format!("{value:?}: cores per process, from 0.1 up")),
    }
}

/// The quota per [`PERIOD_US`] for `cores` cores.
fn quota_us(cores: f64) -> anyhow::Result<u64> {
    if !(cores.is_finite() && cores > 0.0) {
        bail!("a CPU limit must be a positive number of cores, not {cores}");
    }
    let quota = (cores * PERIOD_US as f64).round() as u64;
    if quota < MIN_QUOTA_US {
        bail!(
            "{cores} cores is below the smallest quota the kernel takes ({} cores)",
            MIN_QUOTA_US as f64 / PERIOD_US as f64
        );
    }
    Ok(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_per_period_and_bounded() {
        assert_eq!(quota_us(0.5).unwrap(), 5_000);
        assert_eq!(quota_us(2.0).unwrap(), 20_000);
        assert!(quota_us(0.05).is_err());
        assert!(quota_us(0.0).is_err());
        assert!(quota_us(f64::NAN).is_err());
    }
}
