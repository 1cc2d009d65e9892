//! A fresh database per test: `CREATE DATABASE authtest_<uuid>` on the server of
//! `DATABASE_URL`, migrated, and dropped (`WITH (FORCE)`) afterwards — also when the test
//! panics. An unreachable server fails the test with a message saying so; it never skips.
#![allow(dead_code, unreachable_pub)] // each test crate uses a part of it

use std::time::Duration;

use keystead_postgres::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, PgPool};
use uuid::Uuid;

/// The server the tests use when `DATABASE_URL` is not set (the same default as
/// `.cargo/config.toml`).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connections per test database: enough that concurrent calls really race.
pub const MAX_CONNECTIONS: u32 = 12;

/// `DATABASE_URL`, or the default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

fn admin_options() -> PgConnectOptions {
    database_url()
        .parse()
        .unwrap_or_else(|e| panic!("DATABASE_URL is not a usable Postgres URL: {e}"))
}

async fn admin_connection(admin: &PgConnectOptions) -> PgConnection {
    PgConnection::connect_with(admin).await.unwrap_or_else(|e| {
        panic!(
            "the Postgres tests need a server: cannot connect to {}:{} as {:?} ({e}). \
             Start Postgres or set DATABASE_URL to a server where this user may create databases.",
            admin.get_host(),
            admin.get_port(),
            admin.get_username(),
        )
    })
}

async fn drop_database(admin: &PgConnectOptions, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(admin).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await
}

/// Waits until some connection to the test database waits for a lock (a transaction of the
/// test is blocking the store's), or `task` finished; fails after 30 seconds.
pub async fn wait_for_a_lock_wait<T>(pool: &PgPool, task: &tokio::task::JoinHandle<T>) {
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 || task.is_finished() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing ever waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A migrated database of its own, dropped by [`TestDb::teardown`] (or, if the test panicked
/// first, when the value is dropped).
pub struct TestDb {
    pool: PgPool,
    name: String,
    admin: PgConnectOptions,
    torn_down: bool,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestDb {
    /// Creates and migrates a fresh database (the store's tables in the schema `auth`).
    pub async fn create() -> Self {
        let db = Self::create_empty().await;
        db.store()
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating the test database {} failed: {e}", db.name));
        db
    }

    /// Creates a fresh database without running the migrations. The tests' pool looks up
    /// unqualified names in `auth`, then `public` (so that the tests' own statements reach the
    /// store's tables); the store itself names its schema in every statement.
    pub async fn create_empty() -> Self {
        let admin = admin_options();
        let mut conn = admin_connection(&admin).await;
        let name = format!("authtest_{}", Uuid::now_v7().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| {
                panic!("CREATE DATABASE {name} failed (may this user create databases?): {e}")
            });
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                admin
                    .clone()
                    .database(&name)
                    .options([("search_path", "auth, public")]),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the new test database {name}: {e}"));
        Self {
            pool,
            name,
            admin,
            torn_down: false,
        }
    }

    /// A pool on the test database as an app has it: no setting of ours (its `search_path`
    /// is the server's default, `"$user", public`).
    pub async fn app_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.admin.clone().database(&self.name))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.name))
    }

    /// The pool on the test database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A store on the test database.
    pub fn store(&self) -> PostgresStore {
        PostgresStore::from_pool(self.pool.clone())
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of the test database: `DATABASE_URL` with its database replaced.
    pub fn url(&self) -> String {
        let url = database_url();
        let (base, query) = url
            .split_once('?')
            .map_or((url.as_str(), ""), |(b, q)| (b, q));
        let (server, _) = base
            .rsplit_once('/')
            .expect("DATABASE_URL names a database");
        if query.is_empty() {
            format!("{server}/{}", self.name)
        } else {
            format!("{server}/{}?{query}", self.name)
        }
    }

    /// Runs `sql` on a connection to the server's own database (`DATABASE_URL`), not the test
    /// database: for statements about the test database itself (`ALTER DATABASE …`).
    pub async fn admin_execute(&self, sql: String) {
        let mut conn = admin_connection(&self.admin).await;
        sqlx::query(AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql} failed: {e}"));
        let _ = conn.close().await;
    }

    /// Closes the pool and drops the database.
    pub async fn teardown(mut self) {
        self.pool.close().await;
        drop_database(&self.admin, &self.name)
            .await
            .unwrap_or_else(|e| panic!("DROP DATABASE {} failed: {e}", self.name));
        self.torn_down = true;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // The test panicked before its teardown. Drop the database from a thread of its own
        // (we may be inside the test's runtime, which cannot be blocked on); never panic here.
        let admin = self.admin.clone();
        let name = std::mem::take(&mut self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => return eprintln!("cannot drop test database {name}: {e}"),
            };
            if let Err(e) = runtime.block_on(drop_database(&admin, &name)) {
                eprintln!("cannot drop test database {name}: {e}");
            }
        });
        let _ = cleanup.join();
    }
}
