//! Decoding what releases before the domain split wrote: log entries whose
//! command is `{"<Command>": …}` with no domain around it, and remembered
//! rejections with one flat `RejectionKind`. A node upgraded in place replays
//! its log and its snapshot through here; nothing is ever written in these
//! shapes again.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use flotilla_storage::{Digest, ErrorKind};

use crate::rejection::Rejection;
use crate::request::Command;
use crate::{blobs, identity, oci, system, tasks};

/// The domain each command of the flat set moved to.
fn legacy_domain(command: &str) -> Option<&'static str> {
    Some(match command {
        "PutSettings" | "PutNode" | "SetNodeState" | "PutLayout" | "MarkLayoutSynced" => "System",
        "PutUser" | "DeleteUser" => "Identity",
        "CollectBlobs" => "Blobs",
        "CreateTask" | "UpdateTask" | "CancelTask" => "Tasks",
        "PutBlob" | "MountBlob" | "UnlinkBlob" | "PutManifest" | "DeleteManifest" | "DeleteTag" | "PruneManifests" => {
            "Oci"
        }
        _ => return None,
    })
}

pub(crate) fn deserialize_command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Command, D::Error> {
    deserializer.deserialize_map(CommandVisitor)
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command: {\"<Domain>\": {\"<Command>\": …}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Command, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(A::Error::custom("empty command"));
        };
        let command = match key.as_str() {
            "System" => Command::System(map.next_value()?),
            "Identity" => Command::Identity(map.next_value()?),
            "Blobs" => Command::Blobs(map.next_value()?),
            "Tasks" => Command::Tasks(map.next_value()?),
            "Oci" => Command::Oci(map.next_value()?),
            flat => {
                // The flat command's name and payload are exactly its domain
                // command's encoding: hand the same entry to that domain.
                let domain = legacy_domain(flat).ok_or_else(|| A::Error::unknown_variant(flat, DOMAINS))?;
                let entry = MapAccessDeserializer::new(ReplayedEntry { key: Some(key.clone()), map: &mut map });
                match domain {
                    "System" => Command::System(system::Command::deserialize(entry)?),
                    "Identity" => Command::Identity(identity::Command::deserialize(entry)?),
                    "Blobs" => Command::Blobs(blobs::Command::deserialize(entry)?),
                    "Tasks" => Command::Tasks(tasks::Command::deserialize(entry)?),
                    _ => Command::Oci(oci::Command::deserialize(entry)?),
                }
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom("a command has exactly one key"));
        }
        Ok(command)
    }
}

const DOMAINS: &[&str] = &["System", "Identity", "Blobs", "Tasks", "Oci"];

