//! The store's own migration runner: the embedded files of `migrations/` (written with `{t}`
//! before each table, index and trigger name, see [`crate::sql`]), applied with the store's
//! prefix and recorded in its table `<prefix>migrations`, never in sqlx's `_sqlx_migrations`
//! (which the app's own `sqlx::migrate!()` uses).
//!
//! - Each migration runs in one `BEGIN IMMEDIATE` transaction with the row that records it
//!   (version, description, SHA-384 checksum of the file): it holds SQLite's write lock from
//!   its first statement, so concurrent runs (in this process or another) wait for each other
//!   and the second finds the migration applied.
//! - A migration applied earlier whose file has changed since, or a recorded version this
//!   code does not know (a newer version ran), stops the run with an error.
//! - A database made by the versions of this crate that used sqlx's runner (unprefixed
//!   tables, rows in `_sqlx_migrations`) is renamed to the prefix first: see
//!   [`adopt_legacy_layout`] and `docs/database.md`.
//!
//! `keystead-postgres` has the same module.

use std::collections::BTreeMap;
use std::time::Instant;

use keystead_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Row as _, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use keystead_core::sql::{Mismatch, SchemaStatus, check_recorded, hex};

use crate::error::map_sqlx_error;
use crate::rows::micros;
use crate::sql::{TablePrefix, Tables};

/// The embedded migrations: templates, run by this module (sqlx's runner cannot put the
/// prefix into them).
static MIGRATIONS: Migrator = sqlx::migrate!();

/// Version and checksum of each embedded migration.
fn embedded() -> impl Iterator<Item = (i64, &'static [u8])> {
    MIGRATIONS.iter().map(|m| (m.version, &m.checksum[..]))
}

/// Version, checksum and description of each embedded migration.
fn recorded() -> Vec<(i64, &'static [u8], &'static str)> {
    MIGRATIONS
        .iter()
        .map(|m| (m.version, &m.checksum[..], &*m.description))
        .collect()
}

/// The tables of the library, as the sqlx-run versions made them (unqualified).
const LEGACY_TABLES: [&str; 15] = [
    "users",
    "password_credentials",
    "external_accounts",
    "organizations",
    "memberships",
    "sessions",
    "invitations",
    "one_time_tokens",
    "api_tokens",
    "audit_events",
    "rate_limits",
    "signing_keys",
    "oauth_flows",
    "change_version",
    "change_log",
];

/// The rows the sqlx-run versions wrote into `_sqlx_migrations`: version and SHA-384 of the
/// file as it was then (`tests/fixtures/legacy-migrations`). A row of the app's own
/// migrations never matches both.
const LEGACY_MIGRATIONS: [(i64, &str); 6] = [
    (
        1,
        "42e2fe541c14255d65970f7ab270b88eb6ab8226a0769563587e66f1f2ca0fee323afd6e0fd06bcb48b6bcffd690d21b",
    ),
    (
        2,
        "07d8b9584a2a04d7fbc3cd041a8f7e230d331ec4009b2a1c13bfcf918f6778df0c3d049a40df7a97fb9d1a7d75403d02",
    ),
    (
        3,
        "d1bdca5edd22278e4cb2d0d7690d989b4981edb5167e6a46439984588e0b861b6a9263ab067e1f76bd000037baea555f",
    ),
    (
        4,
        "d6f1a71a41126fb5362d1665d9f37e8857ca03c925a921aa07c1cc180c1420c611fa686e68af3f4622437198c43a5cea",
    ),
    (
        5,
        "d07b5bdb75144152828a096055711183671c84bc4a16083c784424f1884bb04ee1658d3adfeca1ea0d77721c262288a2",
    ),
    (
        6,
        "aa59b138ff34778ef1d01e9090cc645694d46b3fe81385e7224e8fc68f26655b63999b4474350d233c0b69a988927a93",
    ),
];

fn backend(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

async fn table_exists(conn: &mut SqliteConnection, name: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_sqlx_error)
}

