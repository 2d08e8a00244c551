//! The HTTP client of the operator subcommands (`flotilla cluster …`,
//! `flotilla user …`): one node's REST API with an administrator's password.

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use crate::cli::Connection;

/// Calls one node as an administrator.
pub struct AdminClient<'a> {
    http: reqwest::Client,
    connection: &'a Connection,
}

impl<'a> AdminClient<'a> {
    pub fn new(connection: &'a Connection) -> Self {
        AdminClient { http: reqwest::Client::new(), connection }
    }

    /// The full URL of `path` on the node.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.connection.url.trim_end_matches('/'))
    }

    /// Sends `body` (JSON) and returns the status and the answer's text.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let url = self.url(path);
        let mut request =
            self.http.request(method, &url).basic_auth(&self.connection.user, Some(&self.connection.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}

/// Pretty-prints a JSON answer; anything else as it is.
pub fn pretty(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| body.to_owned())
}
