//! What a permission allows: actions and sets of them.
//!
//! Artifactory's actions are the canonical ones; the other surfaces' roles
//! are sets of them ([`roles`]).

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One thing a principal may do to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Read, download, pull, list.
    Read,
    /// Add or change metadata (properties, labels) without changing content.
    Annotate,
    /// Deploy, push, create.
    Write,
    /// Delete or overwrite.
    Delete,
    /// Manage the resource's permissions; implies every action above.
    Manage,
    /// Distribute (Artifactory release bundles); stored, never checked by Flotilla.
    Distribute,
    /// Manage Xray metadata; stored, never checked by Flotilla.
    ManagedXrayMeta,
}

impl Action {
    /// Every action, in order.
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::Annotate,
        Action::Write,
        Action::Delete,
        Action::Manage,
        Action::Distribute,
        Action::ManagedXrayMeta,
    ];

    /// The word of Artifactory's v2 permissions API (`read`, `write`…).
    pub fn word(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Annotate => "annotate",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Manage => "manage",
            Action::Distribute => "distribute",
            Action::ManagedXrayMeta => "managedXrayMeta",
        }
    }

    /// The letter of Artifactory's v1 permissions API (`r`, `w`…).
    pub fn letter(self) -> &'static str {
        match self {
            Action::Read => "r",
            Action::Annotate => "n",
            Action::Write => "w",
            Action::Delete => "d",
            Action::Manage => "m",
            Action::Distribute => "x",
            Action::ManagedXrayMeta => "mxm",
        }
    }

    /// The action named by a v2 word or a v1 letter (`deploy` and `admin` too).
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.word() == text || action.letter() == text).or(match text {
            "deploy" => Some(Action::Write),
            "admin" => Some(Action::Manage),
            _ => None,
        })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of actions. Serialized as a list of v2 words in action order.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u8);

impl ActionSet {
    pub const EMPTY: ActionSet = ActionSet(0);

    /// The set of `actions`.
    pub fn of(actions: &[Action]) -> Self {
        actions.iter().fold(ActionSet::EMPTY, |set, action| set.with(*action))
    }

    /// This set plus `action`.
    pub fn with(self, action: Action) -> Self {
        ActionSet(self.0 | action.bit())
    }

    /// Whether `action` is in the set itself (no implication).
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Whether the set allows `action`: holds it, or holds `Manage` and
    /// `action` is one of the content actions it implies.
    pub fn allows(self, action: Action) -> bool {
        self.contains(action)
            || (self.contains(Action::Manage)
                && matches!(action, Action::Read | Action::Annotate | Action::Write | Action::Delete))
    }

    pub fn union(self, other: ActionSet) -> Self {
        ActionSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in the set, in order.
    pub fn actions(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |action| self.contains(*action))
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.actions().map(Action::word)).finish()
    }
}

impl Serialize for ActionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.actions().map(Action::word))
    }
}

impl<'de> Deserialize<'de> for ActionSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Words;
        impl<'de> Visitor<'de> for Words {
            type Value = ActionSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of action words")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ActionSet, A::Error> {
                let mut set = ActionSet::EMPTY;
                while let Some(word) = seq.next_element::<String>()? {
                    let action =
                        Action::parse(&word).ok_or_else(|| de::Error::custom(format!("unknown action {word:?}")))?;
                    set = set.with(action);
                }
                Ok(set)
            }
        }
        deserializer.deserialize_seq(Words)
    }
}

/// The roles of other surfaces, expressed as action sets.
pub mod roles {
    use super::{Action, ActionSet};

    /// Apicurio `READ_ONLY`.
    pub const SCHEMA_READ_ONLY: ActionSet = ActionSet(1 << Action::Read as u8);
    /// Apicurio `DEVELOPER`: read, write and delete artifacts.
    pub const SCHEMA_DEVELOPER: ActionSet =
        ActionSet((1 << Action::Read as u8) | (1 << Action::Write as u8) | (1 << Action::Delete as u8));
    /// Apicurio `ADMIN`: a developer who also manages rules and role mappings.
    pub const SCHEMA_ADMIN: ActionSet = ActionSet(SCHEMA_DEVELOPER.0 | (1 << Action::Manage as u8));

    /// Harbor-style project `guest`: pull.
    pub const PROJECT_GUEST: ActionSet = ActionSet(1 << Action::Read as u8);
    /// Project `developer`: pull and push.
    pub const PROJECT_DEVELOPER: ActionSet = ActionSet((1 << Action::Read as u8) | (1 << Action::Write as u8));
    /// Project `maintainer`: a developer who may also delete and annotate.
    pub const PROJECT_MAINTAINER: ActionSet =
        ActionSet(PROJECT_DEVELOPER.0 | (1 << Action::Delete as u8) | (1 << Action::Annotate as u8));
    /// Project `projectAdmin`: a maintainer who also manages members.
    pub const PROJECT_ADMIN: ActionSet = ActionSet(PROJECT_MAINTAINER.0 | (1 << Action::Manage as u8));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn words_and_letters_parse_to_the_same_action() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.word()), Some(action));
            assert_eq!(Action::parse(action.letter()), Some(action));
        }
        assert_eq!(Action::parse("deploy"), Some(Action::Write));
        assert_eq!(Action::parse("fly"), None);
    }

    #[test]
    fn manage_implies_the_content_actions_only() {
        let manage = ActionSet::of(&[Action::Manage]);
        assert!(manage.allows(Action::Delete) && manage.allows(Action::Read));
        assert!(!manage.allows(Action::Distribute));
        assert!(!ActionSet::of(&[Action::Delete]).allows(Action::Write));
    }

    #[test]
    fn roles_nest() {
        assert!(roles::SCHEMA_ADMIN.allows(Action::Delete) && !roles::SCHEMA_READ_ONLY.allows(Action::Write));
        assert!(roles::PROJECT_MAINTAINER.allows(Action::Delete) && !roles::PROJECT_DEVELOPER.allows(Action::Delete));
        assert!(roles::PROJECT_ADMIN.contains(Action::Manage));
    }

    proptest! {
        #[test]
        fn sets_round_trip_through_json(bits in 0u8..128) {
            let set = ActionSet(bits);
            let json = serde_json::to_string(&set).unwrap();
            prop_assert_eq!(serde_json::from_str::<ActionSet>(&json).unwrap(), set);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,20}") {
            let _ = Action::parse(&text);
        }
    }
}