/// The versions and checksums recorded in `<prefix>migrations`.
async fn applied(
    conn: &mut SqliteConnection,
    prefix: &TablePrefix,
    tables: &Tables,
) -> Result<BTreeMap<i64, Vec<u8>>, StoreError> {
    if !table_exists(conn, &format!("{prefix}migrations")).await? {
        return Ok(BTreeMap::new());
    }
    let rows = sqlx::query(tables.sql("SELECT version, checksum FROM {t}migrations"))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("version").map_err(map_sqlx_error)?,
                row.try_get("checksum").map_err(map_sqlx_error)?,
            ))
        })
        .collect()
}

/// Our versions in `_sqlx_migrations` (the old layout), when there are any.
async fn legacy(conn: &mut SqliteConnection) -> Result<Vec<i64>, StoreError> {
    if !table_exists(conn, "_sqlx_migrations").await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;
    let mut ours = Vec::new();
    for row in &rows {
        let version: i64 = row.try_get("version").map_err(map_sqlx_error)?;
        let checksum: Vec<u8> = row.try_get("checksum").map_err(map_sqlx_error)?;
        if LEGACY_MIGRATIONS
            .iter()
            .any(|(v, sum)| *v == version && *sum == hex(&checksum))
        {
            ours.push(version);
        }
    }
    Ok(ours)
}

/// What [`SqliteStore::schema_status`](crate::SqliteStore::schema_status) answers. Reads only.
pub(crate) async fn status(
    pool: &SqlitePool,
    prefix: &TablePrefix,
    tables: &Tables,
) -> Result<SchemaStatus, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_sqlx_error)?;
    let applied = applied(&mut conn, prefix, tables).await?;
    let legacy = legacy(&mut conn).await?;
    Ok(SchemaStatus::compare(&applied, legacy, embedded()))
}

