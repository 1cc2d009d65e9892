//! A login storm (the performance goal P4, `docs/benchmarks.md`, "Login storm"): this app on
//! SQLite serves authenticated `GET /api/projects` at a steady rate while 64 users sign in at
//! once, twice. What is asserted is correctness, not timing: every GET is answered 200, every
//! sign-in is either signed in (200) or shed with the documented 503 `unavailable` and a
//! `Retry-After` (or refused with 429 `rate_limited`), never anything else; at least as many
//! sign-ins succeed as the hashing bound lets run at once; and the app's peak resident memory
//! stays within what the bound allows. The latencies are printed, not asserted (a shared test
//! machine's timings say nothing); `cargo xtask bench-storm` measures them.

use std::time::Duration;

use contract_suite::storm::{self, StormConfig, StormReport};
use contract_suite::{AppUnderTest, StoreKind};

/// The hashing bound the app is started with (`AUTH_PASSWORD_CONCURRENCY`): set, so that the
/// memory bound does not depend on the test machine's CPU count.
const BOUND: u64 = 2;

/// What one hash in flight may hold: its 19 MiB argon2 work buffer (19 456 KiB) and 2 MiB for
/// the rest (the blocking thread's stack and its allocator arena's first pages).
const PER_HASH_KIB: u64 = 21 * 1024;

/// What the app may grow by, apart from hashing, over its resident memory once started: the
/// sessions and users of the storm (a few hundred small records), the connections (about 70
/// at once, each with hyper's buffers), the runtime's and SQLite's caches warming up, and
/// the allocator's arenas for the runtime's worker threads. Measured: 4–9 MiB over the start
/// (`docs/benchmarks.md`, "Login storm"); 24 MiB leaves room for a slower allocator pattern
/// without hiding an unbounded one (one hash too many is 19 MiB, a missing bound at 64
/// sign-ins 1.2 GiB).
const BASE_GROWTH_KIB: u64 = 24 * 1024;

#[test]
fn login_storm_keeps_gets_answered_and_memory_bounded() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async {
        let app = AppUnderTest::start_with(
            env!("CARGO_BIN_EXE_axum-saas"),
            StoreKind::Sqlite,
            &[("AUTH_PASSWORD_CONCURRENCY", &BOUND.to_string())],
        )
        .await;
        let config = StormConfig {
            users: 64,
            storms: 2,
            quiet: Duration::from_secs(2),
            get_connections: 4,
            get_interval: Duration::from_millis(10),
            sign_up_concurrency: 4,
        };
        let report = storm::run(&app, &config).await;
        print_figures(&report);
        check(&report, &config);
        app.finish().await;
    });
}

fn print_figures(report: &StormReport) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let q = StormReport::quantile;
    let quiet_p99 = q(&report.quiet, 0.99);
    let storm_p99 = q(&report.storm, 0.99);
    contract_suite::figures!(
        "storm: GETs quiet {} (p50 {:.2} ms, p99 {:.2} ms), storm {} (p50 {:.2} ms, p99 {:.2} ms); \
         storm p99 / quiet p99 = {:.1}",
        report.quiet.len(),
        ms(q(&report.quiet, 0.5)),
        ms(quiet_p99),
        report.storm.len(),
        ms(q(&report.storm, 0.5)),
        ms(storm_p99),
        storm_p99.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9),
    );
    contract_suite::figures!(
        "storm: sign-ins {}: 200 × {}, 503 × {}, 429 × {}; storms took {:?}",
        report.sign_ins.len(),
        report.sign_ins_with(200),
        report.sign_ins_with(503),
        report.sign_ins_with(429),
        report.storm_durations,
    );
    contract_suite::figures!(
        "storm: resident memory at start {:.1} MiB, peak {:.1} MiB (+{:.1} MiB); bound {:.1} MiB",
        kib_to_mib(report.base_rss_kib),
        kib_to_mib(report.peak_rss_kib),
        kib_to_mib(report.peak_rss_kib.saturating_sub(report.base_rss_kib)),
        kib_to_mib(memory_bound_kib(report)),
    );
}

fn check(report: &StormReport, config: &StormConfig) {
    assert!(
        report.failed_gets.is_empty(),
        "{} GETs were not answered 200; the first:\n{}",
        report.failed_gets.len(),
        report.failed_gets[0].reply
    );
    // The GETs ran through both phases (else the 200s above prove nothing about the storm).
    assert!(
        !report.quiet.is_empty() && !report.storm.is_empty(),
        "GETs in the quiet phases: {}, during the storms: {}",
        report.quiet.len(),
        report.storm.len()
    );
    assert_eq!(report.sign_ins.len(), config.users * config.storms);
    for outcome in &report.sign_ins {
        let documented = match outcome.status {
            200 => true,
            503 => outcome.code.as_deref() == Some("unavailable") && outcome.retry_after.is_some(),
            429 => outcome.code.as_deref() == Some("rate_limited") && outcome.retry_after.is_some(),
            _ => false,
        };
        assert!(documented, "a sign-in answered {outcome:?}");
    }
    // Shedding must not take everything: each storm signs in at least the bound's worth.
    let per_storm_floor = usize::try_from(BOUND).expect("a small bound") * config.storms;
    assert!(
        report.sign_ins_with(200) >= per_storm_floor,
        "only {} of {} sign-ins succeeded",
        report.sign_ins_with(200),
        report.sign_ins.len()
    );
    assert!(
        report.peak_rss_kib <= memory_bound_kib(report),
        "peak resident memory {} KiB over the bound {} KiB ({} KiB at start + {} × {} KiB + {} KiB)",
        report.peak_rss_kib,
        memory_bound_kib(report),
        report.base_rss_kib,
        BOUND,
        PER_HASH_KIB,
        BASE_GROWTH_KIB
    );
}

/// The start's resident memory, the bound's hashes and the base growth.
fn memory_bound_kib(report: &StormReport) -> u64 {
    report.base_rss_kib + BASE_GROWTH_KIB + BOUND * PER_HASH_KIB
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
