//! `Auth::readiness`, what a readiness probe (`/readyz` in the examples) reports: a store that
//! answers, a change log read within the staleness bound, a signing key when API tokens are on.
//! Checked on a real SQLite store, then with the store gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{Auth, Readiness, SystemClock};
use keystead_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_holds_on_a_live_store_and_fails_once_the_store_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(dir.path().join("keys")).unwrap()),
        Arc::new(SystemClock),
        KeyAlgorithm::EdDSA,
        TokenConfig::default().max_ttl,
    )
    .await
    .unwrap();
    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse("http://localhost:3000").unwrap(),
    )
    .api_tokens(keys, TokenConfig::default())
    .build();
    let ready = auth.readiness().await;
    assert_eq!(
        ready,
        Readiness {
            database: true,
            change_feed: true,
            signing_keys: true,
        }
    );
    assert!(ready.is_ready());

    // The database goes away: the store check fails at once, and the change log, no longer
    // read, goes stale within the staleness bound (1 s by default).
    store.close().await;
    let gone = auth.readiness().await;
    assert!(!gone.database, "{gone:?}");
    assert!(!gone.is_ready());
    let start = Instant::now();
    while auth.readiness().await.change_feed {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the change feed still counts as fresh 10 s after the store went"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
