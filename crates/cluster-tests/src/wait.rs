//! Polling with deadlines: the only way a black-box test may wait.

use std::time::{Duration, Instant};

/// How often [`until`] polls unless told otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every `poll` until it yields `Some`, or fails after `timeout`
/// with `what` and the last observation in the message.
pub fn until_some<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, String>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("not yet"),
            Err(observation) => observation,
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        std::thread::sleep(poll);
    }
}

/// Polls `condition` until it is true, or fails after `timeout`.
pub fn until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    until_some(what, timeout, DEFAULT_POLL, || Ok(condition().then_some(())))
}

/// Waits until `GET url` answers 200 (no credentials), or fails after `timeout`.
pub fn http_ok(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
    until_some(&format!("GET {url} to answer 200"), timeout, DEFAULT_POLL, || match http.get(url).send() {
        Ok(response) if response.status().is_success() => Ok(Some(())),
        Ok(response) => Err(format!("status {}", response.status())),
        Err(error) => Err(error.to_string()),
    })
}
