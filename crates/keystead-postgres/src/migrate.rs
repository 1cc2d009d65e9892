//! The store's own migration runner: the embedded files of `migrations/` (written with `{t}`
//! before each table name, see [`crate::sql`]), applied in the store's schema and recorded in
//! its table `<schema>.migrations`, never in sqlx's `_sqlx_migrations` (which the app's own
//! `sqlx::migrate!()` uses).
//!
//! - Each migration runs in one transaction with the row that records it (version,
//!   description, SHA-384 checksum of the file).
//! - Concurrent runs (several instances starting at once) are serialized by a session
//!   advisory lock ([`LOCK_KEY`]) held by the running connection.
//! - A migration applied earlier whose file has changed since, or a recorded version this
//!   code does not know (a newer version ran), stops the run with an error.
//! - A database made by the versions of this crate that used sqlx's runner (tables in the
//!   connection's current schema, usually `public`, rows in its `_sqlx_migrations`) is moved
//!   into the schema first: see [`adopt_legacy_layout`] and `docs/database.md`.
//!
//! `keystead-sqlite` has the same module.

use std::collections::BTreeMap;
use std::time::Instant;

use keystead_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row as _};

use keystead_core::sql::{Mismatch, SchemaStatus, check_recorded, hex};

use crate::error::map_sqlx_error;
use crate::sql::{Schema, Tables};

/// The embedded migrations: templates, run by this module (sqlx's runner cannot put the
/// schema into them).
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

/// The key of the advisory lock every run of this runner holds, on any schema of the
/// database ("keystead" in ASCII).
pub(crate) const LOCK_KEY: i64 = 0x006b_6579_7374_6561;

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
        "5eab6491d112d7d1247e9f929c25416c6390ca6152aa057fcefb6fba584be8f696bd281b5b23551eca334c182af8203c",
    ),
    (
        2,
        "f9f523eba1038869cf5e06425e4d2d48cc2f10e4f46b9bcab162f5bdce3eef97ad388d55ca4e9a8f191b3aab9dbee51c",
    ),
    (
        3,
        "85e4661067b97dc0d8e4d0d5cd7d9c423171368bdebd6191fa2bc1ffa1140e0f3babe2aff66726cf13947572c3b8f3a8",
    ),
    (
        4,
        "a39e5936edd1f90262a21b55b81404d75e17e0c7a4ef0b00722d898e799cb28073665999237f0729c0b4c9ddeddbce20",
    ),
    (
        5,
        "888e46672acdca52b9d814b77e9d36a6c4289ba3726187541193a95f19525996cfd23f1f29b1fc39a3793e388a93c8e3",
    ),
    (
        6,
        "672f2311b67553a9f79eb17117576ddbb116b07f5263538b33e54d521f8aed411f898967e5a3e3d252dba7d87e7e0d91",
    ),
];

/// An identifier read from the catalog, quoted for a statement.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn backend(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

/// Whether the schema exists, and the versions and checksums recorded in it.
async fn applied(
    conn: &mut PgConnection,
    schema: &Schema,
    tables: &Tables,
) -> Result<BTreeMap<i64, Vec<u8>>, StoreError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
         WHERE schemaname::text = $1 AND tablename = 'migrations')",
    )
    .bind(schema.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;
    if !exists {
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

/// The old layout: the connection's current schema (where the sqlx-run versions put
/// everything) and our versions in its `_sqlx_migrations`, when there are any.
async fn legacy(conn: &mut PgConnection) -> Result<Option<(String, Vec<i64>)>, StoreError> {
    let current: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    let Some(source) = current else {
        return Ok(None);
    };
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
         WHERE schemaname::text = $1 AND tablename = '_sqlx_migrations')",
    )
    .bind(&source)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;
    if !has_table {
        return Ok(None);
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT version, checksum FROM {}._sqlx_migrations WHERE success ORDER BY version",
        quote_ident(&source)
    )))
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
    Ok((!ours.is_empty()).then_some((source, ours)))
}

/// What [`PostgresStore::schema_status`](crate::PostgresStore::schema_status) answers. Reads
/// only.
pub(crate) async fn status(
    pool: &PgPool,
    schema: &Schema,
    tables: &Tables,
) -> Result<SchemaStatus, StoreError> {
    let mut conn = pool.acquire().await.map_err(map_sqlx_error)?;
    let applied = applied(&mut conn, schema, tables).await?;
    let legacy = legacy(&mut conn)
        .await?
        .map(|(_, versions)| versions)
        .unwrap_or_default();
    Ok(SchemaStatus::compare(&applied, legacy, embedded()))
}

