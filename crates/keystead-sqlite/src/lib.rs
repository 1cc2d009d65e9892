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
//! See `migrations/`. Every table, index and trigger of the library is named with the store's
//! prefix, `auth_` unless chosen otherwise ([`SqliteStore::connect_with_prefix`],
//! [`SqliteStore::with_prefix`]), so the app's own tables in the same file are never touched;
//! the migrations are recorded in `<prefix>migrations`, not in sqlx's `_sqlx_migrations`. A
//! database made by earlier versions (unprefixed tables) is renamed by
//! [`SqliteStore::migrate`]; see `docs/database.md`. Ids are hyphenated UUID text, times are integer Unix
//! microseconds, token hashes are 32-byte blobs; uniqueness, foreign keys (with the cascades
//! the store traits document), enumerations and the "an organization keeps an owner" rule
//! are enforced by the schema itself.
#![forbid(unsafe_code)]

/// The small core this store implements (the model and the store traits).
pub use keystead_core;
mod audit;
mod changes;
mod error;
mod external;
mod keys;
mod mfa;
mod migrate;
mod oauth_flows;
mod orgs;
mod rate_limits;
mod rows;
mod sessions;
mod sql;
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

use crate::sql::Tables;

pub use keystead_core::sql::SchemaStatus;
pub use sql::{DEFAULT_PREFIX, InvalidName, MAX_PREFIX_LEN, TablePrefix};

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
    prefix: TablePrefix,
    tables: Tables,
}

/// Connects the writer pool. Its first connection switches a new file to WAL, which needs the
/// file to itself: when several instances open one new file at once, SQLite answers the others
/// `SQLITE_BUSY` at once, without waiting through the busy timeout. Those attempts are
/// repeated, with a growing pause, until [`BUSY_TIMEOUT`] has passed.
async fn connect_writer(options: SqliteConnectOptions) -> StoreResult<SqlitePool> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(err) if is_busy(&err) && std::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %err, "the database file is busy; connecting again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(err) => return Err(error::map_sqlx_error(err)),
        }
    }
}

/// Whether `err` is SQLite's `SQLITE_BUSY` (or one of its extended codes).
fn is_busy(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == 5))
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("prefix", &self.prefix.as_str())
            .field("writer_connections", &self.writer.size())
            .field("reader_connections", &self.reader.size())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it, and its parent directories, when missing) the database file at
    /// `path`, in WAL mode with `synchronous = NORMAL`, foreign keys on and a
    /// [`BUSY_TIMEOUT`], with the table prefix [`DEFAULT_PREFIX`] (`auth_`), and runs the
    /// migrations ([`migrate`](Self::migrate)).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be created or opened;
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new().filename(path.as_ref());
        Self::open_with(options).await
    }

    /// As [`connect`](Self::connect), with the library's tables named `<prefix><table>`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with_prefix(url: &str, prefix: TablePrefix) -> StoreResult<Self> {
        Self::connect_inner(url, prefix).await
    }

    /// Opens the database a `sqlite:` URL names: `sqlite://var/app.db` (relative to the
    /// working directory), `sqlite:///srv/app.db` (absolute), or `sqlite::memory:` (a private
    /// in-memory database, on one connection). Otherwise as [`open`](Self::open).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a malformed URL or another scheme; else as
    /// [`open`](Self::open).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_inner(url, TablePrefix::default()).await
    }

    async fn connect_inner(url: &str, prefix: TablePrefix) -> StoreResult<Self> {
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
            let store = Self::from_pools(pool.clone(), pool).with_prefix(prefix);
            store.migrate().await?;
            return Ok(store);
        }
        Self::open_with_prefix(options, prefix).await
    }

    /// Opens the database `options` names, overriding the settings the store relies on
    /// (create if missing, WAL, `synchronous = NORMAL`, foreign keys, busy timeout), and
    /// runs the migrations.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with(options: SqliteConnectOptions) -> StoreResult<Self> {
        Self::open_with_prefix(options, TablePrefix::default()).await
    }

    /// As [`open_with`](Self::open_with), with the library's tables named
    /// `<prefix><table>`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with_prefix(
        options: SqliteConnectOptions,
        prefix: TablePrefix,
    ) -> StoreResult<Self> {
        let path = options.get_filename().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(StoreError::unavailable)?;
        }
        let base = options
            .create_if_missing(true)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);

        let writer = connect_writer(base.clone().journal_mode(SqliteJournalMode::Wal)).await?;
        // The writer has switched the file to WAL (a persistent setting) before any reader
        // connects; readers only read.
        let reader = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .connect_lazy_with(base.pragma("query_only", "ON"));
        let mut store = Self::from_pools(writer, reader).with_prefix(prefix);
        store.path = Some(path);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on pools you configured. Every write and transaction goes through `writer`,
    /// plain reads through `reader` (they may be the same pool). For the concurrency
    /// guarantees, `writer` should have one connection; the connections need foreign keys
    /// on (sqlx's default) and a busy timeout, and the file should be in WAL mode. Does not
    /// migrate: call [`migrate`](Self::migrate). The tables have the prefix
    /// [`DEFAULT_PREFIX`]; [`with_prefix`](Self::with_prefix) changes it.
    #[must_use]
    pub fn from_pools(writer: SqlitePool, reader: SqlitePool) -> Self {
        let prefix = TablePrefix::default();
        Self {
            writer,
            reader,
            path: None,
            tables: prefix.tables(),
            prefix,
        }
    }

    /// This store with its tables named `<prefix><table>`.
    #[must_use]
    pub fn with_prefix(self, prefix: TablePrefix) -> Self {
        Self {
            tables: prefix.tables(),
            prefix,
            ..self
        }
    }

    /// The prefix of the store's tables.
    #[must_use]
    pub const fn prefix(&self) -> &TablePrefix {
        &self.prefix
    }

    /// Runs the pending embedded migrations (`migrations/`); a no-op when there are none.
    /// Records what it applied in `<prefix>migrations` (never in sqlx's `_sqlx_migrations`),
    /// and first renames a database of the old layout (unprefixed tables, rows in
    /// `_sqlx_migrations`) to the prefix. Each migration holds the write lock
    /// (`BEGIN IMMEDIATE`), so concurrent runs wait for each other. See `docs/database.md`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a migration fails, one applied earlier was changed since,
    /// the database holds migrations this version does not know, or both layouts are
    /// present.
    pub async fn migrate(&self) -> StoreResult<()> {
        migrate::run(&self.writer, &self.prefix, &self.tables).await
    }

    /// Where the database stands against this version's migrations, without changing
    /// anything: [`SchemaStatus::is_current`] is the "is the schema current" check of a
    /// deployment.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        migrate::status(&self.reader, &self.prefix, &self.tables).await
    }

    /// `template` (a statement with `{t}` before each table name) with the store's tables.
    pub(crate) fn sql(&self, template: &'static str) -> &'static str {
        self.tables.sql(template)
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
