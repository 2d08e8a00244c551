//! The containers of a docker compose cluster (`deploy/compose`).
//!
//! Node `k` (0-based) is the container of compose service `node<k+1>` in the
//! project; its REST surface is reached at the URL given for it. kill -9,
//! restart and pause go through the engine; partitions, one-way cuts and loss
//! are iptables rules on container addresses in the `DOCKER-USER` chain,
//! which sees the traffic between containers on a bridge network. Blob copies
//! are counted in each node's `/data` volume on the host. Disks and clocks
//! are shared with the host, so those faults are not offered. The spare of
//! a rebalancing run is one more container like node 1's, removed at the end.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use flotilla_cluster_tests::faults::Partition;
use flotilla_cluster_tests::Credentials;

use super::Target;
use crate::schedule::FaultKind;

/// A compose project's nodes.
pub struct Docker {
    containers: Vec<String>,
    urls: Vec<String>,
    credentials: Credentials,
    network: Partition,
    replication_factor: usize,
    /// Each node's `/data` volume on the host (it survives restarts).
    data_dirs: Vec<PathBuf>,
    /// The spare's container, once started ([`Target::add_spare`]).
    spare: Option<String>,
}

impl Docker {
    /// The containers of services `node1`…`node<n>` of compose `project`,
    /// reached at `urls` (one per node).
    pub fn attach(project: &str, urls: Vec<String>, credentials: Credentials) -> anyhow::Result<Docker> {
        let mut containers = Vec::new();
        for index in 0..urls.len() {
            let service = format!("node{}", index + 1);
            let id = docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.compose.project={project}"),
                "--filter",
                &format!("label=com.docker.compose.service={service}"),
            ])?;
            let id = id.lines().next().with_context(|| format!("no container of service {service} in {project}"))?;
            containers.push(id.to_owned());
        }
        let replication_factor = urls.len().min(3);
        let data_dirs = containers.iter().map(|container| data_dir(container)).collect::<anyhow::Result<_>>()?;
        Ok(Docker {
            containers,
            urls,
            credentials,
            network: Partition::in_chain("DOCKER-USER"),
            replication_factor,
            data_dirs,
            spare: None,
        })
    }

    fn ip(&self, node: usize) -> anyhow::Result<std::net::IpAddr> {
        let ip = docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &self.containers[node],
        ])?;
        let ip = ip.split_whitespace().next().with_context(|| format!("node {node} has no address"))?;
        ip.parse().with_context(|| format!("node {node}'s address {ip:?}"))
    }

    fn wait_ready(&self, node: usize) -> anyhow::Result<()> {
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("{}/readyz", self.urls[node]);
        while Instant::now() < deadline {
            if http.get(&url).send().is_ok_and(|response| response.status() == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("node {node} was not ready within 120 s of its start")
    }
}

/// Where `container`'s `/data` volume is on the host.
fn data_dir(container: &str) -> anyhow::Result<PathBuf> {
    let source = docker(&[
        "inspect",
        "-f",
        r#"{{range .Mounts}}{{if eq .Destination "/data"}}{{.Source}}{{end}}{{end}}"#,
        container,
    ])?;
    anyhow::ensure!(!source.trim().is_empty(), "container {container} has no /data volume");
    Ok(PathBuf::from(source.trim()))
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker").args(args).output().context("running docker")?;
    anyhow::ensure!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Target for Docker {
    fn nodes(&self) -> usize {
        self.containers.len()
    }

    fn base_url(&self, node: usize) -> String {
        self.urls[node].clone()
    }

    fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    fn supports(&self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::DiskFull | FaultKind::ClockJump => Err("containers share the host's disk and clock".into()),
            _ => Ok(()),
        }
    }

    fn kill(&mut self, node: usize) -> anyhow::Result<()> {
        docker(&["kill", "-s", "KILL", &self.containers[node]]).map(drop)
    }

    fn start(&mut self, node: usize) -> anyhow::Result<()> {
        docker(&["start", &self.containers[node]])?;
        self.wait_ready(node)
    }

    fn revive(&mut self) -> anyhow::Result<Vec<usize>> {
        // The compose file's restart policy is the supervisor.
        Ok(Vec::new())
    }

    fn pause(&mut self, node: usize) -> anyhow::Result<()> {
        docker(&["pause", &self.containers[node]]).map(drop)
    }

    fn resume(&mut self, node: usize) -> anyhow::Result<()> {
        docker(&["unpause", &self.containers[node]]).map(drop)
    }

    fn cut(&mut self, from: usize, to: usize) -> anyhow::Result<()> {
        let (from, to) = (self.ip(from)?, self.ip(to)?);
        self.network.cut(from, to)
    }

    fn lossy(&mut self, from: usize, to: usize, probability: f64) -> anyhow::Result<()> {
        let (from, to) = (self.ip(from)?, self.ip(to)?);
        self.network.lossy(from, to, probability)
    }

    fn heal_network(&mut self) -> anyhow::Result<()> {
        std::mem::replace(&mut self.network, Partition::in_chain("DOCKER-USER")).heal();
        Ok(())
    }

    fn fill_disk(&mut self, _node: usize) -> anyhow::Result<()> {
        bail!("not offered for containers")
    }

    fn free_disk(&mut self, _node: usize) -> anyhow::Result<()> {
        Ok(())
    }

    fn shift_clock(&mut self, _node: usize, _seconds: i64) -> anyhow::Result<()> {
        bail!("not offered for containers")
    }

    fn supports_spare(&self) -> Result<(), String> {
        Ok(())
    }

    /// A container like node 1's (its image, network and settings) under a
    /// node id of its own, joining through every node: a run against a
    /// cluster that already removed an earlier run's spare must not reuse
    /// that id (a removed id never joins again).
    fn add_spare(&mut self) -> anyhow::Result<u64> {
        anyhow::ensure!(self.spare.is_none(), "the spare was started already");
        let first = &self.containers[0];
        let image = docker(&["inspect", "-f", "{{.Config.Image}}", first])?.trim().to_owned();
        let network =
            docker(&["inspect", "-f", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}", first])?;
        let network = network.split_whitespace().next().context("node 1 is on no network")?.to_owned();
        let env = docker(&["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", first])?;
        let id = 100 + u64::from(rand::random::<u16>());
        let name = format!("flotilla-chaos-spare-{id}");
        let join: Vec<String> = (1..=self.containers.len()).map(|node| format!("node{node}:5001")).collect();
        let mut args: Vec<String> =
            ["run", "-d", "--name", &name, "--network", &network, "--network-alias", &name, "--hostname", &name]
                .map(str::to_owned)
                .to_vec();
        let overridden = ["FLOTILLA_NODE_ID=", "FLOTILLA_JOIN=", "FLOTILLA_ADVERTISE_"];
        for line in env.lines().filter(|line| line.starts_with("FLOTILLA_")) {
            if !overridden.iter().any(|prefix| line.starts_with(prefix)) {
                args.extend(["-e".to_owned(), line.to_owned()]);
            }
        }
        for setting in [
            format!("FLOTILLA_NODE_ID={id}"),
            format!("FLOTILLA_JOIN={}", join.join(",")),
            format!("FLOTILLA_ADVERTISE_HTTP={name}:5000"),
            format!("FLOTILLA_ADVERTISE_RPC={name}:5001"),
            format!("FLOTILLA_ADVERTISE_GOSSIP={name}:5002"),
        ] {
            args.extend(["-e".to_owned(), setting]);
        }
        args.push(image);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).context("starting the spare container")?;
        self.spare = Some(name);
        Ok(id)
    }

    fn stop_spare(&mut self) -> anyhow::Result<()> {
        if let Some(name) = self.spare.take() {
            docker(&["rm", "-f", "-v", &name])?;
        }
        Ok(())
    }

    fn copies(&self, digest: &str) -> anyhow::Result<usize> {
        let hex = digest.trim_start_matches("sha256:");
        let path = |dir: &PathBuf| dir.join("blobs/blobs/sha256").join(&hex[..2]).join(hex);
        Ok(self.data_dirs.iter().filter(|dir| path(dir).is_file()).count())
    }

    fn log_tails(&self, lines: usize) -> String {
        let mut tails = String::new();
        for (node, container) in self.containers.iter().enumerate() {
            let output = Command::new("docker").args(["logs", "--tail", &lines.to_string(), container]).output();
            tails.push_str(&format!("----- node {node} ({container}) -----\n"));
            if let Ok(output) = output {
                tails.push_str(&String::from_utf8_lossy(&output.stdout));
                tails.push_str(&String::from_utf8_lossy(&output.stderr));
            }
        }
        tails
    }
}
