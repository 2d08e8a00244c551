//! The pure `apply`: one request in, one response out, all effects in the
//! store's write set. No clock reads, no randomness, no I/O beyond the store —
//! every replica computes the same state from the same log.
//!
//! The envelope is the same for every domain: a request id seen before returns
//! its first response and changes nothing; otherwise the domain applies the
//! command, checking its preconditions before any write, so a rejected command
//! changes nothing but the request-id bookkeeping.

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::rejection::{Refusal, Rejection};
use crate::request::{Command, Outcome, Request, RequestId, Response};
use crate::store::{get_json, key, put_json, tables, StateRead, StateWrite, StoreError, Tx};
use crate::ErrorKind;
use crate::{blobs, identity, oci, system, tasks};

/// How long a request id is remembered for deduplicating retries (ms).
/// Far longer than any client retry through an election.
pub const REQUEST_ID_RETENTION_MS: u64 = 15 * 60 * 1000;
/// At most this many expired request ids are dropped per apply, bounding its cost.
const REQUEST_ID_EXPIRY_BATCH: usize = 32;

/// The remembered outcome of a request id, so that a retry is applied once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRequest {
    pub time_ms: u64,
    pub response: Response,
}

/// Applies one request. A repeated request id returns the first response and changes nothing.
pub fn apply(store: &mut impl StateWrite, request: &Request) -> Result<Response, StoreError> {
    let request_key = request_key(request.request_id);
    if let Some(applied) = get_json::<AppliedRequest>(store, &request_key)? {
        return Ok(applied.response);
    }
    expire_request_ids(store, request.time_ms)?;
    let mut tx = Tx::new(store, request.time_ms);
    let response = match execute(&mut tx, &request.command) {
        Ok(Outcome::None) => Response::Ok,
        Ok(outcome) => Response::Applied(outcome),
        Err(Refusal::Rejected(rejection)) => Response::Rejected(rejection),
        Err(Refusal::Store(error)) => return Err(error),
    };
    let applied = AppliedRequest { time_ms: request.time_ms, response: response.clone() };
    put_json(store, request_key, &applied);
    store.put(request_time_key(request.time_ms, request.request_id), Vec::new());
    Ok(response)
}

fn execute(tx: &mut Tx<'_>, command: &Command) -> Result<Outcome, Refusal> {
    let active = system::Reader::new(&*tx as &dyn StateRead).model_version()?;
    check_model_version(active, command)?;
    Ok(match command {
        Command::System(command) => system::System::apply(tx, command)?.into(),
        Command::Identity(command) => identity::Identity::apply(tx, command)?.into(),
        Command::Blobs(command) => blobs::Blobs::apply(tx, command)?.into(),
        Command::Tasks(command) => tasks::Tasks::apply(tx, command)?.into(),
        Command::Oci(command) => oci::Oci::apply(tx, command)?.into(),
    })
}

/// Refuses a command that needs a newer model version than the cluster runs
/// (`active`): checked in apply, and by a proposer before it sends the
/// command to a leader that may not know it yet.
pub fn check_model_version(active: u32, command: &Command) -> Result<(), Rejection> {
    let needed = command.model_version();
    if needed <= active {
        return Ok(());
    }
    let message = format!(
        "{} needs model version {needed}; the cluster runs {active} until every node supports {needed} \
         (upgrade the remaining nodes)",
        command.name()
    );
    Err(Rejection::new(ErrorKind::Unavailable, system::code::MODEL_VERSION_INACTIVE, message))
}

/// Every domain's invariants, for the property tests: the first violation found.
pub fn check_invariants(store: &dyn StateRead) -> Result<(), String> {
    system::System::check_invariants(store)?;
    identity::Identity::check_invariants(store)?;
    blobs::Blobs::check_invariants(store)?;
    tasks::Tasks::check_invariants(store)?;
    oci::Oci::check_invariants(store)
}

/// The key under which a request id's response is remembered.
pub fn request_key(id: RequestId) -> Vec<u8> {
    key(tables::REQUEST, &[&id.0.to_be_bytes()])
}

fn request_time_key(time_ms: u64, id: RequestId) -> Vec<u8> {
    key(tables::REQUEST_TIME, &[&time_ms.to_be_bytes(), &id.0.to_be_bytes()])
}

/// Splits a `request_time` key into its time and request id.
fn request_time_parts(key: &[u8]) -> Option<(u64, RequestId)> {
    let time = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let id = u128::from_be_bytes(key.get(9..25)?.try_into().ok()?);
    Some((time, RequestId(id)))
}

fn expire_request_ids(store: &mut impl StateWrite, now: u64) -> Result<(), StoreError> {
    let cutoff = now.saturating_sub(REQUEST_ID_RETENTION_MS);
    let oldest = store.scan(&[tables::REQUEST_TIME], None, REQUEST_ID_EXPIRY_BATCH)?;
    for (key, _) in oldest {
        let Some((time, id)) = request_time_parts(&key) else { continue };
        if time >= cutoff {
            break;
        }
        store.delete(&key);
        store.delete(&request_key(id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_keys_round_trip_and_sort_by_time() {
        let early = request_time_key(5, RequestId(u128::MAX));
        let late = request_time_key(6, RequestId(0));
        assert!(early < late);
        assert_eq!(request_time_parts(&early), Some((5, RequestId(u128::MAX))));
    }
}
