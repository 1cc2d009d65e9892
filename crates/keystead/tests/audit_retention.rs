//! The audit retention (`AuthBuilder::audit_retention`): the maintenance sweep deletes the
//! events older than it and keeps the newer ones, on a real SQLite file, with a manual clock
//! that the sweep reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keystead::web::AppOrigin;
use keystead::{AuditEvent, AuditEventId, AuditQuery, Auth, AuthStore, Clock, ManualClock};
use keystead_sqlite::SqliteStore;

async fn ids(store: &dyn AuthStore) -> Vec<AuditEventId> {
    store
        .audit_events(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Waits (up to 10 s) until the store holds exactly `expected`, newest first.
async fn until_left(store: &dyn AuthStore, expected: &[AuditEventId]) {
    let start = Instant::now();
    loop {
        let left = ids(store).await;
        if left == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the sweep left {left:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_events_past_the_retention_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AuthStore> =
        Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    let clock = Arc::new(ManualClock::starting_now());
    let now = clock.now();
    // More than one batch of the sweep is past the retention, so it takes several statements.
    let batch = keystead::auth::AUDIT_PRUNE_BATCH as usize;
    let mut old = Vec::new();
    for i in 0..batch + 5 {
        let at = now - time::Duration::days(40) + time::Duration::seconds(i as i64);
        old.push(AuditEvent::custom("app.old", at));
    }
    for event in &old {
        store.record_audit_event(event).await.unwrap();
    }
    let recent = AuditEvent::custom("app.recent", now - time::Duration::days(29));
    let fresh = AuditEvent::custom("app.fresh", now - time::Duration::hours(1));
    store.record_audit_event(&recent).await.unwrap();
    store.record_audit_event(&fresh).await.unwrap();

    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse("http://localhost:3000").unwrap(),
    )
    .clock(clock.clone())
    .maintenance_interval(Duration::from_millis(20))
    .audit_retention(time::Duration::days(30))
    .build();
    assert_eq!(auth.audit_retention(), Some(time::Duration::days(30)));
    until_left(&*store, &[fresh.id, recent.id]).await;

    // Two days on, the 29-day-old event is past the retention too; the fresh one stays.
    clock.advance(time::Duration::days(2));
    until_left(&*store, &[fresh.id]).await;
    drop(auth);
}
