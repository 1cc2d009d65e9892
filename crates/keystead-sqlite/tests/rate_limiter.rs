//! The contract's rate limits, through `keystead::RateLimiter`, on a real SQLite file: the
//! scenarios of the HTTP contract's "Rate limits" table, and limits that hold across two
//! store instances on one file.

use std::net::IpAddr;
use std::sync::Arc;

use keystead::{
    AuthError, AuthStore, Email, ErrorCode, ManualClock, RateLimit, RateLimitConfig, RateLimiter,
    UserId,
};
use keystead_sqlite::SqliteStore;
use tempfile::TempDir;
use time::Duration;

struct Fixture {
    _dir: TempDir,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    limiter: RateLimiter,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("auth.db"))
            .await
            .expect("open"),
    );
    let clock = Arc::new(ManualClock::starting_now());
    let limiter = RateLimiter::new(
        Arc::clone(&store) as Arc<dyn AuthStore>,
        RateLimitConfig::default(),
        Arc::clone(&clock) as Arc<dyn keystead::Clock>,
    );
    Fixture {
        _dir: dir,
        store,
        clock,
        limiter,
    }
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("a valid email")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid address")
}

#[track_caller]
fn assert_rate_limited<T: std::fmt::Debug>(result: Result<T, AuthError>, secs: u64) {
    match result {
        Err(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
            assert_eq!(e.status(), 429);
            assert_eq!(e.retry_after_secs, Some(secs), "{e:?}");
        }
        Ok(v) => panic!("expected 429 rate_limited, got Ok({v:?})"),
    }
}

/// A failed sign-in: the attempt is dropped without `succeeded`.
async fn fail_sign_in(limiter: &RateLimiter, email: &Email, client: IpAddr) {
    let attempt = limiter
        .begin_sign_in(email, client)
        .await
        .expect("within the limits");
    drop(attempt);
}

#[tokio::test]
async fn ten_failed_sign_ins_for_one_email_then_429_from_any_address() {
    let f = fixture().await;
    let victim = email("alice@example.com");
    for i in 0..10 {
        fail_sign_in(&f.limiter, &victim, ip(&format!("198.51.100.{i}"))).await;
    }
    // The 11th: refused before any password is checked, whatever the address, and also for
    // the address-case variant of the email (one normalized key).
    assert_rate_limited(
        f.limiter.begin_sign_in(&victim, ip("203.0.113.99")).await,
        90,
    );
    assert_rate_limited(
        f.limiter
            .begin_sign_in(&email("ALICE@Example.com"), ip("2001:db8::1"))
            .await,
        90,
    );
    // Another email from the same addresses is not affected.
    f.limiter
        .begin_sign_in(&email("bob@example.com"), ip("198.51.100.1"))
        .await
        .expect("bob is not limited")
        .succeeded()
        .await
        .expect("succeeded");
    // After Retry-After, exactly one more attempt.
    f.clock.advance(Duration::seconds(90));
    fail_sign_in(&f.limiter, &victim, ip("203.0.113.99")).await;
    assert_rate_limited(
        f.limiter.begin_sign_in(&victim, ip("203.0.113.99")).await,
        90,
    );
}

#[tokio::test]
async fn the_limit_holds_for_unknown_emails_too() {
    // The limiter never looks the email up: an address without an account is limited the
    // same way (and the answer does not tell whether it exists).
    let f = fixture().await;
    let nobody = email("nobody@example.com");
    for _ in 0..10 {
        fail_sign_in(&f.limiter, &nobody, ip("198.51.100.7")).await;
    }
    assert_rate_limited(
        f.limiter.begin_sign_in(&nobody, ip("198.51.100.7")).await,
        90,
    );
}

#[tokio::test]
async fn successful_sign_ins_do_not_count() {
    let f = fixture().await;
    let alice = email("alice@example.com");
    for _ in 0..50 {
        f.limiter
            .begin_sign_in(&alice, ip("198.51.100.7"))
            .await
            .expect("successes never use the budget up")
            .succeeded()
            .await
            .expect("succeeded");
    }
    for _ in 0..10 {
        fail_sign_in(&f.limiter, &alice, ip("198.51.100.7")).await;
    }
    assert_rate_limited(
        f.limiter.begin_sign_in(&alice, ip("198.51.100.7")).await,
        90,
    );
}

#[tokio::test]
async fn past_the_limit_even_the_right_password_gets_429() {
    // The attempt is refused before the password is verified: there is no way to present the
    // right password to a used-up limit.
    let f = fixture().await;
    let alice = email("alice@example.com");
    for _ in 0..10 {
        fail_sign_in(&f.limiter, &alice, ip("198.51.100.7")).await;
    }
    let right_password = f.limiter.begin_sign_in(&alice, ip("198.51.100.7")).await;
    assert_rate_limited(right_password, 90);
}

#[tokio::test]
async fn one_hundred_failed_sign_ins_per_address_across_emails() {
    let f = fixture().await;
    let attacker = ip("203.0.113.66");
    for i in 0..100 {
        fail_sign_in(
            &f.limiter,
            &email(&format!("user{i}@example.com")),
            attacker,
        )
        .await;
    }
    // 100 per 15 minutes: one more every 9 seconds.
    assert_rate_limited(
        f.limiter
            .begin_sign_in(&email("fresh@example.com"), attacker)
            .await,
        9,
    );
    // The refusal by address took nothing from the email's budget.
    for _ in 0..10 {
        fail_sign_in(&f.limiter, &email("fresh@example.com"), ip("198.51.100.1")).await;
    }
    // Another address is not affected.
    fail_sign_in(&f.limiter, &email("user0@example.com"), ip("203.0.113.67")).await;
}

