//! `flotilla user add|list|passwd|delete`: a thin client of the Artifactory
//! security API (`/artifactory/api/security/users`) of any node.

use std::io::BufRead;

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin_client::{pretty, AdminClient};
use crate::cli::{UserArgs, UserCommand};

const USERS: &str = "/artifactory/api/security/users";

/// Runs one subcommand against the node at `args.connection.url`.
pub async fn run(args: UserArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.connection);
    match args.command {
        UserCommand::Add { name, email, admin, groups, new_password } => {
            let password = new_password_or_stdin(new_password)?;
            let body = json!({"email": email, "password": password, "admin": admin, "groups": groups});
            expect(&client, Method::PUT, &user_path(&name), Some(body)).await?;
            println!("created user {name}");
        }
        UserCommand::List => {
            let answer = expect(&client, Method::GET, USERS, None).await?;
            let users: Vec<Value> = serde_json::from_str(&answer).unwrap_or_default();
            for user in users {
                println!("{}", user["name"].as_str().unwrap_or_default());
            }
        }
        UserCommand::Passwd { name, new_password } => {
            let password = new_password_or_stdin(new_password)?;
            expect(&client, Method::POST, &user_path(&name), Some(json!({"password": password}))).await?;
            println!("changed the password of {name}");
        }
        UserCommand::Delete { name } => {
            let answer = expect(&client, Method::DELETE, &user_path(&name), None).await?;
            println!("{}", answer.trim());
        }
    }
    Ok(())
}

/// Calls the node; an answer other than 2xx is printed to stderr and fails.
async fn expect(client: &AdminClient<'_>, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<String> {
    let (status, answer) = client.call(method, path, body).await?;
    if !status.is_success() {
        eprintln!("{}", pretty(&answer));
        anyhow::bail!("{} answered {status}", client.url(path));
    }
    Ok(answer)
}

fn user_path(name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    format!("{USERS}/{encoded}")
}

/// The new password from the flag or environment, else the first line of stdin.
fn new_password_or_stdin(flag: Option<String>) -> anyhow::Result<String> {
    if let Some(password) = flag.filter(|password| !password.is_empty()) {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password: pass --new-password or write it on stdin");
    Ok(password)
}
