//! Running the real clients (skopeo, python with oras) with deadlines.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// Fails unless the command exited 0; the message shows its output.
    pub fn expect_success(self) -> anyhow::Result<Finished> {
        if self.code != Some(0) {
            bail!(
                "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.command,
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Fails with an installation hint unless `path` is an executable file.
pub fn require_executable(path: &str, hint: &str) -> anyhow::Result<()> {
    if !Path::new(path).is_file() {
        bail!("{path} is missing: {hint}");
    }
    Ok(())
}

/// Runs `command` to completion, killing it after `timeout`.
pub fn run(mut command: Command, timeout: Duration) -> anyhow::Result<Finished> {
    let label = format!("{command:?}");
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {label}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Finished { command: label, code: status.code(), stdout, stderr }),
        None => {
            bail!("`{label}` did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}
