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

/// Packets dropped between addresses until healed: a partition, a one-way
/// cut or a lossy link.
#[must_use = "the partition heals when dropped"]
pub struct Partition {
    /// The chain the rules go in: `OUTPUT` for traffic this machine's
    /// processes send, `DOCKER-USER` for traffic between containers.
    chain: String,
    /// The match part of each rule added, to delete it again.
    rules: Vec<Vec<String>>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition::in_chain("OUTPUT")
    }
}

impl Partition {
    /// No rules yet; they will go in the `OUTPUT` chain.
    pub fn new() -> Partition {
        Partition::default()
    }

    /// No rules yet; they will go in `chain`.
    pub fn in_chain(chain: &str) -> Partition {
        Partition { chain: chain.to_owned(), rules: Vec::new() }
    }

    /// Drops every packet between `isolated` and each of `others`, both ways.
    pub fn isolate(isolated: &Node, others: &[&Node]) -> anyhow::Result<Partition> {
        let mut partition = Partition::new();
        for other in others {
            partition.cut(isolated.ip(), other.ip())?;
            partition.cut(other.ip(), isolated.ip())?;
        }
        Ok(partition)
    }

    /// Drops every packet sent from `from` to `to` (one way).
    pub fn cut(&mut self, from: IpAddr, to: IpAddr) -> anyhow::Result<()> {
        self.add(vec!["-s".into(), from.to_string(), "-d".into(), to.to_string()])
    }

    /// Drops each packet sent from `from` to `to` with `probability` (0..1).
    pub fn lossy(&mut self, from: IpAddr, to: IpAddr, probability: f64) -> anyhow::Result<()> {
        anyhow::ensure!((0.0..=1.0).contains(&probability), "a loss probability is between 0 and 1");
        self.add(vec![
            "-s".into(),
            from.to_string(),
            "-d".into(),
            to.to_string(),
            "-m".into(),
            "statistic".into(),
            "--mode".into(),
            "random".into(),
            "--probability".into(),
            format!("{probability:.4}"),
        ])
    }

    fn add(&mut self, matches: Vec<String>) -> anyhow::Result<()> {
        iptables("-I", &self.chain, &matches)?;
        self.rules.push(matches);
        Ok(())
    }

    /// Whether no rule is in place.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Removes the rules now.
    pub fn heal(mut self) {
        self.remove_rules();
    }

    fn remove_rules(&mut self) {
        for matches in self.rules.drain(..) {
            if let Err(error) = iptables("-D", &self.chain, &matches) {
                eprintln!("could not remove the iptables rule {}: {error:#}", matches.join(" "));
            }
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.remove_rules();
    }
}

fn iptables(action: &str, chain: &str, matches: &[String]) -> anyhow::Result<()> {
    let output = Command::new("iptables")
        .args(["-w", action, chain])
        .args(matches)
        .args(["-j", "DROP"])
        .output()
        .context("running iptables")?;
    anyhow::ensure!(
        output.status.success(),
        "iptables {action} {chain} {}: {}",
        matches.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
