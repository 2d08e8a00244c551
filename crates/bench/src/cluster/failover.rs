//! Leader failover as a client sees it. Each trial: wait until the cluster is
//! formed; start a writer on a surviving node that begins a tag + manifest
//! PUT every `--failover-write-interval-ms` (each with its own
//! `--failover-request-timeout-ms` deadline, so a stalled write never delays
//! the next); once a write has succeeded, SIGKILL the leader; the trial's
//! failover time is from the kill to the completion of the first successful
//! write that *started* after the kill. Then the killed node is restarted
//! with the same flags and data, and the cluster must form again before the
//! next trial.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::cli::FailoverPlan;
use super::nodes::LocalCluster;
use super::state;
use super::stats::Spread;
use super::writes::ManifestTemplate;
use crate::client::RegistryClient;

/// How long the writer may take to land its first write before the kill.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// One leader kill.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The leader that was killed.
    pub killed: u64,
    /// The node the writer sent to.
    pub writer_node: u64,
    /// Kill → first successful write started after it; `None` when none
    /// succeeded within the trial timeout.
    pub failover_ms: Option<f64>,
    /// Writes started after the kill that failed before that one succeeded.
    pub failed_writes: u64,
    /// The first of those failures, for diagnosis.
    pub first_error: Option<String>,
    /// Who led once the cluster had formed again.
    pub new_leader: u64,
    /// Restart of the killed node until the cluster formed again, seconds.
    pub reform_secs: f64,
}

/// Every trial and the spread of their failover times.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverResult {
    pub trials: Vec<Trial>,
    /// Over the trials that recovered.
    pub spread: Option<Spread>,
    /// Trials in which no write succeeded within the trial timeout.
    pub timed_out: u64,
    pub seconds: f64,
}

/// One write of the writer.
#[derive(Debug, Clone)]
struct Attempt {
    started: Instant,
    finished: Instant,
    error: Option<String>,
}

/// What an attempt says about a trial.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Started before the kill: says nothing about failover.
    BeforeKill,
    FailedAfterKill,
    /// The first success after the kill, this long after it.
    Recovered(Duration),
}

fn judge(attempt: &Attempt, killed_at: Instant) -> Verdict {
    if attempt.started < killed_at {
        Verdict::BeforeKill
    } else if attempt.error.is_some() {
        Verdict::FailedAfterKill
    } else {
        Verdict::Recovered(attempt.finished.duration_since(killed_at))
    }
}

/// Runs `plan.trials` trials on `cluster`; `nodes[i]` is a client of node `i + 1`.
pub async fn measure(
    cluster: &mut LocalCluster,
    nodes: &[RegistryClient],
    repo: &str,
    template: &ManifestTemplate,
    plan: &FailoverPlan,
    ready_timeout: Duration,
) -> anyhow::Result<FailoverResult> {
    let started = Instant::now();
    let mut trials = Vec::new();
    for number in 1..=plan.trials {
        let trial = run_trial(cluster, nodes, repo, template, plan, ready_timeout, number)
            .await
            .with_context(|| format!("failover trial {number}"))?;
        match trial.failover_ms {
            Some(ms) => super::progress(format!(
                "  trial {number}: killed leader {}, writes via node {} back after {ms:.0} ms ({} failed); node {} \
                 leads; re-formed in {:.1} s",
                trial.killed, trial.writer_node, trial.failed_writes, trial.new_leader, trial.reform_secs
            )),
            None => super::progress(format!(
                "  trial {number}: killed leader {}, no write via node {} succeeded within {} s; first error: {}",
                trial.killed,
                trial.writer_node,
                plan.trial_timeout_secs,
                trial.first_error.as_deref().unwrap_or("none")
            )),
        }
        trials.push(trial);
    }
    let recovered: Vec<Duration> =
        trials.iter().filter_map(|trial| trial.failover_ms).map(|ms| Duration::from_secs_f64(ms / 1000.0)).collect();
    Ok(FailoverResult {
        spread: Spread::of(&recovered),
        timed_out: trials.iter().filter(|trial| trial.failover_ms.is_none()).count() as u64,
        trials,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn run_trial(
    cluster: &mut LocalCluster,
    nodes: &[RegistryClient],
    repo: &str,
    template: &ManifestTemplate,
    plan: &FailoverPlan,
    ready_timeout: Duration,
    number: u64,
) -> anyhow::Result<Trial> {
    let leader = state::wait_formed(cluster, ready_timeout).await?.leader;
    let writer_node = survivor(leader, &cluster.ids());
    let (sender, mut attempts) = mpsc::unbounded_channel();
    let writer = Writer {
        client: nodes[writer_node as usize - 1].clone(),
        repo: repo.to_owned(),
        tag: format!("failover-{number}"),
        template: Arc::new(template.clone()),
        request_timeout: plan.request_timeout(),
    };
    let ticker = tokio::spawn(writer.run(plan.write_interval(), sender));
    let outcome = async {
        warm_up(&mut attempts).await?;
        let killed_at = cluster.kill(leader)?;
        Ok::<_, anyhow::Error>(await_recovery(&mut attempts, killed_at, plan.trial_timeout()).await)
    }
    .await;
    ticker.abort();
    let (failover, failed_writes, first_error) = outcome?;
    let restarted = Instant::now();
    cluster.restart(leader).await.with_context(|| format!("restarting node {leader}"))?;
    let new_leader = state::wait_formed(cluster, ready_timeout).await?.leader;
    Ok(Trial {
        killed: leader,
        writer_node,
        failover_ms: failover.map(|elapsed| elapsed.as_secs_f64() * 1000.0),
        failed_writes,
        first_error,
        new_leader,
        reform_secs: restarted.elapsed().as_secs_f64(),
    })
}

/// Waits for the writer's first success (so the kill hits a working writer).
async fn warm_up(attempts: &mut mpsc::UnboundedReceiver<Attempt>) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WARM_UP_TIMEOUT;
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, attempts.recv()).await {
            Ok(Some(Attempt { error: None, .. })) => return Ok(()),
            Ok(Some(Attempt { error: Some(error), .. })) => last_error = Some(error),
            Ok(None) => bail!("the writer stopped"),
            Err(_) => bail!(
                "no write succeeded within {WARM_UP_TIMEOUT:?} before the kill; last error: {}",
                last_error.as_deref().unwrap_or("none")
            ),
        }
    }
}

