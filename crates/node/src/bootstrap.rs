//! First-start facts written through Raft once a leader exists: the cluster
//! settings (id, token secret), the `admin` account, and the `anonymous`
//! account with its read target when anonymous reads are on.

use std::collections::BTreeMap;

use rand::RngCore;

use flotilla_api::auth::hash_password;
use flotilla_model::identity::{
    self, Action, ActionSet, PermissionSection, PermissionTarget, ResourceKind, UserRecord, UserUpdate,
};
use flotilla_model::system::{self, ClusterSettings};
use flotilla_raft::MetaClient;

/// Environment variable holding the initial admin password.
pub const ADMIN_PASSWORD_ENV: &str = "FLOTILLA_ADMIN_PASSWORD";
/// Name of the account that unauthenticated requests act as.
pub use flotilla_model::identity::ANONYMOUS_USER;
/// The permission target `anonymous_read = true` maintains.
pub const ANONYMOUS_READ_TARGET: &str = "anonymous-read";
/// The first admin's e-mail address until an operator sets theirs (Artifactory
/// clients require a syntactically valid one).
const ADMIN_EMAIL: &str = "admin@example.com";

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
    let admin = meta.read().await?.identity().user("admin")?;
    if admin.as_ref().is_some_and(|admin| admin.email.is_empty()) {
        // An admin of 0.1.0 had no address; Artifactory clients need one.
        let update = UserUpdate { email: Some(ADMIN_EMAIL.into()), ..UserUpdate::default() };
        meta.write(identity::Command::UpdateUser { name: "admin".into(), update }).await?;
    }
    if admin.is_none() {
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
        let mut admin = UserRecord::new("admin", ADMIN_EMAIL, hash);
        admin.admin = true;
        meta.write(identity::Command::PutUser(admin)).await?;
        tracing::info!("admin user created");
    }
    sync_anonymous_read(meta, anonymous_read).await
}

/// Makes the `anonymous` account and its permission target match the
/// `anonymous_read` setting: read on every repository (OCI ones included).
/// An `anonymous` account of 0.1.0 (with grants) is rewritten to the target.
async fn sync_anonymous_read(meta: &MetaClient, anonymous_read: bool) -> anyhow::Result<()> {
    let catalog = meta.read().await?;
    let (user, target) = {
        let identity = catalog.identity();
        (identity.user(ANONYMOUS_USER)?, identity.permission_target(ANONYMOUS_READ_TARGET)?)
    };
    if !anonymous_read {
        if target.is_some() {
            meta.write(identity::Command::DeletePermissionTarget { name: ANONYMOUS_READ_TARGET.into() }).await?;
        }
        if user.is_some() {
            meta.write(identity::Command::DeleteUser { name: ANONYMOUS_USER.into() }).await?;
        }
        return Ok(());
    }
    if user.as_ref().is_none_or(|user| !user.grants.is_empty()) {
        let mut anonymous = UserRecord::new(ANONYMOUS_USER, "", "");
        anonymous.profile_updatable = false;
        meta.write(identity::Command::PutUser(anonymous)).await?;
    }
    let wanted = anonymous_read_target();
    if target.as_ref().is_none_or(|target| target.sections != wanted.sections) {
        meta.write(identity::Command::SavePermissionTarget { target: wanted, replace: true }).await?;
    }
    Ok(())
}

/// Read on every repository for the `anonymous` account.
fn anonymous_read_target() -> PermissionTarget {
    let section = PermissionSection {
        kind: ResourceKind::Repo,
        targets: vec![identity::ANY.into()],
        include_patterns: vec!["**".into()],
        exclude_patterns: Vec::new(),
        users: BTreeMap::from([(ANONYMOUS_USER.to_owned(), ActionSet::of(&[Action::Read]))]),
        groups: BTreeMap::new(),
    };
    PermissionTarget { name: ANONYMOUS_READ_TARGET.into(), sections: vec![section], created_ms: 0, modified_ms: 0 }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}
