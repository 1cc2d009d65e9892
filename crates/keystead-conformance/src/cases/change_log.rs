//! The change log ([`ChangeLogStore`](keystead::ChangeLogStore)): versions in commit order
//! without gaps, entries read back after a version, old entries deleted.

use std::sync::Arc;

use keystead::{AuthStore, Clock, ManualClock};
use time::Duration;

/// `record_change` bumps the version by one per change and the log gives the entries back in
/// order after any version; concurrent recorders get distinct versions without gaps.
pub async fn change_log_versions_follow_commits_without_gaps(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    assert_eq!(store.change_version().await.expect("change_version"), 0);
    assert!(
        store
            .changes_after(0, 10)
            .await
            .expect("changes_after")
            .is_empty()
    );
    let first = store
        .record_change(r#"{"kind":"keys_rotated"}"#, clock.now())
        .await
        .expect("record_change");
    assert_eq!(first, 1);
    assert_eq!(store.change_version().await.expect("change_version"), 1);

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let at = clock.now();
            tokio::spawn(async move {
                store
                    .record_change(&format!(r#"{{"kind":"test","n":{i}}}"#), at)
                    .await
                    .expect("record_change")
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.expect("a recorder"));
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<i64>>());
    assert_eq!(store.change_version().await.expect("change_version"), 21);

    let all = store.changes_after(0, 100).await.expect("changes_after");
    assert_eq!(
        all.iter().map(|c| c.version).collect::<Vec<_>>(),
        (1..=21).collect::<Vec<i64>>()
    );
    assert_eq!(all[0].payload, r#"{"kind":"keys_rotated"}"#);
    assert_eq!(all[0].at, clock.now());
    let page = store.changes_after(5, 3).await.expect("changes_after");
    assert_eq!(
        page.iter().map(|c| c.version).collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
    assert!(
        store
            .changes_after(21, 10)
            .await
            .expect("changes_after")
            .is_empty()
    );
}

/// `delete_changes_before` deletes the entries recorded before a time; the version stays, and
/// the first entry read after an old version tells that entries are missing.
pub async fn change_log_old_entries_are_deleted_and_the_version_stays(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    for _ in 0..3 {
        store
            .record_change(r#"{"kind":"keys_rotated"}"#, clock.now())
            .await
            .expect("record_change");
    }
    clock.advance(Duration::hours(2));
    store
        .record_change(r#"{"kind":"keys_rotated"}"#, clock.now())
        .await
        .expect("record_change");
    assert_eq!(
        store
            .delete_changes_before(clock.now() - Duration::hours(1))
            .await
            .expect("delete_changes_before"),
        3
    );
    assert_eq!(store.change_version().await.expect("change_version"), 4);
    let left = store.changes_after(0, 10).await.expect("changes_after");
    assert_eq!(left.iter().map(|c| c.version).collect::<Vec<_>>(), vec![4]);
    assert_eq!(
        store
            .delete_changes_before(clock.now() - Duration::hours(1))
            .await
            .expect("delete_changes_before"),
        0
    );
}
