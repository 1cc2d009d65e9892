//! A burst of sign-ins is bounded: 64 concurrent hashes with `max_concurrent = 4` never run
//! more than 4 at once, peak memory grows by about 4 argon2 blocks (not 64), and the async
//! workers keep serving other tasks meanwhile.
//!
//! Its own test binary with a single test, so that the process's peak memory is this test's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keystead::{PasswordConfig, PasswordHasher, SecretString, Verified};
use tokio::time::MissedTickBehavior;

const BURST: usize = 64;
const MAX_CONCURRENT: usize = 4;
/// What one default argon2id hash in flight costs, with slack (PERFORMANCE.md: ~21 MiB).
const MIB_PER_HASH: u64 = 21;

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line in /proc/self/status")
}

#[test]
fn a_burst_of_64_hashes_stays_within_the_concurrency_limit() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(burst());
}

async fn burst() {
    let hasher = PasswordHasher::new(
        PasswordConfig::default()
            .max_concurrent(MAX_CONCURRENT)
            .expect("valid"),
    );
    assert_eq!(hasher.config().memory_kib(), 19_456);
    let rss_before = peak_rss_kib();

    // A plain async task on the same runtime: it ticks every millisecond and counts the ticks
    // that found hashing in progress.
    let hashing_done = Arc::new(AtomicBool::new(false));
    let ticks_while_hashing = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let hasher = hasher.clone();
        let done = Arc::clone(&hashing_done);
        let ticks = Arc::clone(&ticks_while_hashing);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            while !done.load(Ordering::SeqCst) {
                interval.tick().await;
                if hasher.in_flight() > 0 {
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let tasks: Vec<_> = (0..BURST)
        .map(|i| {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                let password = SecretString::new(format!("password number {i}"));
                let hash = hasher.hash(&password).await.expect("hash");
                (password, hash)
            })
        })
        .collect();
    let mut hashes = Vec::with_capacity(BURST);
    for task in tasks {
        hashes.push(task.await.expect("the task ran"));
    }
    hashing_done.store(true, Ordering::SeqCst);
    ticker.await.expect("the ticker ran");
    let rss_after = peak_rss_kib();

    let grown_mib = rss_before.abs_diff(rss_after) / 1024;
    let bound_mib = (MAX_CONCURRENT as u64 + 2) * MIB_PER_HASH;
    eprintln!(
        "peak RSS {} MiB -> {} MiB (+{grown_mib} MiB, bound {bound_mib} MiB); \
         {} ticks of the async task while hashing",
        rss_before / 1024,
        rss_after / 1024,
        ticks_while_hashing.load(Ordering::SeqCst)
    );
    // Never more than the limit at once, and the limit was reached: they did run in parallel.
    assert_eq!(hasher.peak_in_flight(), MAX_CONCURRENT);
    assert_eq!(hasher.in_flight(), 0);

    // Every hash is real: distinct, and verifies.
    let mut distinct: Vec<&str> = hashes.iter().map(|(_, h)| h.expose()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), BURST);
    for (password, hash) in hashes.iter().step_by(16) {
        assert_eq!(
            hasher.verify(password, hash).await,
            Ok(Verified::Valid {
                needs_rehash: false
            })
        );
    }

    // Memory follows the limit, not the burst: 64 unbounded hashes take over 1 GiB.
    assert!(
        grown_mib < bound_mib,
        "peak RSS grew by {grown_mib} MiB, more than {bound_mib} MiB"
    );

    // The async workers were free: the ticker kept running while hashes were in flight.
    assert!(
        ticks_while_hashing.load(Ordering::SeqCst) >= 10,
        "the async task only ran {} times during the burst",
        ticks_while_hashing.load(Ordering::SeqCst)
    );
}