#[tokio::test]
async fn an_ipv6_client_cannot_escape_by_changing_addresses_in_its_64() {
    let f = fixture().await;
    for i in 0..100 {
        let client = ip(&format!("2001:db8:aa:bb::{:x}", i + 1));
        fail_sign_in(&f.limiter, &email(&format!("user{i}@example.com")), client).await;
    }
    assert_rate_limited(
        f.limiter
            .begin_sign_in(&email("x@example.com"), ip("2001:db8:aa:bb:dead:beef:0:1"))
            .await,
        9,
    );
    fail_sign_in(&f.limiter, &email("x@example.com"), ip("2001:db8:aa:bc::1")).await;
}

#[tokio::test]
async fn concurrent_guesses_cannot_outrun_the_limit() {
    // Many guesses sent at once, all verifying their password before any finished: only as
    // many get to verify as the limit allows.
    let f = fixture().await;
    let alice = email("alice@example.com");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let limiter = f.limiter.clone();
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            limiter
                .begin_sign_in(&alice, ip(&format!("198.51.100.{i}")))
                .await
        }));
    }
    let mut attempts = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(attempt) => attempts.push(attempt), // held: "still verifying"
            Err(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                refused += 1;
            }
        }
    }
    assert_eq!(attempts.len(), 10);
    assert_eq!(refused, 30);
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let f = fixture().await;
    let client = ip("198.51.100.20");
    for _ in 0..100 {
        f.limiter.hit_sign_up(client).await.expect("within 100/h");
    }
    // 100 per hour: one more every 36 seconds.
    assert_rate_limited(f.limiter.hit_sign_up(client).await, 36);
    f.limiter
        .hit_sign_up(ip("198.51.100.21"))
        .await
        .expect("another address");
    // Sign-ups and sign-ins have separate budgets.
    fail_sign_in(&f.limiter, &email("a@example.com"), client).await;
    f.clock.advance(Duration::seconds(36));
    f.limiter.hit_sign_up(client).await.expect("one more");
    assert_rate_limited(f.limiter.hit_sign_up(client).await, 36);
}

#[tokio::test]
async fn account_mails_past_five_an_hour_are_not_sent() {
    let f = fixture().await;
    let user = UserId::new();
    for i in 0..5 {
        assert!(
            f.limiter.hit_account_mail(user).await.expect("hit"),
            "mail {i}"
        );
    }
    for _ in 0..3 {
        assert!(
            !f.limiter.hit_account_mail(user).await.expect("no error"),
            "the 6th mail is not sent, and it is no error (the answer stays 202/200)"
        );
    }
    assert!(
        f.limiter
            .hit_account_mail(UserId::new())
            .await
            .expect("hit"),
        "another account"
    );
    f.clock.advance(Duration::minutes(12));
    assert!(f.limiter.hit_account_mail(user).await.expect("hit"));
    assert!(!f.limiter.hit_account_mail(user).await.expect("hit"));
}

#[tokio::test]
async fn limits_hold_across_store_instances_on_one_file() {
    let f = fixture().await;
    let path = f.store.path().expect("a file").to_path_buf();
    let other = Arc::new(SqliteStore::open(&path).await.expect("second instance"));
    let other_limiter = RateLimiter::new(
        other as Arc<dyn AuthStore>,
        RateLimitConfig::default(),
        Arc::clone(&f.clock) as Arc<dyn keystead::Clock>,
    );
    let alice = email("alice@example.com");
    for i in 0..10 {
        let limiter = if i % 2 == 0 {
            &f.limiter
        } else {
            &other_limiter
        };
        fail_sign_in(limiter, &alice, ip("198.51.100.7")).await;
    }
    assert_rate_limited(
        f.limiter.begin_sign_in(&alice, ip("198.51.100.8")).await,
        90,
    );
    assert_rate_limited(
        other_limiter
            .begin_sign_in(&alice, ip("198.51.100.8"))
            .await,
        90,
    );
}

#[tokio::test]
async fn settings_change_the_limits_and_housekeeping_sweeps_idle_keys() {
    let f = fixture().await;
    let mut config = RateLimitConfig::default();
    config.sign_in_per_email = RateLimit::new(3, Duration::minutes(1));
    let limiter = RateLimiter::new(
        Arc::clone(&f.store) as Arc<dyn AuthStore>,
        config,
        Arc::clone(&f.clock) as Arc<dyn keystead::Clock>,
    );
    let alice = email("alice@example.com");
    for _ in 0..3 {
        fail_sign_in(&limiter, &alice, ip("198.51.100.7")).await;
    }
    assert_rate_limited(limiter.begin_sign_in(&alice, ip("198.51.100.7")).await, 20);
    assert_eq!(limiter.delete_expired().await.expect("sweep"), 0);
    // The address's key (3 failures at 9 s each, 100 per 15 min) is idle after 27 s; the
    // email's (3 at 20 s each) after 60 s.
    f.clock.advance(Duration::seconds(30));
    assert_eq!(limiter.delete_expired().await.expect("sweep"), 1);
    f.clock.advance(Duration::seconds(30));
    assert_eq!(limiter.delete_expired().await.expect("sweep"), 1);
    assert_eq!(limiter.delete_expired().await.expect("sweep"), 0);
}
