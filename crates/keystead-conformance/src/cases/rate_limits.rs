//! [`RateLimitStore`](keystead::RateLimitStore): per-key GCRA state, decided atomically, so
//! that limits hold across connections and instances.

use std::sync::Arc;

use keystead::{AuthStore, Clock, ManualClock, RateDecision, RateLimit, TokenHash};
use time::{Duration, OffsetDateTime};

use super::race;

/// 10 per 15 minutes: one more every 90 seconds.
const TEN_PER_QUARTER_HOUR: RateLimit = RateLimit::new(10, Duration::minutes(15));

fn key(name: &str) -> TokenHash {
    TokenHash::of(&format!("conformance/rate-limit/{name}"))
}

async fn hit(store: &dyn AuthStore, key: &TokenHash, rule: RateLimit, now: OffsetDateTime) -> bool {
    store
        .rate_limit_hit(key, rule, now)
        .await
        .expect("rate_limit_hit")
        .allowed
}

async fn hits(
    store: &dyn AuthStore,
    key: &TokenHash,
    rule: RateLimit,
    now: OffsetDateTime,
    n: usize,
) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        if hit(store, key, rule, now).await {
            allowed += 1;
        }
    }
    allowed
}

async fn peek(
    store: &dyn AuthStore,
    key: &TokenHash,
    rule: RateLimit,
    now: OffsetDateTime,
) -> RateDecision {
    store
        .rate_limit_peek(key, rule, now)
        .await
        .expect("rate_limit_peek")
}

/// A fresh key takes exactly `limit` events at once; the next is refused with the time until
/// one fits (one interval: 90 seconds for 10 per 15 minutes), and a refusal records nothing.
pub async fn rate_limit_allows_exactly_the_limit_then_refuses_with_retry_after(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let k = key("burst");
    for i in 0..10 {
        let d = store
            .rate_limit_hit(&k, TEN_PER_QUARTER_HOUR, clock.now())
            .await
            .expect("hit");
        assert_eq!(d, RateDecision::ALLOWED, "hit {i} of the burst");
    }
    for _ in 0..3 {
        let d = store
            .rate_limit_hit(&k, TEN_PER_QUARTER_HOUR, clock.now())
            .await
            .expect("hit");
        assert_eq!(
            d,
            RateDecision::refused(Duration::seconds(90)),
            "refusals record nothing, so the wait stays one interval"
        );
        assert_eq!(d.retry_after_secs(), 90);
    }
    clock.advance(Duration::seconds(30));
    let d = store
        .rate_limit_hit(&k, TEN_PER_QUARTER_HOUR, clock.now())
        .await
        .expect("hit");
    assert_eq!(d, RateDecision::refused(Duration::seconds(60)));
}

/// Past the limit, capacity comes back one event per `window / limit`, and a key idle for a
/// whole window takes a full burst again.
pub async fn rate_limit_frees_up_one_event_per_interval(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let k = key("gradual");
    assert_eq!(
        hits(&*store, &k, TEN_PER_QUARTER_HOUR, clock.now(), 12).await,
        10
    );
    clock.advance(Duration::seconds(90) - Duration::MICROSECOND);
    assert!(
        !hit(&*store, &k, TEN_PER_QUARTER_HOUR, clock.now()).await,
        "one microsecond early"
    );
    clock.advance(Duration::MICROSECOND);
    assert_eq!(
        hits(&*store, &k, TEN_PER_QUARTER_HOUR, clock.now(), 3).await,
        1,
        "after one interval, exactly one more"
    );
    clock.advance(Duration::seconds(180));
    assert_eq!(
        hits(&*store, &k, TEN_PER_QUARTER_HOUR, clock.now(), 3).await,
        2,
        "after two intervals, two more"
    );
    clock.advance(Duration::minutes(15));
    assert_eq!(
        hits(&*store, &k, TEN_PER_QUARTER_HOUR, clock.now(), 11).await,
        10,
        "a whole window idle: a full burst"
    );
}

/// Peeking answers what a hit would, and records nothing.
pub async fn rate_limit_peek_does_not_consume(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let k = key("peek");
    let rule = RateLimit::new(3, Duration::minutes(3));
    for _ in 0..20 {
        assert_eq!(
            peek(&*store, &k, rule, clock.now()).await,
            RateDecision::ALLOWED
        );
    }
    assert_eq!(hits(&*store, &k, rule, clock.now(), 3).await, 3);
    for _ in 0..3 {
        assert_eq!(
            peek(&*store, &k, rule, clock.now()).await,
            RateDecision::refused(Duration::minutes(1))
        );
    }
    clock.advance(Duration::minutes(1));
    assert_eq!(
        peek(&*store, &k, rule, clock.now()).await,
        RateDecision::ALLOWED
    );
    assert!(hit(&*store, &k, rule, clock.now()).await);
    assert!(!peek(&*store, &k, rule, clock.now()).await.allowed);
}

