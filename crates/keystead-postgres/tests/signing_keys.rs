//! API token signing keys kept in the store: a key ring made on one instance is the key ring
//! another instance loads, and rotation and pruning reach the table.

mod common;

use std::sync::Arc;

use common::TestDb;
use keystead::tokens::{KeyAlgorithm, KeyRing, KeyStore};
use keystead::{Clock, ManualClock};
use time::Duration;

#[tokio::test]
async fn keys_in_the_store_are_shared_rotated_and_pruned() {
    let db = TestDb::create().await;
    let store: Arc<dyn KeyStore> = Arc::new(db.store());
    let clock = Arc::new(ManualClock::new(keystead::SystemClock.now()));
    let ttl = Duration::days(365);
    let first = KeyRing::load_or_create(store.clone(), clock.clone(), KeyAlgorithm::EdDSA, ttl)
        .await
        .unwrap();
    let jwks = first.jwks();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    // A second instance loads the same key rather than making one.
    let second = KeyRing::load_or_create(store.clone(), clock.clone(), KeyAlgorithm::EdDSA, ttl)
        .await
        .unwrap();
    assert_eq!(second.jwks(), jwks);
    assert_eq!(store.load_keys().await.unwrap().len(), 1);

    clock.advance(Duration::minutes(1));
    let new_kid = first.rotate().await.unwrap();
    let stored = store.load_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    let old = stored.iter().find(|k| k.kid != new_kid).unwrap();
    assert!(old.retired_at.is_some() && old.verify_until.is_some());
    assert_eq!(first.jwks()["keys"][0]["kid"], new_kid.as_str());

    clock.advance(ttl + Duration::seconds(1));
    assert_eq!(first.prune().await.unwrap(), 1);
    let stored = store.load_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, new_kid);
}
