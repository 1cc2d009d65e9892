//! The store's SQL text, and the [`Schema`] its tables live in.
//!
//! Every statement of this crate (queries and migrations alike) is written with `{t}` before
//! each table name: `SELECT … FROM {t}users`. It runs with `{t}` replaced by the store's
//! schema, quoted and followed by a dot (`"auth".users`), so the statement names the
//! library's tables whatever the connection's `search_path`, and the app's own tables of the
//! same names (`public.users`) are never touched. The schema name is checked when it is made
//! ([`Schema::new`]): it can never carry SQL into a statement.
//!
//! `keystead-sqlite` has the same module, where `{t}` becomes the table prefix.

use std::fmt;
use std::sync::Arc;

pub use keystead_core::sql::InvalidName;
pub(crate) use keystead_core::sql::Statements as Tables;

/// The schema of the library's tables when none is chosen.
pub const DEFAULT_SCHEMA: &str = "auth";

/// The longest schema name accepted: the change feed's channel names (at most 63 bytes)
/// include it.
pub const MAX_SCHEMA_LEN: usize = 40;

/// The Postgres schema that holds every table and index of a [`PostgresStore`]
/// (crate::PostgresStore), and its migrations table `<schema>.migrations`.
///
/// A name of 1 to [`MAX_SCHEMA_LEN`] lower-case ASCII letters, digits and underscores, not
/// starting with a digit nor with `pg_` (reserved by Postgres); `Default` is
/// [`DEFAULT_SCHEMA`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema(Arc<str>);

impl Schema {
    /// Checks `name` and makes a schema of it.
    ///
    /// # Errors
    /// [`InvalidName`] when `name` is empty, too long, or holds anything but `[a-z0-9_]`
    /// (quotes, dots, spaces, upper case…), starts with a digit, starts with `pg_`, or is
    /// `information_schema`.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        let invalid = |reason: &str| Err(InvalidName::new("schema name", name, reason));
        keystead_core::sql::check_name("schema name", name, MAX_SCHEMA_LEN)?;
        if name.as_bytes()[0].is_ascii_digit() {
            return invalid("it must not start with a digit");
        }
        if name.starts_with("pg_") || name == "information_schema" {
            return invalid("the name is reserved by Postgres");
        }
        Ok(Self(name.into()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted as an identifier (`"auth"`).
    pub(crate) fn quoted(&self) -> String {
        // Safe without escaping: the name holds only [a-z0-9_].
        format!("\"{}\"", self.0)
    }

    /// The statements of tables in this schema: `{t}` becomes `"<schema>".`.
    pub(crate) fn tables(&self) -> Tables {
        Tables::new(&format!("{}.", self.quoted()))
    }
}

impl Default for Schema {
    fn default() -> Self {
        Self(DEFAULT_SCHEMA.into())
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Schema {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["auth", "a", "tenant_2", "_private", "x".repeat(40).as_str()] {
            assert!(Schema::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Auth",
            "auth; DROP TABLE users",
            "auth\".users --",
            "a.b",
            "a b",
            "2fa",
            "pg_catalog",
            "information_schema",
            "é",
            "x".repeat(41).as_str(),
        ] {
            let err = Schema::new(bad).expect_err(bad);
            assert!(err.to_string().starts_with("invalid schema name"), "{err}");
        }
    }

    #[test]
    fn statements_name_the_schema() {
        let tables = Schema::new("tenant").unwrap().tables();
        let sql = tables.sql("SELECT id FROM {t}users JOIN {t}memberships m ON true");
        assert_eq!(
            sql,
            "SELECT id FROM \"tenant\".users JOIN \"tenant\".memberships m ON true"
        );
        // Made once: the same text comes back.
        let again = tables.sql("SELECT id FROM {t}users JOIN {t}memberships m ON true");
        assert!(std::ptr::eq(sql, again) || sql == again);
        assert_eq!(
            Schema::default().tables().sql("DELETE FROM {t}sessions"),
            "DELETE FROM \"auth\".sessions"
        );
    }
}
