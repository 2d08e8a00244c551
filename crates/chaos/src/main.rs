//! `flotilla-chaos`: a seeded chaos run against a Flotilla cluster.
//!
//! ```text
//! flotilla-chaos loopback --seed 7 --length 60s            # processes on this machine
//! flotilla-chaos docker --project compose --password …     # deploy/compose containers
//! flotilla-chaos schedule --seed 7 --nodes 3 --length 60s  # print a schedule only
//! ```
//!
//! Exit status 0: every check passed; 1: a violation (the report names the
//! seed that replays the schedule); 2: the run could not be carried out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use flotilla_chaos::schedule::{FaultKind, Schedule, LEADER_SHARE};
use flotilla_chaos::target::docker::Docker;
use flotilla_chaos::target::loopback::{Loopback, LoopbackOptions};
use flotilla_chaos::target::Target;
use flotilla_chaos::workload::WorkloadOptions;
use flotilla_chaos::{run, Report, RunOptions};
use flotilla_cluster_tests::Credentials;

#[derive(Parser)]
#[command(name = "flotilla-chaos", about = "Seeded fault injection and history checks for Flotilla clusters")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Start a cluster of processes on loopback addresses and run against it.
    Loopback {
        #[command(flatten)]
        run: RunArgs,
        /// Nodes to start.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// The flotilla binary (default: `flotilla` next to this one).
        #[arg(long, env = "FLOTILLA_BIN")]
        flotilla_bin: Option<PathBuf>,
        /// An extra `flotilla serve` argument for every node (repeatable).
        #[arg(long = "node-arg", allow_hyphen_values = true)]
        node_args: Vec<String>,
        /// Give each node a tmpfs disk of this many MiB (needed for disk-full; root only).
        #[arg(long)]
        disk_mib: Option<u64>,
    },
    /// Run against the containers of a docker compose project (deploy/compose).
    Docker {
        #[command(flatten)]
        run: RunArgs,
        /// The compose project (docker-compose's `-p`, by default the directory name).
        #[arg(long, default_value = "compose")]
        project: String,
        /// Each node's REST URL, in service order (node1, node2, …).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "http://127.0.0.1:15000,http://127.0.0.1:15001,http://127.0.0.1:15002"
        )]
        urls: Vec<String>,
        /// The admin password the cluster was started with.
        #[arg(long, env = "FLOTILLA_ADMIN_PASSWORD")]
        password: String,
    },
    /// Print the schedule a seed gives, without running it.
    Schedule {
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[command(flatten)]
        faults: FaultArgs,
    },
}

const ALL_FAULTS: &str = "kill,pause,isolate,split,bridge,one-way,loss,disk-full,clock-jump";

/// What a schedule is drawn from, besides the seed and the node count.
#[derive(Args)]
struct FaultArgs {
    /// How long faults are injected (then everything is healed and checked).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    length: Duration,
    /// The fault kinds to draw from.
    #[arg(long, value_delimiter = ',', default_value = ALL_FAULTS)]
    faults: Vec<FaultKind>,
    /// How often a fault aimed at one node hits the leader (1.0: always,
    /// for failover figures over many leader faults).
    #[arg(long, default_value_t = LEADER_SHARE)]
    leader_share: f64,
}

#[derive(Args)]
struct RunArgs {
    /// The seed of the schedule (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    faults: FaultArgs,
    /// Client threads.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Start a GC, a repair or a scrub task, in turn, this often (0: never).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    tasks_every: Duration,
    /// After healing, the cluster must be whole within this.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    recovery_bound: Duration,
    /// After healing, every acknowledged blob must be fully replicated within this.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    replication_bound: Duration,
    /// Do not start a spare node that joins and is drained during the faults.
    #[arg(long)]
    no_rebalance: bool,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        let seed = self.seed.unwrap_or_else(rand::random);
        RunOptions {
            seed,
            length: self.faults.length,
            kinds: self.faults.faults.clone(),
            leader_share: self.faults.leader_share,
            workload: WorkloadOptions {
                clients: self.clients,
                tasks_every: (!self.tasks_every.is_zero()).then_some(self.tasks_every),
                ..WorkloadOptions::default()
            },
            recovery_bound: self.recovery_bound,
            replication_bound: self.replication_bound,
            rebalance: !self.no_rebalance,
        }
    }
}

/// `90`, `90s`, `1500ms`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 90s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        _ => Err(format!("{text:?}: the unit is ms, s or m")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("flotilla-chaos: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(command: Commands) -> anyhow::Result<bool> {
    match command {
        Commands::Schedule { seed, nodes, faults } => {
            print!("{}", Schedule::generate_aimed(seed, nodes, faults.length, &faults.faults, faults.leader_share));
            Ok(true)
        }
        Commands::Loopback { run: args, nodes, flotilla_bin, node_args, disk_mib } => {
            let binary = match flotilla_bin {
                Some(binary) => binary,
                None => std::env::current_exe()?.with_file_name("flotilla"),
            };
            // The sandbox finds the binary through FLOTILLA_BIN; set before any thread starts.
            std::env::set_var("FLOTILLA_BIN", &binary);
            let options = args.options();
            let loopback = LoopbackOptions {
                nodes,
                node_args,
                disk_bytes: disk_mib.map(|mib| mib << 20),
                fake_clocks: options.kinds.contains(&FaultKind::ClockJump),
            };
            eprintln!("flotilla-chaos: seed {}; starting {nodes} nodes of {}", options.seed, binary.display());
            let mut target = Loopback::start(&loopback)?;
            finish(&mut target, &options, args.json.as_ref())
        }
        Commands::Docker { run: args, project, urls, password } => {
            let options = args.options();
            let credentials = Credentials::Basic { user: "admin".into(), password };
            let mut target = Docker::attach(&project, urls, credentials)?;
            eprintln!("flotilla-chaos: seed {}; {} containers of project {project}", options.seed, target.nodes());
            finish(&mut target, &options, args.json.as_ref())
        }
    }
}

fn finish(target: &mut dyn Target, options: &RunOptions, json: Option<&PathBuf>) -> anyhow::Result<bool> {
    let mut report: Report = run(target, options)?;
    if !report.passed() {
        report.logs = target.log_tails(60);
    }
    print!("{report}");
    if let Some(path) = json {
        std::fs::write(path, format!("{}\n", report.to_json()))?;
    }
    Ok(report.passed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_default_to_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
