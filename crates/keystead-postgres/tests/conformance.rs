//! The shared conformance suite, run against `PostgresStore` on a fresh database per case.

mod common;

use std::sync::Arc;

use common::TestDb;
use keystead::AuthStore;
use keystead_postgres::PostgresStore;

/// A migrated database of its own per case, with a store on a pool of
/// [`common::MAX_CONNECTIONS`] connections (so the race cases really race).
struct PgHarness {
    db: TestDb,
    store: Arc<PostgresStore>,
}

#[async_trait::async_trait]
impl keystead_conformance::Harness for PgHarness {
    async fn setup() -> Self {
        let db = TestDb::create().await;
        let store = Arc::new(db.store());
        Self { db, store }
    }

    fn store(&self) -> Arc<dyn AuthStore> {
        Arc::clone(&self.store) as Arc<dyn AuthStore>
    }

    async fn teardown(self) {
        drop(self.store);
        self.db.teardown().await;
    }
}

keystead_conformance::conformance_suite!(PgHarness);