/// Reads attempts until the first success started after `killed_at`: its
/// delay (or `None` after `timeout`), the failures before it, the first of them.
async fn await_recovery(
    attempts: &mut mpsc::UnboundedReceiver<Attempt>,
    killed_at: Instant,
    timeout: Duration,
) -> (Option<Duration>, u64, Option<String>) {
    let deadline = tokio::time::Instant::from_std(killed_at + timeout);
    let mut failed = 0;
    let mut first_error = None;
    while let Ok(Some(attempt)) = tokio::time::timeout_at(deadline, attempts.recv()).await {
        match judge(&attempt, killed_at) {
            Verdict::BeforeKill => {}
            Verdict::FailedAfterKill => {
                failed += 1;
                first_error = first_error.or(attempt.error);
            }
            Verdict::Recovered(elapsed) => return (Some(elapsed), failed, first_error),
        }
    }
    (None, failed, first_error)
}

/// The node after `leader` in `ids`, cyclically.
fn survivor(leader: u64, ids: &[u64]) -> u64 {
    let position = ids.iter().position(|id| *id == leader).unwrap_or(0);
    ids[(position + 1) % ids.len()]
}

/// Starts a PUT every interval, each in its own task with its own deadline.
struct Writer {
    client: RegistryClient,
    repo: String,
    tag: String,
    template: Arc<ManifestTemplate>,
    request_timeout: Duration,
}

impl Writer {
    async fn run(self, interval: Duration, attempts: mpsc::UnboundedSender<Attempt>) {
        let this = Arc::new(self);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        for seq in 0u64.. {
            ticker.tick().await;
            let (this, attempts) = (this.clone(), attempts.clone());
            tokio::spawn(async move {
                let manifest = this.template.manifest(&format!("{}-{seq}", this.tag));
                let started = Instant::now();
                let put = this.client.put_manifest(&this.repo, &this.tag, manifest);
                let error = match tokio::time::timeout(this.request_timeout, put).await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(format!("{error:#}")),
                    Err(_) => Some(format!("no answer within {:?}", this.request_timeout)),
                };
                // The trial may be over and the receiver gone.
                let _ = attempts.send(Attempt { started, finished: Instant::now(), error });
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(started: Instant, after_ms: u64, error: Option<&str>) -> Attempt {
        Attempt { started, finished: started + Duration::from_millis(after_ms), error: error.map(str::to_owned) }
    }

    #[test]
    fn only_writes_started_after_the_kill_count() {
        let killed_at = Instant::now();
        let before = killed_at - Duration::from_millis(5);
        let after = killed_at + Duration::from_millis(300);
        assert_eq!(judge(&attempt(before, 900, None), killed_at), Verdict::BeforeKill);
        assert_eq!(judge(&attempt(after, 10, Some("503")), killed_at), Verdict::FailedAfterKill);
        assert_eq!(judge(&attempt(after, 20, None), killed_at), Verdict::Recovered(Duration::from_millis(320)));
    }

    #[tokio::test]
    async fn recovery_is_the_first_success_after_the_kill() {
        let killed_at = Instant::now();
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender.send(attempt(killed_at - Duration::from_millis(1), 50, None)).unwrap();
        sender.send(attempt(killed_at + Duration::from_millis(10), 5, Some("503 no leader"))).unwrap();
        sender.send(attempt(killed_at + Duration::from_millis(20), 5, Some("timeout"))).unwrap();
        sender.send(attempt(killed_at + Duration::from_millis(600), 40, None)).unwrap();
        let (elapsed, failed, first) = await_recovery(&mut receiver, killed_at, Duration::from_secs(5)).await;
        assert_eq!(elapsed, Some(Duration::from_millis(640)));
        assert_eq!(failed, 2);
        assert_eq!(first.as_deref(), Some("503 no leader"));
        drop(sender);
        let (elapsed, failed, _) = await_recovery(&mut receiver, killed_at, Duration::from_secs(5)).await;
        assert_eq!((elapsed, failed), (None, 0));
    }

    #[test]
    fn the_writer_uses_the_next_node() {
        assert_eq!(survivor(1, &[1, 2, 3]), 2);
        assert_eq!(survivor(3, &[1, 2, 3]), 1);
        assert_eq!(survivor(5, &[1, 2, 3, 4, 5]), 1);
    }
}
