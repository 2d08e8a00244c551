//! `flotilla cluster …`: the operator subcommands, thin clients of the
//! `/_cluster` REST API of any node. Each prints the JSON answer; an error
//! answer is printed to stderr and makes the command fail.

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin_client::{pretty, AdminClient};
use crate::cli::{ClusterArgs, ClusterCommand, TaskFlags};
use crate::config::parse_duration;

/// How often `--wait` looks at its task.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Runs one subcommand against the node at `args.url`.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection);
    let (method, path, body) = match &args.command {
        ClusterCommand::Health => (Method::GET, "/_cluster/health".to_owned(), None),
        ClusterCommand::Status => (Method::GET, "/_cluster/state".to_owned(), None),
        ClusterCommand::Nodes => (Method::GET, "/_cluster/nodes".to_owned(), None),
        ClusterCommand::Layout => (Method::GET, "/_cluster/layout".to_owned(), None),
        ClusterCommand::Drain { node_id } => (Method::POST, format!("/_cluster/nodes/{node_id}/drain"), None),
        ClusterCommand::Remove { node_id } => (Method::DELETE, format!("/_cluster/nodes/{node_id}"), None),
        ClusterCommand::Gc { dry_run, grace, untagged, .. } => {
            let grace_seconds = grace
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|reason| anyhow::anyhow!("--grace: {reason}"))?
                .map(|grace| grace.as_secs());
            let body = json!({"kind": "gc", "dry_run": dry_run, "grace_seconds": grace_seconds, "untagged": untagged});
            (Method::POST, "/_cluster/tasks".to_owned(), Some(body))
        }
        ClusterCommand::Repair(flags) => start_task("repair", flags),
        ClusterCommand::Scrub(flags) => start_task("scrub", flags),
        ClusterCommand::Optimize(flags) => start_task("optimize", flags),
        ClusterCommand::Tasks => (Method::GET, "/_cluster/tasks".to_owned(), None),
        ClusterCommand::Task { id } => (Method::GET, format!("/_cluster/tasks/{id}"), None),
        ClusterCommand::Cancel { id } => (Method::POST, format!("/_cluster/tasks/{id}/cancel"), None),
    };
    let (status, answer) = client.call(method, &path, body).await?;
    let health = path.ends_with("/health");
    let unhealthy = health && status.as_u16() == 503;
    if !status.is_success() && !unhealthy {
        eprintln!("{}", pretty(&answer));
        anyhow::bail!("{} answered {status}", client.url(&path));
    }
    let wait = match &args.command {
        ClusterCommand::Gc { wait, .. } => *wait,
        ClusterCommand::Repair(flags) | ClusterCommand::Scrub(flags) | ClusterCommand::Optimize(flags) => flags.wait,
        _ => false,
    };
    if wait {
        return wait_for_task(&client, &answer).await;
    }
    if !answer.is_empty() {
        println!("{}", pretty(&answer));
    }
    if !status.is_success() {
        anyhow::bail!("cluster is unhealthy ({status})");
    }
    Ok(())
}

/// The request creating a task of `kind`.
fn start_task(kind: &str, flags: &TaskFlags) -> (Method, String, Option<Value>) {
    (Method::POST, "/_cluster/tasks".to_owned(), Some(json!({"kind": kind, "dry_run": flags.dry_run})))
}

/// Polls the task in `created` (a task document) until it ends; prints it.
async fn wait_for_task(client: &AdminClient<'_>, created: &str) -> anyhow::Result<()> {
    let task: Value = serde_json::from_str(created).context("the node did not answer with a task")?;
    let id = task["id"].as_str().context("the task has no id")?.to_owned();
    loop {
        let (status, answer) = client.call(Method::GET, &format!("/_cluster/tasks/{id}"), None).await?;
        if status.is_success() {
            let task: Value = serde_json::from_str(&answer).context("the node did not answer with a task")?;
            match task["state"].as_str() {
                Some("finished") => {
                    println!("{}", pretty(&answer));
                    return Ok(());
                }
                Some(state @ ("failed" | "cancelled")) => {
                    eprintln!("{}", pretty(&answer));
                    anyhow::bail!("task {id} {state}");
                }
                _ => {}
            }
        } else if status.as_u16() != 503 {
            eprintln!("{}", pretty(&answer));
            anyhow::bail!("{} answered {status}", client.url(&format!("/_cluster/tasks/{id}")));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}
