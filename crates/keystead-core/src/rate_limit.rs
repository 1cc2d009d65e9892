//! The rate-limit rule shared by every store: the generic cell rate algorithm (GCRA), one
//! timestamp (`tat`) per key. The store keeps the `tat`; [`RateLimit::admit`] decides.

use time::{Duration, OffsetDateTime};

use crate::error::AuthError;

/// The longest window a rule may have; longer ones count as this long (no arithmetic on times
/// can overflow).
pub const MAX_WINDOW: Duration = Duration::days(366);

/// At most `limit` events per `window`.
///
/// A `limit` of 0 refuses every event; a `window` of zero or less limits nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many events fit in one window (and at once).
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// What a store decided about one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the event fits (and, for a hit, was recorded).
    pub allowed: bool,
    /// How long until one more event would fit; zero when allowed.
    pub retry_after: Duration,
}

/// A decision and the key's new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The decision.
    pub decision: RateDecision,
    /// The `tat` to store when the event is allowed; `None` when it is refused (store nothing).
    pub new_tat: Option<OffsetDateTime>,
}

impl RateLimit {
    /// `limit` events per `window`.
    #[must_use]
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    /// The window actually used: clamped to `0..=`[`MAX_WINDOW`].
    fn effective_window(self) -> Duration {
        self.window.clamp(Duration::ZERO, MAX_WINDOW)
    }

    /// The emission interval `T`: `window / limit`, rounded up to a whole microsecond (so the
    /// long-run rate never exceeds `limit` per `window`). The whole window for a limit of 0.
    #[must_use]
    pub fn interval(self) -> Duration {
        let window_us = micros(self.effective_window());
        let per = if self.limit == 0 {
            window_us
        } else {
            let limit = i128::from(self.limit);
            (window_us + limit - 1) / limit
        };
        from_micros(per)
    }

    /// The burst tolerance `(limit - 1) · T`: how far ahead of `now` the `tat` may be for one
    /// more event to fit.
    fn tolerance(self) -> Duration {
        let before_last = i128::from(self.limit.saturating_sub(1));
        from_micros(micros(self.interval()) * before_last)
    }

    /// Decides whether one more event fits at `now`, given the key's stored `tat` (`None` for a
    /// key never seen or swept), and what `tat` to store if it does.
    #[must_use]
    pub fn admit(self, tat: Option<OffsetDateTime>, now: OffsetDateTime) -> Admission {
        let base = tat.map_or(now, |tat| tat.max(now));
        let ahead = base - now;
        if self.limit == 0 {
            let wait = self.effective_window().max(Duration::SECOND);
            return Admission {
                decision: RateDecision::refused(wait),
                new_tat: None,
            };
        }
        let tolerance = self.tolerance();
        if ahead <= tolerance {
            Admission {
                decision: RateDecision::ALLOWED,
                new_tat: Some(base + self.interval()),
            }
        } else {
            Admission {
                decision: RateDecision::refused(ahead - tolerance),
                new_tat: None,
            }
        }
    }

    /// The `tat` after giving back one event recorded earlier: `T` earlier, but never before
    /// `now` (a key cannot bank unused capacity beyond a full burst).
    #[must_use]
    pub fn refund(self, tat: OffsetDateTime, now: OffsetDateTime) -> OffsetDateTime {
        (tat - self.interval()).max(now)
    }
}

impl RateDecision {
    /// One more event fits.
    pub const ALLOWED: Self = Self {
        allowed: true,
        retry_after: Duration::ZERO,
    };

    /// Refused; one would fit after `retry_after`.
    #[must_use]
    pub const fn refused(retry_after: Duration) -> Self {
        Self {
            allowed: false,
            retry_after,
        }
    }

    /// `retry_after` in whole seconds, rounded up, at least 1 (for `Retry-After`).
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        let us = micros(self.retry_after).max(1);
        let secs = (us + 999_999) / 1_000_000;
        u64::try_from(secs).unwrap_or(u64::MAX)
    }

    /// `Ok` when allowed; else a 429 [`AuthError::rate_limited`] with
    /// [`retry_after_secs`](Self::retry_after_secs).
    ///
    /// # Errors
    /// [`ErrorCode::RateLimited`](crate::ErrorCode::RateLimited) when refused.
    pub fn into_result(self) -> Result<(), AuthError> {
        if self.allowed {
            Ok(())
        } else {
            Err(AuthError::rate_limited(self.retry_after_secs()))
        }
    }
}

fn micros(d: Duration) -> i128 {
    d.whole_microseconds()
}

fn from_micros(us: i128) -> Duration {
    // Every value here is bounded by MAX_WINDOW times u32::MAX microseconds: far inside i64.
    let us = i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX });
    Duration::microseconds(us)
}
