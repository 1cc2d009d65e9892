//! The change feed: how every instance learns at once that a token was revoked or a membership
//! changed, so that the caches of the hot path can be trusted.
//!
//! [`InProcessFeed`] serves one process (the SQLite store). `auth-postgres` provides a feed over
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{ApiTokenId, AuthError, AuthStore, Clock, OrgId, UserId};

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

/// How a change is spread: recorded in the store's change log (durable), then published on
/// the feed (fast). Shared by [`Auth`](crate::Auth) and its [`ApiTokens`](super::ApiTokens).
pub(crate) struct Changes {
    store: Arc<dyn AuthStore>,
    feed: Arc<dyn ChangeFeed>,
    clock: Arc<dyn Clock>,
    /// Changes whose recording failed, encoded: the next poll records them.
    pending: Mutex<Vec<String>>,
    /// Versions of the changes this instance recorded (and applied when it made them): the
    /// log reader skips them.
    own: Mutex<std::collections::HashSet<i64>>,
    /// `false` while the change log could not be read for longer than the staleness bound (or
    /// the tasks that read it cannot run): token requests are refused then.
    fresh: AtomicBool,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("feed", &self.feed)
            .field("fresh", &self.is_fresh())
            .finish_non_exhaustive()
    }
}

impl Changes {
    pub(crate) fn new(
        store: Arc<dyn AuthStore>,
        feed: Arc<dyn ChangeFeed>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            feed,
            clock,
            pending: Mutex::new(Vec::new()),
            own: Mutex::new(std::collections::HashSet::new()),
            fresh: AtomicBool::new(true),
        }
    }

    pub(crate) fn feed(&self) -> &Arc<dyn ChangeFeed> {
        &self.feed
    }

    pub(crate) fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }

    /// Whether the change log was read recently enough.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::Acquire)
    }

    pub(crate) fn set_fresh(&self, fresh: bool) {
        if self.fresh.swap(fresh, Ordering::AcqRel) != fresh {
            if fresh {
                tracing::info!("change log read again: API tokens are accepted again");
            } else {
                tracing::warn!("change log unread past the staleness bound: refusing API tokens");
            }
        }
    }

    /// Spreads a change that is already durable in the store: records it in the change log
    /// (kept for the next poll to record when the store refuses), then publishes it on the
    /// feed (a failure is logged: the other instances read it from the log within the
    /// staleness bound).
    pub(crate) async fn announce(&self, change: &Change) {
        let payload = match serde_json::to_string(change) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "could not encode a change");
                return;
            }
        };
        match self.store.record_change(&payload, self.clock.now()).await {
            Ok(version) => self.recorded(version),
            Err(err) => {
                tracing::error!(error = %err, "could not record a change: retrying at the next poll");
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(payload);
            }
        }
        if let Err(err) = self.feed.publish(change).await {
            tracing::warn!(
                error = %err.code,
                "could not publish a change: other instances read it from the change log"
            );
        }
    }

    fn recorded(&self, version: i64) {
        let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        if own.len() > 10_000 {
            // Never read back (the reader stopped?): forget them, at worst they apply twice.
            own.clear();
        }
        own.insert(version);
    }

    /// Whether this instance recorded the change of `version` (it applied it then); forgets
    /// it.
    pub(crate) fn take_own(&self, version: i64) -> bool {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&version)
    }

    /// Records the changes whose recording failed before. Stops at the first failure (the
    /// rest stay pending, in order).
    pub(crate) async fn record_pending(&self) {
        let pending: Vec<String> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        for (i, payload) in pending.iter().enumerate() {
            let recorded = self.store.record_change(payload, self.clock.now()).await;
            if let Ok(version) = recorded {
                self.recorded(version);
            } else if let Err(err) = recorded {
                tracing::warn!(error = %err, "could not record a pending change yet");
                let mut kept = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let newer = std::mem::take(&mut *kept);
                kept.extend(pending[i..].iter().cloned());
                kept.extend(newer);
                return;
            }
        }
    }
}

#[async_trait]
impl super::keys::KeyListener for Changes {
    async fn keys_changed(&self) {
        self.announce(&Change::KeysRotated).await;
    }
}
