//! An injectable clock, so that expiry is testable without sleeping.
//!
//! ```
//! use auth_core::{Clock, ManualClock};
//! use time::Duration;
//!
//! let clock = ManualClock::new(time::macros::datetime!(2026-01-01 00:00 UTC));
//! let start = clock.now();
//! clock.advance(Duration::days(31));
//! assert_eq!(clock.now() - start, Duration::days(31));
//! ```

use std::fmt::Debug;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// A source of the current time.
///
/// Times are truncated to whole microseconds, the precision both stores keep, so that a value
/// written and read back compares equal.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time, in UTC, truncated to microseconds.
    fn now(&self) -> OffsetDateTime;
}

/// Truncates a time to whole microseconds, in UTC.
#[must_use]
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000)
        .expect("a whole number of microseconds is a valid nanosecond value")
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        // Built from whole seconds and microseconds: the same value as truncating
        // `OffsetDateTime::now_utc()`, without its 128-bit nanosecond arithmetic (this runs
        // on every request).
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since_epoch
            .ok()
            .and_then(|d| {
                let seconds = i64::try_from(d.as_secs()).ok()?;
                OffsetDateTime::from_unix_timestamp(seconds)
                    .ok()?
                    .replace_nanosecond(d.subsec_micros() * 1_000)
                    .ok()
            })
            // A system clock before 1970 or past year 9999.
            .unwrap_or_else(|| truncate_to_micros(OffsetDateTime::now_utc()))
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    #[must_use]
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(truncate_to_micros(start)),
        }
    }

    /// A clock stopped at the current system time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(OffsetDateTime::now_utc())
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = truncate_to_micros(*now + by);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: OffsetDateTime) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = truncate_to_micros(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_utc_and_whole_microseconds() {
        let now = SystemClock.now();
        assert_eq!(now.offset(), time::UtcOffset::UTC);
        assert_eq!(now.nanosecond() % 1_000, 0);
        // The same instant as the library's own clock, truncated.
        let (before, after) = (
            truncate_to_micros(OffsetDateTime::now_utc()),
            SystemClock.now(),
        );
        assert!(before <= after && after - before < Duration::seconds(1));
        assert!(now <= after);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(time::macros::datetime!(2026-03-01 12:00:00.123456789 UTC));
        assert_eq!(clock.now().nanosecond(), 123_456_000);
        let before = clock.now();
        assert_eq!(clock.now(), before);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now() - before, Duration::hours(2));
    }
}