/// A map of one entry whose key was already read: yields the key again, then
/// reads the value from the underlying map.
struct ReplayedEntry<'m, A> {
    key: Option<String>,
    map: &'m mut A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for ReplayedEntry<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.key.take() {
            Some(key) => seed.deserialize(StrDeserializer::<A::Error>::new(&key)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A remembered rejection in either shape.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RejectionWire {
    Current {
        kind: ErrorKind,
        code: String,
        message: String,
        #[serde(default)]
        detail: BTreeMap<String, String>,
    },
    Flat {
        kind: FlatRejectionKind,
        message: String,
        digest: Option<Digest>,
    },
}

/// The one rejection vocabulary of the flat command set.
#[derive(Deserialize)]
pub(crate) enum FlatRejectionKind {
    BlobUnknown,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    Conflict,
    UserUnknown,
    NodeUnknown,
    NodeRemoved,
    Invalid,
    TaskUnknown,
    TaskConflict,
    BlobCollected,
}

impl FlatRejectionKind {
    fn current(&self) -> (ErrorKind, &'static str) {
        match self {
            FlatRejectionKind::BlobUnknown => (ErrorKind::NotFound, oci::code::BLOB_UNKNOWN),
            FlatRejectionKind::ManifestBlobUnknown => (ErrorKind::PreconditionFailed, oci::code::MANIFEST_BLOB_UNKNOWN),
            FlatRejectionKind::ManifestUnknown => (ErrorKind::NotFound, oci::code::MANIFEST_UNKNOWN),
            FlatRejectionKind::NameUnknown => (ErrorKind::NotFound, oci::code::NAME_UNKNOWN),
            FlatRejectionKind::Conflict => (ErrorKind::Conflict, blobs::code::SIZE_CONFLICT),
            FlatRejectionKind::UserUnknown => (ErrorKind::NotFound, identity::code::USER_UNKNOWN),
            FlatRejectionKind::NodeUnknown => (ErrorKind::NotFound, system::code::NODE_UNKNOWN),
            FlatRejectionKind::NodeRemoved => (ErrorKind::Conflict, system::code::NODE_REMOVED),
            FlatRejectionKind::Invalid => (ErrorKind::InvalidArgument, system::code::INVALID),
            FlatRejectionKind::TaskUnknown => (ErrorKind::NotFound, tasks::code::TASK_UNKNOWN),
            FlatRejectionKind::TaskConflict => (ErrorKind::Conflict, tasks::code::TASK_CONFLICT),
            FlatRejectionKind::BlobCollected => (ErrorKind::Conflict, blobs::code::BLOB_COLLECTED),
        }
    }
}

impl From<RejectionWire> for Rejection {
    fn from(wire: RejectionWire) -> Self {
        match wire {
            RejectionWire::Current { kind, code, message, detail } => Rejection { kind, code, message, detail },
            RejectionWire::Flat { kind, message, digest } => {
                let (kind, code) = kind.current();
                let rejection = Rejection::new(kind, code, message);
                match digest {
                    Some(digest) => rejection.with_digest(&digest),
                    None => rejection,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::request::{Request, Response};

    proptest! {
        /// Whatever bytes a log entry holds, decoding it is an error or a command, never a panic.
        #[test]
        fn decoding_never_panics(text in "\\PC{0,200}") {
            let _ = serde_json::from_str::<Command>(&text);
            let _ = serde_json::from_str::<Response>(&text);
        }

        /// Flat and nested shapes around arbitrary payloads: decoding never
        /// panics, and whatever decodes encodes back to the nested shape and
        /// decodes to the same command again.
        #[test]
        fn flat_and_nested_shapes_round_trip(
            name in prop_oneof![
                Just("CancelTask"), Just("DeleteUser"), Just("MarkLayoutSynced"), Just("DeleteTag"), Just("Nope")
            ],
            nested in any::<bool>(),
            field in prop_oneof![Just("id"), Just("name"), Just("version"), Just("repo"), Just("tag")],
            value in prop_oneof![
                "[a-z]{0,8}".prop_map(serde_json::Value::from),
                any::<u32>().prop_map(serde_json::Value::from),
            ],
        ) {
            let payload = serde_json::json!({ field: value });
            let entry = match (nested, legacy_domain(name)) {
                (true, Some(domain)) => serde_json::json!({ domain: { name: payload } }),
                _ => serde_json::json!({ name: payload }),
            };
            if let Ok(command) = serde_json::from_value::<Command>(entry) {
                let encoded = serde_json::to_string(&command).unwrap();
                prop_assert_eq!(serde_json::from_str::<Command>(&encoded).unwrap(), command);
            }
        }
    }

    #[test]
    fn flat_log_entries_decode_into_their_domain() {
        let digest = Digest::sha256_of(b"x");
        let entry = format!(
            r#"{{"request_id":7,"time_ms":9,"command":{{"PutBlob":{{"repo":"a","digest":"{digest}","size":3,"gc_epoch":1}}}}}}"#
        );
        let request: Request = serde_json::from_str(&entry).unwrap();
        let expected = oci::Command::PutBlob { repo: "a".into(), digest, size: 3, gc_epoch: 1 };
        assert_eq!(request.command, Command::Oci(expected));
        let cancel: Command = serde_json::from_str(r#"{"CancelTask":{"id":"t"}}"#).unwrap();
        assert_eq!(cancel, Command::Tasks(tasks::Command::CancelTask { id: "t".into() }));
    }

    #[test]
    fn current_entries_round_trip_and_nest_by_domain() {
        let command = Command::Tasks(tasks::Command::CancelTask { id: "t".into() });
        let json = serde_json::to_string(&command).unwrap();
        assert_eq!(json, r#"{"Tasks":{"CancelTask":{"id":"t"}}}"#);
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), command);
    }

    #[test]
    fn unknown_and_malformed_commands_are_errors() {
        for bad in [r#"{}"#, r#"{"Nope":{}}"#, r#"{"Oci":{"Nope":{}}}"#, r#"{"CancelTask":{"id":"t"},"X":1}"#, "[]"] {
            assert!(serde_json::from_str::<Command>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flat_rejections_decode_with_a_kind_and_a_code() {
        let digest = Digest::sha256_of(b"x");
        let stored = format!(r#"{{"Rejected":{{"kind":"ManifestBlobUnknown","message":"m","digest":"{digest}"}}}}"#);
        let Response::Rejected(rejection) = serde_json::from_str(&stored).unwrap() else { panic!("not a rejection") };
        assert_eq!(rejection.kind, ErrorKind::PreconditionFailed);
        assert_eq!(rejection.code, oci::code::MANIFEST_BLOB_UNKNOWN);
        assert_eq!(rejection.digest(), Some(digest.to_string().as_str()));
        let current = Response::Rejected(rejection.clone());
        let again: Response = serde_json::from_str(&serde_json::to_string(&current).unwrap()).unwrap();
        assert_eq!(again, current);
    }
}