/// Brings the database up to date; see the module documentation. `writer` is the store's
/// writer pool.
pub(crate) async fn run(
    writer: &SqlitePool,
    prefix: &TablePrefix,
    tables: &Tables,
) -> Result<(), StoreError> {
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(map_sqlx_error)?;
    sqlx::query(tables.sql(
        "CREATE TABLE IF NOT EXISTS {t}migrations (\
             version           INTEGER NOT NULL PRIMARY KEY, \
             description       TEXT    NOT NULL, \
             checksum          BLOB    NOT NULL, \
             installed_on      INTEGER NOT NULL, \
             execution_time_ms INTEGER NOT NULL) STRICT",
    ))
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx_error)?;
    adopt_legacy_layout(&mut tx, prefix, tables).await?;
    let applied = applied(&mut tx, prefix, tables).await?;
    match check_recorded(&applied, &recorded()) {
        Ok(()) => {}
        Err(Mismatch::Unknown(version)) => {
            return Err(backend(format!(
                "prefix {prefix}: migration {version} was applied but this version of \
                 keystead-sqlite does not know it (a newer version ran)"
            )));
        }
        Err(Mismatch::Changed(version, description)) => {
            return Err(backend(format!(
                "prefix {prefix}: migration {version} ({description}) was changed after it was applied"
            )));
        }
    }
    tx.commit().await.map_err(map_sqlx_error)?;

    for migration in MIGRATIONS.iter() {
        let started = Instant::now();
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_sqlx_error)?;
        // Under the write lock: another run may have applied it since.
        let done: bool = sqlx::query_scalar(
            tables.sql("SELECT EXISTS (SELECT 1 FROM {t}migrations WHERE version = ?1)"),
        )
        .bind(migration.version)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if done {
            continue;
        }
        sqlx::raw_sql(AssertSqlSafe(tables.render(migration.sql.as_str())))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                tracing::error!(version = migration.version, error = %e, "migration failed");
                map_sqlx_error(e)
            })?;
        sqlx::query(tables.sql(
            "INSERT INTO {t}migrations \
             (version, description, checksum, installed_on, execution_time_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        ))
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .bind(micros(OffsetDateTime::now_utc()))
        .bind(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        tracing::info!(
            prefix = %prefix,
            version = migration.version,
            description = %migration.description,
            "applied a migration"
        );
    }
    Ok(())
}

/// Renames a database of the old layout to `prefix`, in the caller's transaction: every table
/// of the library is renamed with `ALTER TABLE … RENAME TO` (SQLite rewrites the foreign keys,
/// indexes and triggers that name it; rows untouched), then each of their indexes and
/// triggers is made again under its prefixed name (SQLite cannot rename those), our rows of
/// `_sqlx_migrations` become rows of `<prefix>migrations` (of the same versions) and are
/// deleted from `_sqlx_migrations`, which is dropped if nothing else is left in it. The app's
/// own rows there are never touched. Does nothing when there is no old layout.
async fn adopt_legacy_layout(
    conn: &mut SqliteConnection,
    prefix: &TablePrefix,
    tables: &Tables,
) -> Result<(), StoreError> {
    let versions = legacy(conn).await?;
    if versions.is_empty() {
        return Ok(());
    }
    let recorded: i64 = sqlx::query_scalar(tables.sql("SELECT count(*) FROM {t}migrations"))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    if recorded > 0 {
        return Err(backend(format!(
            "the tables of prefix {prefix} are migrated, and _sqlx_migrations also records \
             keystead migrations {versions:?} of the old layout: move or drop one of them \
             (see docs/database.md)"
        )));
    }
    for table in LEGACY_TABLES {
        if !table_exists(conn, table).await? {
            continue;
        }
        let renamed = format!("{prefix}{table}");
        // Names are ours: a fixed table name and a checked prefix.
        sqlx::query(AssertSqlSafe(format!(
            "ALTER TABLE \"{table}\" RENAME TO \"{renamed}\""
        )))
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
        let dependents: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master \
             WHERE type IN ('index', 'trigger') AND tbl_name = ?1 AND sql IS NOT NULL",
        )
        .bind(&renamed)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
        for (kind, name, sql) in dependents {
            if name.starts_with(prefix.as_str()) {
                continue;
            }
            let kind = if kind == "index" { "INDEX" } else { "TRIGGER" };
            // The first occurrence of the name in `CREATE … INDEX|TRIGGER <name> …` is the
            // name itself.
            let recreate = sql.replacen(&name, &format!("{prefix}{name}"), 1);
            sqlx::query(AssertSqlSafe(format!(
                "DROP {kind} \"{}\"",
                name.replace('"', "\"\"")
            )))
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
            sqlx::query(AssertSqlSafe(recreate))
                .execute(&mut *conn)
                .await
                .map_err(map_sqlx_error)?;
        }
    }
    for version in &versions {
        let Some(migration) = MIGRATIONS.iter().find(|m| m.version == *version) else {
            return Err(backend(format!(
                "old-layout migration {version} has no counterpart in this version"
            )));
        };
        sqlx::query(tables.sql(
            "INSERT INTO {t}migrations \
             (version, description, checksum, installed_on, execution_time_ms) \
             VALUES (?1, ?2, ?3, ?4, 0)",
        ))
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .bind(micros(OffsetDateTime::now_utc()))
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    }
    for (version, checksum) in LEGACY_MIGRATIONS {
        sqlx::query(
            "DELETE FROM _sqlx_migrations WHERE version = ?1 AND lower(hex(checksum)) = ?2",
        )
        .bind(version)
        .bind(checksum)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    if left == 0 {
        sqlx::query("DROP TABLE _sqlx_migrations")
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
    }
    tracing::info!(
        prefix = %prefix,
        versions = ?versions,
        "renamed the keystead tables of the old layout to their prefix"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_names_its_tables_through_the_placeholder() {
        for migration in MIGRATIONS.iter() {
            let missing = keystead_core::sql::names_without_placeholder(
                migration.sql.as_str(),
                &LEGACY_TABLES,
            );
            assert!(
                missing.is_empty(),
                "migration {}: {missing:?} without {{t}}",
                migration.version
            );
        }
    }
}
