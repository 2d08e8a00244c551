//! First-start facts written through Raft once a leader exists: the cluster
//! settings (id, token secret) and the `admin` account.

use rand::RngCore;

use flotilla_api::auth::hash_password;
use flotilla_model::identity::{self, Grant, UserRecord};
use flotilla_model::system::{self, ClusterSettings};
use flotilla_raft::client::now_ms;
use flotilla_raft::MetaClient;

/// Environment variable holding the initial admin password.
pub const ADMIN_PASSWORD_ENV: &str = "FLOTILLA_ADMIN_PASSWORD";
/// Name of the account that unauthenticated requests act as.
pub const ANONYMOUS_USER: &str = "anonymous";

/// A fresh cluster id.
pub fn new_cluster_id() -> String {
    random_hex(16)
}

/// Creates what is missing; safe to run on every start of every node. A new
/// cluster gets `cluster_id` (chosen before any peer could reach this node).
pub async fn ensure_cluster_defaults(
    meta: &MetaClient,
    anonymous_read: bool,
    cluster_id: Option<String>,
) -> anyhow::Result<()> {
    if meta.read().await?.system().settings()?.is_none() {
        let cluster_id = cluster_id.unwrap_or_else(new_cluster_id);
        let settings = ClusterSettings { cluster_id, token_secret: random_hex(32) };
        meta.write(system::Command::PutSettings(settings)).await?;
        tracing::info!("cluster settings created");
    }
    if meta.read().await?.identity().user("admin")?.is_none() {
        let password = match std::env::var(ADMIN_PASSWORD_ENV) {
            Ok(password) if !password.is_empty() => password,
            _ => {
                let generated = random_hex(12);
                // Printed once, on the first start only; it is never stored in clear.
                eprintln!("flotilla: created user `admin` with generated password: {generated}");
                generated
            }
        };
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?;
        let admin = UserRecord {
            name: "admin".into(),
            password_hash: hash,
            admin: true,
            grants: Vec::new(),
            created_ms: now_ms(),
        };
        meta.write(identity::Command::PutUser(admin)).await?;
        tracing::info!("admin user created");
    }
    sync_anonymous_read(meta, anonymous_read).await
}

/// Makes the `anonymous` account match the `anonymous_read` setting.
async fn sync_anonymous_read(meta: &MetaClient, anonymous_read: bool) -> anyhow::Result<()> {
    let existing = meta.read().await?.identity().user(ANONYMOUS_USER)?;
    let wanted = anonymous_read.then(|| UserRecord {
        name: ANONYMOUS_USER.into(),
        password_hash: String::new(),
        admin: false,
        grants: vec![Grant { repository: "*".into(), read: true, write: false, delete: false }],
        created_ms: existing.as_ref().map(|u| u.created_ms).unwrap_or_else(now_ms),
    });
    let command = match (existing, wanted) {
        (None, Some(user)) => identity::Command::PutUser(user),
        (Some(_), None) => identity::Command::DeleteUser { name: ANONYMOUS_USER.into() },
        (Some(current), Some(user)) if current.grants != user.grants => identity::Command::PutUser(user),
        _ => return Ok(()),
    };
    meta.write(command).await?;
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}
