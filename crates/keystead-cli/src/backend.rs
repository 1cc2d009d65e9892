//! The store a `DATABASE_URL` names, opened without migrating: `authctl migrate` applies the
//! migrations, every other command first checks that the schema is current and refuses to
//! touch a database that is behind (or ahead of) this version.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keystead::tokens::ChangeFeed;
use keystead::{AuthStore, StoreError};
use keystead_postgres::{ChangeFeedOptions, PostgresChangeFeed, PostgresStore, Schema};
use keystead_sqlite::{SqliteStore, TablePrefix};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

pub use keystead::store::StoreResult;
pub use keystead_postgres::SchemaStatus;

/// An opened store.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Postgres (`postgres://…`).
    Postgres(PostgresStore),
    /// SQLite (`sqlite://…`).
    Sqlite(SqliteStore),
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is neither `postgres://` nor `sqlite:`.
    #[error("DATABASE_URL must be postgres://… or sqlite://…, not {0:?}")]
    Scheme(String),
    /// `AUTH_DB_SCHEMA` or `AUTH_DB_PREFIX` is malformed.
    #[error("{0}")]
    Setting(String),
    /// The database could not be reached or read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A SQLite file that does not exist (only `migrate` creates one).
    #[error("no database at {0}: run `authctl migrate` to create it")]
    Missing(String),
}

impl Backend {
    /// Opens `url` without running migrations. The tables are in the Postgres schema
    /// `AUTH_DB_SCHEMA` (default `auth`) or carry the SQLite prefix `AUTH_DB_PREFIX` (default
    /// `auth_`), as in the apps. `create` makes a missing SQLite file (for `migrate`).
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open(url: &str, create: bool) -> Result<Self, OpenError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let schema = var("AUTH_DB_SCHEMA")
                .map(|s| s.parse::<Schema>())
                .transpose()
                .map_err(|e| OpenError::Setting(format!("AUTH_DB_SCHEMA: {e}")))?
                .unwrap_or_default();
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|e| OpenError::Store(StoreError::unavailable(e)))?;
            Ok(Self::Postgres(
                PostgresStore::from_pool(pool).with_schema(schema),
            ))
        } else if url.starts_with("sqlite:") {
            let prefix = var("AUTH_DB_PREFIX")
                .map(|p| p.parse::<TablePrefix>())
                .transpose()
                .map_err(|e| OpenError::Setting(format!("AUTH_DB_PREFIX: {e}")))?
                .unwrap_or_default();
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| OpenError::Setting(format!("DATABASE_URL: {e}")))?;
            let path = options.get_filename().to_path_buf();
            if !create && !path.exists() {
                return Err(OpenError::Missing(path.display().to_string()));
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| OpenError::Store(StoreError::unavailable(e)))?;
            }
            // The settings the store relies on (as `SqliteStore::open` makes them): one writer
            // connection, foreign keys, WAL, a busy timeout for the apps writing meanwhile.
            let base = options
                .create_if_missing(create)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                .journal_mode(SqliteJournalMode::Wal);
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(base.clone())
                .await
                .map_err(|e| OpenError::Store(StoreError::unavailable(e)))?;
            let reader = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_lazy_with(base.pragma("query_only", "ON"));
            Ok(Self::Sqlite(
                SqliteStore::from_pools(writer, reader).with_prefix(prefix),
            ))
        } else {
            Err(OpenError::Scheme(
                url.split(':').next().unwrap_or_default().to_owned(),
            ))
        }
    }

    /// Where the schema stands against this version's migrations.
    ///
    /// # Errors
    /// Store errors.
    pub async fn status(&self) -> Result<SchemaStatus, StoreError> {
        match self {
            Self::Postgres(store) => store.schema_status().await,
            Self::Sqlite(store) => store.schema_status().await,
        }
    }

    /// Applies the pending migrations.
    ///
    /// # Errors
    /// Store errors (a failed migration, or one changed since it was applied).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(store) => store.migrate().await,
            Self::Sqlite(store) => store.migrate().await,
        }
    }

    /// The store, for the library.
    #[must_use]
    pub fn store(&self) -> Arc<dyn AuthStore> {
        match self {
            Self::Postgres(store) => Arc::new(store.clone()),
            Self::Sqlite(store) => Arc::new(store.clone()),
        }
    }

    /// The change feed that reaches running instances at once: `LISTEN`/`NOTIFY` on Postgres.
    /// SQLite has none (instances on the file read the change log, within the staleness
    /// bound).
    ///
    /// # Errors
    /// When Postgres cannot be listened on.
    pub async fn feed(&self) -> Result<Option<Arc<dyn ChangeFeed>>, StoreError> {
        match self {
            Self::Postgres(store) => {
                let feed = PostgresChangeFeed::start_with(
                    store.pool().clone(),
                    ChangeFeedOptions::default().with_schema(store.schema().clone()),
                )
                .await?;
                Ok(Some(feed))
            }
            Self::Sqlite(_) => Ok(None),
        }
    }
}
