//! Spreading changes: each change is recorded in the store's change log, then published on
//! the feed ([`ChangeFeed`], defined in `keystead-core` so that stores can implement it).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

pub use keystead_core::feed::{Change, ChangeFeed, FeedEvent, InProcessFeed};

use crate::{AuthError, AuthStore, Clock, ErrorCode};

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
    /// When the change log was last read (Unix microseconds of the clock), 0 before the first
    /// read.
    last_read_us: AtomicI64,
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
            last_read_us: AtomicI64::new(0),
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

    /// Notes a read of the change log now.
    pub(crate) fn note_read(&self) {
        self.last_read_us
            .store(self.clock.now_micros(), Ordering::Release);
    }

    /// Seconds since the change log was last read (since the Unix epoch before the first read).
    pub(crate) fn read_lag_seconds(&self) -> f64 {
        let elapsed = self.clock.now_micros() - self.last_read_us.load(Ordering::Acquire);
        #[allow(clippy::cast_precision_loss)] // microseconds since 1970 fit 2^52 until 2112
        let seconds = elapsed.max(0) as f64 / 1e6;
        seconds
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

    /// [`announce`](Self::announce), for a process that may exit right after (an operator's
    /// command): a change that could not be recorded is the caller's error instead of a
    /// retry at the next poll.
    pub(crate) async fn announce_durably(&self, change: &Change) -> Result<(), AuthError> {
        let payload = serde_json::to_string(change).map_err(|err| {
            tracing::error!(error = %err, "could not encode a change");
            AuthError::new(ErrorCode::Internal)
        })?;
        let version = self.store.record_change(&payload, self.clock.now()).await?;
        self.recorded(version);
        if let Err(err) = self.feed.publish(change).await {
            tracing::warn!(
                error = %err.code,
                "could not publish a change: other instances read it from the change log"
            );
        }
        Ok(())
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