/// Using up one key leaves every other key untouched, and each key follows its own rule.
pub async fn rate_limit_keys_are_independent_with_their_own_rules(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let per_hour_5 = RateLimit::new(5, Duration::hours(1));
    let per_minute_2 = RateLimit::new(2, Duration::minutes(1));
    assert_eq!(hits(&*store, &a, TEN_PER_QUARTER_HOUR, now, 15).await, 10);
    assert_eq!(hits(&*store, &b, per_hour_5, now, 8).await, 5);
    assert_eq!(hits(&*store, &c, per_minute_2, now, 4).await, 2);
    assert_eq!(
        peek(&*store, &b, per_hour_5, now).await,
        RateDecision::refused(Duration::minutes(12))
    );
    assert_eq!(
        peek(&*store, &c, per_minute_2, now).await,
        RateDecision::refused(Duration::seconds(30))
    );
    assert_eq!(
        peek(&*store, &key("untouched"), per_minute_2, now).await,
        RateDecision::ALLOWED
    );
    clock.advance(Duration::seconds(30));
    assert!(hit(&*store, &c, per_minute_2, clock.now()).await);
    assert!(!hit(&*store, &b, per_hour_5, clock.now()).await);
    assert!(!hit(&*store, &a, TEN_PER_QUARTER_HOUR, clock.now()).await);
}

/// A refund gives back exactly one recorded event; on an unknown key it does nothing; it never
/// banks capacity beyond a full burst.
pub async fn rate_limit_refund_gives_back_one_event(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let k = key("refund");
    let rule = RateLimit::new(4, Duration::minutes(4));
    assert_eq!(hits(&*store, &k, rule, clock.now(), 5).await, 4);
    store
        .rate_limit_refund(&k, rule, clock.now())
        .await
        .expect("refund");
    assert_eq!(hits(&*store, &k, rule, clock.now(), 3).await, 1);

    store
        .rate_limit_refund(&key("never-hit"), rule, clock.now())
        .await
        .expect("refunding an unknown key is no error");
    assert_eq!(
        peek(&*store, &key("never-hit"), rule, clock.now()).await,
        RateDecision::ALLOWED
    );

    clock.advance(Duration::hours(1));
    for _ in 0..10 {
        store
            .rate_limit_refund(&k, rule, clock.now())
            .await
            .expect("refund");
    }
    assert_eq!(
        hits(&*store, &k, rule, clock.now(), 10).await,
        4,
        "refunds on an idle key do not raise the burst"
    );
}

/// The sweep removes exactly the idle keys (`tat <= now`), and a swept key behaves as new.
pub async fn delete_expired_rate_limits_removes_only_idle_keys(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let start = clock.now();
    let rule = RateLimit::new(2, Duration::minutes(10)); // one per 5 minutes
    let (one, two, later) = (key("one"), key("two"), key("later"));
    assert_eq!(hits(&*store, &one, rule, start, 1).await, 1); // tat = start + 5 min
    assert_eq!(hits(&*store, &two, rule, start, 2).await, 2); // tat = start + 10 min
    assert_eq!(
        hits(&*store, &later, rule, start + Duration::minutes(3), 1).await,
        1
    ); // tat = start + 8 min

    let swept = |at| {
        let store = Arc::clone(&store);
        async move {
            store
                .delete_expired_rate_limits(at)
                .await
                .expect("delete_expired_rate_limits")
        }
    };
    assert_eq!(
        swept(start + Duration::minutes(5) - Duration::MICROSECOND).await,
        0
    );
    assert_eq!(
        swept(start + Duration::minutes(5)).await,
        1,
        "tat == now is idle"
    );
    assert_eq!(
        peek(&*store, &two, rule, start + Duration::minutes(5)).await,
        RateDecision::ALLOWED,
        "two is half drained, not swept"
    );
    assert_eq!(
        hits(&*store, &two, rule, start + Duration::minutes(5), 2).await,
        1,
        "two kept its state: one more fits, not a full burst"
    ); // tat = start + 15 min
    assert_eq!(swept(start + Duration::minutes(8)).await, 1, "later");
    assert_eq!(swept(start + Duration::hours(1)).await, 1, "two");
    assert_eq!(swept(start + Duration::hours(2)).await, 0);
    assert_eq!(
        hits(&*store, &one, rule, start + Duration::hours(2), 3).await,
        2,
        "a swept key takes a full burst"
    );
}

/// Of 32 concurrent hits on one key with a limit of 10, exactly 10 are allowed; the others are
/// refused (not errors), and the key is then used up.
pub async fn concurrent_hits_on_one_key_allow_exactly_the_limit(store: Arc<dyn AuthStore>) {
    const RACERS: usize = 32;
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let k = key("race");
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        async move { store.rate_limit_hit(&k, TEN_PER_QUARTER_HOUR, now).await }
    })
    .await;
    let mut allowed = 0;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(d) if d.allowed => allowed += 1,
            Ok(d) => assert!(
                d.retry_after > Duration::ZERO && d.retry_after <= Duration::minutes(15),
                "racer {i}: {d:?}"
            ),
            Err(e) => panic!("racer {i}: a hit failed instead of being decided: {e:?}"),
        }
    }
    assert_eq!(allowed, 10, "exactly the limit is allowed");
    assert_eq!(
        peek(&*store, &k, TEN_PER_QUARTER_HOUR, now).await,
        RateDecision::refused(Duration::seconds(90)),
        "the ten allowed hits were all recorded"
    );
}
