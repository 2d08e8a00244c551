//! The checkers: what a run must show once its faults are healed.
//!
//! 1. Tags are linearizable registers ([`crate::linearizability`]).
//! 2. Every acknowledged blob and manifest reads back, with its digest, from
//!    every node.
//! 3. Every acknowledged blob is back at the replication factor within a bound.
//! 4. At most one leader per Raft term.
//! 5. No answer a fault does not excuse: no 5xx but 503, no 404 for
//!    acknowledged content, no wrong digest (the workload's anomalies).

use std::time::{Duration, Instant};

use reqwest::Method;

use flotilla_cluster_tests::client::MANIFEST_ACCEPT;
use flotilla_cluster_tests::content::sha256_digest;
use flotilla_cluster_tests::OciClient;

use crate::history::{History, Recorder};
use crate::linearizability::{self, Event, Op};
use crate::report::InjectedFault;
use crate::schedule::{Fault, Who};
use crate::target::Target;
use crate::workload::WorkloadOptions;

/// How long one read of the checks may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many examples per kind of violation are printed.
const EXAMPLES: usize = 5;

/// Waits until every acknowledged blob has as many copies as the
/// replication factor; how long after `healed` that was.
pub fn replication(
    target: &dyn Target,
    history: &History,
    healed: Instant,
    bound: Duration,
) -> anyhow::Result<Duration> {
    let wanted = target.replication_factor();
    let mut short: Vec<&str> = history.acked_blobs.iter().map(|blob| blob.digest.as_str()).collect();
    short.sort_unstable();
    short.dedup();
    loop {
        let mut still = Vec::new();
        for digest in short {
            if target.copies(digest)? < wanted {
                still.push(digest);
            }
        }
        short = still;
        if short.is_empty() {
            return Ok(healed.elapsed());
        }
        if healed.elapsed() > bound {
            anyhow::bail!(
                "{} acknowledged blob(s) still below {wanted} copies {:?} after healing, e.g. {:?}",
                short.len(),
                bound,
                &short[..short.len().min(EXAMPLES)]
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every acknowledged blob and manifest, from every node (the nodes in parallel).
pub fn acknowledged_content(target: &dyn Target, history: &History) -> Vec<String> {
    let clients = target.clients(CHECK_TIMEOUT);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let checks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(node, client)| scope.spawn(move || content_on(node, client, history)))
            .collect();
        checks.into_iter().flat_map(|check| check.join().expect("a check thread panicked")).collect()
    });
    summarize("acknowledged content", failures)
}

fn content_on(node: usize, client: &OciClient, history: &History) -> Vec<String> {
    let mut failures = Vec::new();
    for blob in &history.acked_blobs {
        match fetch(client, &format!("/v2/{}/blobs/{}", blob.repo, blob.digest)) {
            Ok(body) if sha256_digest(&body) == blob.digest => {}
            Ok(_) => failures.push(format!("node {node}: blob {} has the wrong digest", blob.digest)),
            Err(error) => failures.push(format!("node {node}: acknowledged blob unreadable: {error}")),
        }
    }
    for manifest in &history.acked_manifests {
        match fetch(client, &format!("/v2/{}/manifests/{}", manifest.repo, manifest.digest)) {
            Ok(body) if sha256_digest(&body) == manifest.digest => {}
            Ok(_) => failures.push(format!("node {node}: manifest {} has the wrong digest", manifest.digest)),
            Err(error) => failures.push(format!("node {node}: acknowledged manifest unreadable: {error}")),
        }
    }
    failures
}

/// Reads every tag from every node once more, into the history (these
/// reads come after every write, so each must see the final value).
pub fn final_tag_reads(target: &dyn Target, recorder: &Recorder, history: &mut History, workload: &WorkloadOptions) {
    let clients = target.clients(CHECK_TIMEOUT);
    for repo in 0..workload.repos {
        for tag in 0..workload.tags_per_repo {
            let (repo, tag) = (workload.repo(repo), format!("t{tag}"));
            for (node, client) in clients.iter().enumerate() {
                let invoked = recorder.now();
                let seen = match fetch(client, &format!("/v2/{repo}/manifests/{tag}")) {
                    Ok(body) => Some(sha256_digest(&body)),
                    Err(error) if error.contains(" answered 404") => None,
                    Err(error) => {
                        history.anomalies.push(crate::history::Anomaly {
                            at_ms: invoked / 1000,
                            node,
                            what: format!("final read of {repo}:{tag}: {error}"),
                        });
                        continue;
                    }
                };
                let completed = Some(recorder.now());
                history.tag_events.push(Event { key: format!("{repo}:{tag}"), op: Op::Read(seen), invoked, completed });
            }
        }
    }
}

/// The workload's anomalies.
pub fn anomalies(history: &History) -> Vec<String> {
    let failures = history
        .anomalies
        .iter()
        .map(|anomaly| format!("at {:.1} s, node {}: {}", anomaly.at_ms as f64 / 1000.0, anomaly.node, anomaly.what))
        .collect();
    summarize("answers no fault excuses", failures)
}

/// Two nodes naming different leaders for one term.
pub fn one_leader_per_term(history: &History) -> Vec<String> {
    history
        .leaders
        .iter()
        .filter(|(_, leaders)| leaders.len() > 1)
        .map(|(term, leaders)| {
            format!("term {term} had {} leaders (leader id: named by nodes): {leaders:?}", leaders.len())
        })
        .collect()
}

/// The linearizability check; a violation comes shrunk to a minimal history.
pub fn tags_linearizable(history: &History) -> Result<(), String> {
    let violation = match linearizability::check(&history.tag_events) {
        Ok(()) => return Ok(()),
        Err(violation) => violation,
    };
    let small = linearizability::minimize(&violation);
    let mut message = format!(
        "tag {} is not linearizable ({} events); a smallest history that no register explains (µs since the start):",
        violation.key,
        violation.events.len()
    );
    let mut events = small.events.clone();
    events.sort_by_key(|event| event.invoked);
    for event in events {
        let op = match &event.op {
            Op::Write(Some(value)) => format!("write {}", short(value)),
            Op::Write(None) => "delete".to_owned(),
            Op::Read(Some(value)) => format!("read  {}", short(value)),
            Op::Read(None) => "read  (absent)".to_owned(),
        };
        let completed = event.completed.map_or("never answered".to_owned(), |at| at.to_string());
        message.push_str(&format!("\n    {:>12} .. {completed:>14}  {op}", event.invoked));
    }
    Err(message)
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// For each fault that took the leader away: from the fault to the first
/// acknowledged tag write sent after it.
pub fn failover_times(injected: &[InjectedFault], history: &History) -> Vec<Duration> {
    injected
        .iter()
        .filter(|fault| {
            matches!(
                fault.fault,
                Fault::Kill(Who::Leader)
                    | Fault::Pause(Who::Leader)
                    | Fault::Isolate(Who::Leader)
                    | Fault::Split { with_leader: true, .. }
            )
        })
        .filter_map(|fault| {
            history
                .write_acks
                .iter()
                .filter(|(invoked, _)| *invoked >= fault.started_us)
                .map(|(_, completed)| completed - fault.started_us)
                .min()
                .map(Duration::from_micros)
        })
        .collect()
}

/// GET `path`; the body if 200.
fn fetch(client: &OciClient, path: &str) -> Result<Vec<u8>, String> {
    let request = client.request(Method::GET, path).header("Accept", MANIFEST_ACCEPT);
    match client.send(request) {
        Ok(reply) if reply.status == 200 => Ok(reply.body),
        Ok(reply) => Err(format!("{} answered {}: {}", reply.request, reply.status, reply.text())),
        Err(error) => Err(format!("{error:#}")),
    }
}

fn summarize(what: &str, failures: Vec<String>) -> Vec<String> {
    if failures.is_empty() {
        return Vec::new();
    }
    let mut message = format!("{what}: {} failure(s)", failures.len());
    for failure in failures.iter().take(EXAMPLES) {
        message.push_str("\n    ");
        message.push_str(failure);
    }
    vec![message]
}