/// Brings the schema up to date; see the module documentation.
pub(crate) async fn run(pool: &PgPool, schema: &Schema, tables: &Tables) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(map_sqlx_error)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    let result = run_locked(&mut conn, schema, tables).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // The lock is the session's: ending the session releases it.
        conn.close_on_drop();
    }
    result
}

async fn run_locked(
    conn: &mut PgConnection,
    schema: &Schema,
    tables: &Tables,
) -> Result<(), StoreError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname::text = $1)",
    )
    .bind(schema.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;
    if !exists {
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {}", schema.quoted())))
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
    }
    sqlx::query(tables.sql(
        "CREATE TABLE IF NOT EXISTS {t}migrations (\
             version           bigint      PRIMARY KEY, \
             description       text        NOT NULL, \
             checksum          bytea       NOT NULL, \
             installed_on      timestamptz NOT NULL DEFAULT now(), \
             execution_time_ms bigint      NOT NULL)",
    ))
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;

    adopt_legacy_layout(conn, schema, tables).await?;

    let applied = applied(conn, schema, tables).await?;
    match check_recorded(&applied, &recorded()) {
        Ok(()) => {}
        Err(Mismatch::Unknown(version)) => {
            return Err(backend(format!(
                "schema {schema}: migration {version} was applied but this version of \
                 keystead-postgres does not know it (a newer version ran)"
            )));
        }
        Err(Mismatch::Changed(version, description)) => {
            return Err(backend(format!(
                "schema {schema}: migration {version} ({description}) was changed after it was applied"
            )));
        }
    }

    for migration in MIGRATIONS.iter() {
        if applied.contains_key(&migration.version) {
            continue;
        }
        let started = Instant::now();
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
        sqlx::raw_sql(AssertSqlSafe(tables.render(migration.sql.as_str())))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                tracing::error!(version = migration.version, error = %e, "migration failed");
                map_sqlx_error(e)
            })?;
        sqlx::query(tables.sql(
            "INSERT INTO {t}migrations (version, description, checksum, execution_time_ms) \
             VALUES ($1, $2, $3, $4)",
        ))
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .bind(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        tracing::info!(
            schema = %schema,
            version = migration.version,
            description = %migration.description,
            "applied a migration"
        );
    }
    Ok(())
}

/// Moves a database of the old layout into `schema`, in one transaction: every table of the
/// library in the connection's current schema goes over with `ALTER TABLE … SET SCHEMA`
/// (indexes, constraints and foreign keys go with it, rows untouched), our rows of
/// `_sqlx_migrations` become rows of `<schema>.migrations` (of the same versions), and are
/// deleted from `_sqlx_migrations`, which is dropped if nothing else is left in it. The app's
/// own rows there are never touched. Does nothing when there is no old layout.
async fn adopt_legacy_layout(
    conn: &mut PgConnection,
    schema: &Schema,
    tables: &Tables,
) -> Result<(), StoreError> {
    let Some((source, versions)) = legacy(conn).await? else {
        return Ok(());
    };
    let recorded: i64 = sqlx::query_scalar(tables.sql("SELECT count(*) FROM {t}migrations"))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    if recorded > 0 {
        return Err(backend(format!(
            "schema {schema} is migrated, and {source}._sqlx_migrations also records \
             keystead migrations {versions:?} of the old layout: move or drop one of them \
             (see docs/database.md)"
        )));
    }
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    if source != schema.as_str() {
        let present: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_catalog.pg_tables \
             WHERE schemaname::text = $1 AND tablename::text = ANY($2)",
        )
        .bind(&source)
        .bind(&LEGACY_TABLES[..])
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        for table in &present {
            sqlx::query(AssertSqlSafe(format!(
                "ALTER TABLE {}.{} SET SCHEMA {}",
                quote_ident(&source),
                quote_ident(table),
                schema.quoted()
            )))
            .execute(&mut *tx)
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
            "INSERT INTO {t}migrations (version, description, checksum, execution_time_ms) \
             VALUES ($1, $2, $3, 0)",
        ))
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
    }
    let old_rows = format!("{}._sqlx_migrations", quote_ident(&source));
    for (version, checksum) in LEGACY_MIGRATIONS {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {old_rows} WHERE version = $1 AND encode(checksum, 'hex') = $2"
        )))
        .bind(version)
        .bind(checksum)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
    }
    let left: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {old_rows}")))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
    if left == 0 {
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {old_rows}")))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
    }
    tx.commit().await.map_err(map_sqlx_error)?;
    tracing::info!(
        from = %source,
        to = %schema,
        versions = ?versions,
        "moved the keystead tables of the old layout into their schema"
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
