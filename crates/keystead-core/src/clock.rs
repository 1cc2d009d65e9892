//! An injectable clock, so that expiry is testable without sleeping.
//!
//! ```
//! use keystead_core::{Clock, ManualClock};
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

    /// [`now`](Self::now) as microseconds since the Unix epoch: what the per-request checks
    /// compare against deadlines computed ahead. Override it only with the same instant.
    fn now_micros(&self) -> i64 {
        unix_micros(self.now())
    }
}

/// Whole microseconds since the Unix epoch, rounded down (saturating past `i64`, which
/// `OffsetDateTime`'s range never reaches).
#[must_use]
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

/// Whole microseconds since the Unix epoch, rounded up.
#[must_use]
pub fn unix_micros_ceil(t: OffsetDateTime) -> i64 {
    i64::try_from(-(-t.unix_timestamp_nanos()).div_euclid(1_000)).unwrap_or(i64::MAX)
}

/// The instant `micros` microseconds after the Unix epoch (clamped to `OffsetDateTime`'s
/// range).
#[must_use]
pub fn from_unix_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap_or(if micros < 0 {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
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

    fn now_micros(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs())
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .and_then(|us| us.checked_add(i64::from(d.subsec_micros())))
                .unwrap_or_else(|| unix_micros(self.now())),
            Err(_) => unix_micros(self.now()),
        }
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
    fn system_clock_micros_are_its_now() {
        let a = SystemClock.now();
        let us = SystemClock.now_micros();
        let b = SystemClock.now();
        assert!(unix_micros(a) <= us && us <= unix_micros(b));
        assert_eq!(from_unix_micros(unix_micros(a)), a);
    }

    #[test]
    fn micros_round_down_and_up_on_both_sides_of_the_epoch() {
        use time::macros::datetime;
        let after = datetime!(1970-01-01 00:00:01.0000015 UTC);
        assert_eq!(unix_micros(after), 1_000_001);
        assert_eq!(unix_micros_ceil(after), 1_000_002);
        let before = datetime!(1969-12-31 23:59:59.9999985 UTC);
        assert_eq!(unix_micros(before), -2);
        assert_eq!(unix_micros_ceil(before), -1);
        let whole = datetime!(2026-03-01 12:00:00.123456 UTC);
        assert_eq!(unix_micros(whole), unix_micros_ceil(whole));
        assert_eq!(from_unix_micros(unix_micros(whole)), whole);
        assert_eq!(
            from_unix_micros(i64::MAX),
            time::PrimitiveDateTime::MAX.assume_utc()
        );
        assert_eq!(
            from_unix_micros(i64::MIN),
            time::PrimitiveDateTime::MIN.assume_utc()
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(time::macros::datetime!(2026-03-01 12:00:00.123456789 UTC));
        assert_eq!(clock.now().nanosecond(), 123_456_000);
        let before = clock.now();
        assert_eq!(clock.now(), before);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now() - before, Duration::hours(2));
        assert_eq!(clock.now_micros(), unix_micros(clock.now()));
    }
}
