//! Typed identifiers.
//!
//! Every entity has its own id type so that a [`UserId`] can never be passed where an
//! [`OrgId`] is meant. All ids are UUID v7: time-ordered, so they index well, and random
//! enough (74 bits) that they cannot be guessed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7).
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (for example one read back from a store, or a stable id
            /// kept when importing users from another provider).
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The UUID inside, by value.
            #[must_use]
            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

define_id!(
    /// Identifies a [`User`](crate::User).
    UserId
);
define_id!(
    /// Identifies an [`Organization`](crate::Organization).
    OrgId
);
define_id!(
    /// Identifies a [`Session`](crate::Session). Not secret: the secret is the session token.
    SessionId
);
define_id!(
    /// Identifies an [`ExternalAccount`](crate::ExternalAccount).
    ExternalAccountId
);
define_id!(
    /// Identifies an [`Invitation`](crate::Invitation).
    InvitationId
);
define_id!(
    /// Identifies an [`ApiTokenRecord`](crate::ApiTokenRecord); it is the token's JWT `jti`.
    ApiTokenId
);
define_id!(
    /// Identifies a [`OneTimeToken`](crate::OneTimeToken).
    OneTimeTokenId
);
define_id!(
    /// Identifies an [`AuditEvent`](crate::AuditEvent).
    AuditEventId
);
define_id!(
    /// Identifies a [`Passkey`](crate::Passkey) (the library's id, not the WebAuthn
    /// credential id).
    PasskeyId
);
define_id!(
    /// Identifies a [`Challenge`](crate::Challenge).
    ChallengeId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_time_ordered() {
        let a = UserId::new();
        let b = UserId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b, "v7 ids sort by creation time");
    }

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = OrgId::new();
        let parsed: OrgId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<OrgId>(&json).unwrap(), id);
        assert!("not-a-uuid".parse::<OrgId>().is_err());
    }
}
