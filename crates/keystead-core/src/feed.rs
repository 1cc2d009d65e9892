//! The change feed: how every instance learns at once that a token was revoked or a membership
//! changed, so that the caches of the hot path can be trusted.
//!
//! [`InProcessFeed`] serves one process (the SQLite store). `keystead-postgres` provides a feed over
//! `LISTEN`/`NOTIFY` for several instances on one database (the Postgres store's default). A
//! feed that has lost its connection reports it through [`ChangeFeed::is_healthy`]; past the
//! staleness bound, token requests are refused (503) rather than answered from caches that may
//! be stale.
//!
//! The feed is the fast path, not the guarantee: every change is first recorded in the store's
//! change log ([`ChangeLogStore`](crate::ChangeLogStore)), then published. Each instance reads
//! the log's version every half staleness bound (one single-row read) and applies the entries
//! it has not applied yet, so a change the feed lost (a failed publish, a dropped
//! notification) still reaches every instance within the bound. When the log cannot be read
//! for longer than the bound, token requests fail closed (503) as when the feed is down.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{ApiTokenId, AuthError, OrgId, UserId};

/// A change that caches must see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// An API token was revoked.
    TokenRevoked {
        /// The token.
        id: ApiTokenId,
    },
    /// A user's membership (role, or membership itself) in an organization changed.
    MembershipChanged {
        /// The organization.
        org_id: OrgId,
        /// The member.
        user_id: UserId,
    },
    /// A user's sessions ended or their record changed (sign out everywhere, reset, verified
    /// email): cached sessions of the user are dropped.
    UserChanged {
        /// The user.
        user_id: UserId,
    },
    /// The signing keys changed (a rotation): every instance reloads them from the key store,
    /// so that it verifies the new key's tokens and publishes it in its JWKS.
    KeysRotated,
}

/// What subscribers receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// A change.
    Change(Change),
    /// Changes may have been missed (a reconnect, a lagging subscriber): drop every cache and
    /// reload the revocation list.
    Resync,
}

/// A change feed.
#[async_trait]
pub trait ChangeFeed: Send + Sync + std::fmt::Debug {
    /// Sends a change to every instance, this one included.
    ///
    /// # Errors
    /// `unavailable` when it cannot be sent.
    async fn publish(&self, change: &Change) -> Result<(), AuthError>;

    /// A receiver of the events from now on.
    fn subscribe(&self) -> broadcast::Receiver<FeedEvent>;

    /// Whether events are flowing: `false` while the feed is disconnected.
    fn is_healthy(&self) -> bool;

    /// How long, in milliseconds since the Unix epoch, the feed has been unhealthy: the time it
    /// was last known healthy. `None` while healthy.
    fn unhealthy_since_ms(&self) -> Option<i64>;
}

/// The feed of one process: a broadcast channel, always healthy.
#[derive(Debug, Clone)]
pub struct InProcessFeed {
    sender: broadcast::Sender<FeedEvent>,
}

impl Default for InProcessFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessFeed {
    /// A new feed.
    #[must_use]
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(4096);
        Self { sender }
    }

    /// Delivers an event to the subscribers (for feeds built on this one).
    pub fn deliver(&self, event: FeedEvent) {
        // No subscriber is not an error: nothing to invalidate.
        let _ = self.sender.send(event);
    }
}

#[async_trait]
impl ChangeFeed for InProcessFeed {
    async fn publish(&self, change: &Change) -> Result<(), AuthError> {
        self.deliver(FeedEvent::Change(change.clone()));
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.sender.subscribe()
    }

    fn is_healthy(&self) -> bool {
        true
    }

    fn unhealthy_since_ms(&self) -> Option<i64> {
        None
    }
}
