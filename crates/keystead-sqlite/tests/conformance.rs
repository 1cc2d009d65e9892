//! The shared conformance suite, on a real SQLite file per case.

use std::sync::Arc;

use keystead::AuthStore;
use keystead_sqlite::SqliteStore;

/// A fresh, migrated database file in its own temporary directory.
struct SqliteHarness {
    dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

#[async_trait::async_trait]
impl keystead_conformance::Harness for SqliteHarness {
    async fn setup() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("auth.db"))
            .await
            .expect("open a fresh SQLite store");
        Self {
            dir,
            store: Arc::new(store),
        }
    }

    fn store(&self) -> Arc<dyn AuthStore> {
        Arc::clone(&self.store) as Arc<dyn AuthStore>
    }

    async fn teardown(self) {
        self.store.close().await;
        drop(self.store);
        self.dir.close().expect("remove the temporary directory");
    }
}

keystead_conformance::conformance_suite!(SqliteHarness);
