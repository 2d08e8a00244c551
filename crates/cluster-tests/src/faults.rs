//! Network faults between loopback nodes, with iptables.
//!
//! Every sandbox node listens on, and sends inter-node traffic from, a
//! loopback address of its own (127.1.x.y), so a rule on a pair of addresses
//! cuts exactly the traffic between two nodes, while the test's own requests
//! (from 127.0.0.1) still reach every node. Rules are removed when the
//! [`Partition`] is dropped or healed.
//!
//! Needs root and iptables; [`available`] says whether this machine has them.

use std::net::IpAddr;
use std::process::Command;

use anyhow::Context;

use crate::sandbox::Node;

/// Whether iptables rules can be added here.
pub fn available() -> bool {
    Command::new("iptables").args(["-w", "-L", "OUTPUT", "-n"]).output().is_ok_and(|out| out.status.success())
}

/// Traffic dropped between groups of nodes until healed.
#[must_use = "the partition heals when dropped"]
pub struct Partition {
    rules: Vec<(IpAddr, IpAddr)>,
}

impl Partition {
    /// Drops every packet between `isolated` and each of `others`, both ways.
    pub fn isolate(isolated: &Node, others: &[&Node]) -> anyhow::Result<Partition> {
        let mut partition = Partition { rules: Vec::new() };
        for other in others {
            partition.drop_between(isolated.ip(), other.ip())?;
            partition.drop_between(other.ip(), isolated.ip())?;
        }
        Ok(partition)
    }

    fn drop_between(&mut self, from: IpAddr, to: IpAddr) -> anyhow::Result<()> {
        iptables("-I", from, to)?;
        self.rules.push((from, to));
        Ok(())
    }

    /// Removes the rules now.
    pub fn heal(mut self) {
        self.remove_rules();
    }

    fn remove_rules(&mut self) {
        for (from, to) in self.rules.drain(..) {
            if let Err(error) = iptables("-D", from, to) {
                eprintln!("could not remove the iptables rule {from} -> {to}: {error:#}");
            }
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.remove_rules();
    }
}

fn iptables(action: &str, from: IpAddr, to: IpAddr) -> anyhow::Result<()> {
    let (from, to) = (from.to_string(), to.to_string());
    let output = Command::new("iptables")
        .args(["-w", action, "OUTPUT", "-s", &from, "-d", &to, "-j", "DROP"])
        .output()
        .context("running iptables")?;
    anyhow::ensure!(
        output.status.success(),
        "iptables {action} {from} -> {to}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
