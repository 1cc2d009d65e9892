//! # keystead-sqlite
//!
//! The embedded store: every `keystead` store trait on one SQLite file, through sqlx, with
//! embedded migrations. Zero setup; one application instance (use `keystead-postgres` to scale
//! out).
//!
//! ```no_run
//! # async fn example() -> Result<(), keystead_core::StoreError> {
//! use std::sync::Arc;
//! use keystead_core::AuthStore;
//! use keystead_sqlite::SqliteStore;
//!
//! // Creates the file (and its directory) when missing, and migrates it.
//! let store = SqliteStore::connect("sqlite://var/app.db").await?;
//! let store: Arc<dyn AuthStore> = Arc::new(store);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! ## Concurrency
//!
//! SQLite has one writer at a time. The store therefore keeps two pools on the file, which is
//! in WAL mode: a *writer* pool of exactly one connection, through which every write and every
//! transaction goes, and a *reader* pool of several read-only (`query_only`) connections for
//! plain lookups, which WAL lets run alongside the writer. Transactions that read and then
//! write (the last-owner rule, accepting an invitation) start with `BEGIN IMMEDIATE`, so they
//! hold the write lock from their first read: no other writer, in this process or another,
//! can slip in between, and contention waits (up to the busy timeout) instead of failing with
//! `database is locked`. Single-use writes (consuming a one-time token) are one
//! `UPDATE … WHERE … RETURNING` statement. A rate limit hit reads and writes its key's row in
//! one `BEGIN IMMEDIATE` transaction.
//!
//! ## Schema
//!
//! See `migrations/` ([`MIGRATOR`]). Ids are hyphenated UUID text, times are integer Unix
//! microseconds, token hashes are 32-byte blobs; uniqueness, foreign keys (with the cascades
//! the store traits document), enumerations and the "an organization keeps an owner" rule
//! are enforced by the schema itself.
#![forbid(unsafe_code)]

// The README's examples compile as doctests here, so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The small core this store implements (the model and the store traits).
pub use keystead_core;
mod audit;
mod changes;
mod codec;
mod error;
mod external;
mod keys;
mod oauth_flows;
mod orgs;
mod rate_limits;
mod sessions;
mod tokens;
mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use keystead_core::{StoreError, StoreResult};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

/// The embedded migrations (`crates/keystead-sqlite/migrations`). [`SqliteStore::open`] and
/// [`SqliteStore::connect`] run them; run them yourself with [`SqliteStore::migrate`] when you
/// build the store [`from_pools`](SqliteStore::from_pools).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// How long a connection waits for SQLite's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections the reader pool keeps at most.
pub const READER_CONNECTIONS: u32 = 4;

/// An `keystead` store on SQLite.
///
/// Cheap to clone (the pools are reference-counted); every clone shares the same single
/// writer.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("writer_connections", &self.writer.size())
            .field("reader_connections", &self.reader.size())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it, and its parent directories, when missing) the database file at
    /// `path`, in WAL mode with `synchronous = NORMAL`, foreign keys on and a
    /// [`BUSY_TIMEOUT`], and runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be created or opened;
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new().filename(path.as_ref());
        Self::open_with(options).await
    }

    /// Opens the database a `sqlite:` URL names: `sqlite://var/app.db` (relative to the
    /// working directory), `sqlite:///srv/app.db` (absolute), or `sqlite::memory:` (a private
    /// in-memory database, on one connection). Otherwise as [`open`](Self::open).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a malformed URL or another scheme; else as
    /// [`open`](Self::open).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if !url.starts_with("sqlite:") {
            // sqlx would take anything else for a file name.
            return Err(StoreError::Backend(
                format!(
                    "not a sqlite: URL (scheme {:?})",
                    url.split(':').next().unwrap_or_default()
                )
                .into(),
            ));
        }
        let options = SqliteConnectOptions::from_str(url).map_err(StoreError::backend)?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // Every connection to a private in-memory database is a database of its own, so
            // reads and writes share one connection.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(
                    options
                        .foreign_keys(true)
                        .busy_timeout(BUSY_TIMEOUT)
                        .shared_cache(false),
                )
                .await
                .map_err(error::map_sqlx_error)?;
            let store = Self {
                writer: pool.clone(),
                reader: pool,
                path: None,
            };
            store.migrate().await?;
            return Ok(store);
        }
        Self::open_with(options).await
    }

    /// Opens the database `options` names, overriding the settings the store relies on
    /// (create if missing, WAL, `synchronous = NORMAL`, foreign keys, busy timeout), and
    /// runs the migrations.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with(options: SqliteConnectOptions) -> StoreResult<Self> {
        let path = options.get_filename().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(StoreError::unavailable)?;
        }
        let base = options
            .create_if_missing(true)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(error::map_sqlx_error)?;
        // The writer has switched the file to WAL (a persistent setting) before any reader
        // connects; readers only read.
        let reader = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .connect_lazy_with(base.pragma("query_only", "ON"));
        let store = Self {
            writer,
            reader,
            path: Some(path),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A store on pools you configured. Every write and transaction goes through `writer`,
    /// plain reads through `reader` (they may be the same pool). For the concurrency
    /// guarantees, `writer` should have one connection; the connections need foreign keys
    /// on (sqlx's default) and a busy timeout, and the file should be in WAL mode. Does not
    /// migrate: call [`migrate`](Self::migrate).
    #[must_use]
    pub fn from_pools(writer: SqlitePool, reader: SqlitePool) -> Self {
        Self {
            writer,
            reader,
            path: None,
        }
    }

    /// Runs the pending embedded migrations ([`MIGRATOR`]); a no-op when there are none.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a migration fails (or the database holds migrations this
    /// version does not know).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writer).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => error::map_sqlx_error(err),
            other => StoreError::backend(other),
        })
    }

    /// The pool every write and transaction goes through.
    #[must_use]
    pub const fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// The pool plain reads go through.
    #[must_use]
    pub const fn reader_pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// The database file, when the store opened one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Closes both pools, waiting for connections in use to come back (and checkpointing
    /// the WAL as the last connection closes).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction that holds SQLite's write lock from its first statement.
    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(error::map_sqlx_error)
    }
}
