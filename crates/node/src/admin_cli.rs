//! `flotilla cluster …`: the operator subcommands, thin clients of the
//! `/_cluster` REST API of any node. Each prints the JSON answer; an error
//! answer is printed to stderr and makes the command fail.

use anyhow::Context;
use reqwest::Method;

use crate::cli::{ClusterArgs, ClusterCommand};

/// Runs one subcommand against the node at `args.url`.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let (method, path) = match args.command {
        ClusterCommand::Health => (Method::GET, "/_cluster/health".to_owned()),
        ClusterCommand::Status => (Method::GET, "/_cluster/state".to_owned()),
        ClusterCommand::Nodes => (Method::GET, "/_cluster/nodes".to_owned()),
        ClusterCommand::Layout => (Method::GET, "/_cluster/layout".to_owned()),
        ClusterCommand::Drain { node_id } => (Method::POST, format!("/_cluster/nodes/{node_id}/drain")),
        ClusterCommand::Remove { node_id } => (Method::DELETE, format!("/_cluster/nodes/{node_id}")),
    };
    let url = format!("{}{path}", args.url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .request(method, &url)
        .basic_auth(&args.user, Some(&args.password))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or(body);
    if status.is_success() || (status.as_u16() == 503 && path.ends_with("/health")) {
        if !pretty.is_empty() {
            println!("{pretty}");
        }
        if !status.is_success() {
            anyhow::bail!("cluster is unhealthy ({status})");
        }
        Ok(())
    } else {
        eprintln!("{pretty}");
        anyhow::bail!("{url} answered {status}")
    }
}
