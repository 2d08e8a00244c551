//! Keys of the identity tables.
//!
//! Users keep the 0.1.0 key (table byte and the raw name: one part, so no
//! separator is needed); every other table uses the escaped tuple encoding.

use crate::store::codec::{KeyReader, KeyWriter};
use crate::store::{key, tables};

/// Subjects in the permission index: users and groups.
pub(crate) const SUBJECT_USER: u8 = 1;
pub(crate) const SUBJECT_GROUP: u8 = 2;

pub(crate) fn user(name: &str) -> Vec<u8> {
    key(tables::USER, &[name.as_bytes()])
}

pub(crate) fn group(name: &str) -> Vec<u8> {
    KeyWriter::table(tables::GROUP).str(name).finish()
}

/// Members of `group`: `group ‖ user`.
pub(crate) fn member(group: &str, user: &str) -> Vec<u8> {
    KeyWriter::table(tables::GROUP_MEMBER).str(group).str(user).finish()
}

pub(crate) fn members_of(group: &str) -> Vec<u8> {
    KeyWriter::table(tables::GROUP_MEMBER).str(group).finish()
}

/// Groups of `user`: `user ‖ group`.
pub(crate) fn membership(user: &str, group: &str) -> Vec<u8> {
    KeyWriter::table(tables::USER_GROUP).str(user).str(group).finish()
}

pub(crate) fn memberships_of(user: &str) -> Vec<u8> {
    KeyWriter::table(tables::USER_GROUP).str(user).finish()
}

pub(crate) fn permission(name: &str) -> Vec<u8> {
    KeyWriter::table(tables::PERMISSION).str(name).finish()
}

/// Targets naming a subject: `subject kind ‖ subject ‖ target`.
pub(crate) fn subject_target(kind: u8, subject: &str, target: &str) -> Vec<u8> {
    KeyWriter::table(tables::PERMISSION_SUBJECT).tag(kind).str(subject).str(target).finish()
}

pub(crate) fn targets_of(kind: u8, subject: &str) -> Vec<u8> {
    KeyWriter::table(tables::PERMISSION_SUBJECT).tag(kind).str(subject).finish()
}

/// A credential by the SHA-256 of its secret.
pub(crate) fn credential(hash: &[u8; 32]) -> Vec<u8> {
    KeyWriter::table(tables::CREDENTIAL).bytes(hash).finish()
}

/// A user's credentials: `user ‖ kind ‖ id` → the secret's hash.
pub(crate) fn user_credential(user: &str, kind: &str, id: &str) -> Vec<u8> {
    KeyWriter::table(tables::USER_CREDENTIAL).str(user).str(kind).str(id).finish()
}

pub(crate) fn user_credentials(user: &str) -> Vec<u8> {
    KeyWriter::table(tables::USER_CREDENTIAL).str(user).finish()
}

pub(crate) fn user_credentials_of_kind(user: &str, kind: &str) -> Vec<u8> {
    KeyWriter::table(tables::USER_CREDENTIAL).str(user).str(kind).finish()
}

pub(crate) fn revoked_token(jti: &str) -> Vec<u8> {
    KeyWriter::table(tables::REVOKED_TOKEN).str(jti).finish()
}

/// The identity revision: one key, bumped by every identity command.
pub(crate) fn revision() -> Vec<u8> {
    vec![tables::IDENTITY_REVISION]
}

/// The last string part of a key of `table` after `skip` leading string parts.
pub(crate) fn last_part(key: &[u8], table: u8, skip: usize) -> Option<String> {
    let mut reader = KeyReader::table(key, table)?;
    for _ in 0..skip {
        reader.str()?;
    }
    reader.str()
}

/// The target name of a subject-index key.
pub(crate) fn subject_target_name(key: &[u8]) -> Option<String> {
    let mut reader = KeyReader::table(key, tables::PERMISSION_SUBJECT)?;
    reader.tag()?;
    reader.str()?;
    reader.str()
}
