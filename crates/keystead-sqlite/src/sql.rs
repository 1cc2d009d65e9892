//! The store's SQL text, and the [`TablePrefix`] of its tables.
//!
//! Every statement of this crate (queries and migrations alike) is written with `{t}` before
//! each table, index and trigger name: `SELECT … FROM {t}users`. It runs with `{t}` replaced
//! by the store's table prefix (`auth_users`), so the app's own tables of the same names
//! (`users`) are never touched. The prefix is checked when it is made
//! ([`TablePrefix::new`]): it can never carry SQL into a statement.
//!
//! `keystead-postgres` has the same module, where `{t}` becomes the schema.

use std::fmt;
use std::sync::Arc;

pub use keystead_core::sql::InvalidName;
pub(crate) use keystead_core::sql::Statements as Tables;

/// The prefix of the library's tables when none is chosen.
pub const DEFAULT_PREFIX: &str = "auth_";

/// The longest prefix accepted.
pub const MAX_PREFIX_LEN: usize = 32;

/// What the names of every table, index and trigger of a [`SqliteStore`](crate::SqliteStore)
/// start with; its migrations table is `<prefix>migrations`.
///
/// 1 to [`MAX_PREFIX_LEN`] lower-case ASCII letters, digits and underscores, starting with a
/// letter, not starting with `sqlite_` (reserved by SQLite); `Default` is
/// [`DEFAULT_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TablePrefix(Arc<str>);

impl TablePrefix {
    /// Checks `prefix` and makes a table prefix of it.
    ///
    /// # Errors
    /// [`InvalidName`] when `prefix` is empty, too long, holds anything but `[a-z0-9_]`
    /// (quotes, dots, spaces, upper case…), does not start with a letter, or starts with
    /// `sqlite_`.
    pub fn new(prefix: &str) -> Result<Self, InvalidName> {
        let invalid = |reason: &str| Err(InvalidName::new("table prefix", prefix, reason));
        keystead_core::sql::check_name("table prefix", prefix, MAX_PREFIX_LEN)?;
        if !prefix.as_bytes()[0].is_ascii_lowercase() {
            return invalid("it must start with a letter");
        }
        if prefix.starts_with("sqlite_") {
            return invalid("names starting with sqlite_ are reserved by SQLite");
        }
        Ok(Self(prefix.into()))
    }

    /// The prefix.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The statements of tables with this prefix: `{t}` becomes `<prefix>`.
    pub(crate) fn tables(&self) -> Tables {
        Tables::new(&self.0)
    }
}

impl Default for TablePrefix {
    fn default() -> Self {
        Self(DEFAULT_PREFIX.into())
    }
}

impl fmt::Display for TablePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TablePrefix {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        for good in ["auth_", "a", "tenant2_", "x".repeat(32).as_str()] {
            assert!(TablePrefix::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Auth_",
            "auth_; DROP TABLE users; --",
            "a\"b",
            "a.b",
            "a b",
            "_x",
            "2fa_",
            "sqlite_",
            "é",
            "x".repeat(33).as_str(),
        ] {
            let err = TablePrefix::new(bad).expect_err(bad);
            assert!(err.to_string().starts_with("invalid table prefix"), "{err}");
        }
    }

    #[test]
    fn statements_name_the_prefixed_tables() {
        let tables = TablePrefix::new("tenant_").unwrap().tables();
        assert_eq!(
            tables.sql("SELECT id FROM {t}users JOIN {t}memberships m ON 1"),
            "SELECT id FROM tenant_users JOIN tenant_memberships m ON 1"
        );
        assert_eq!(
            TablePrefix::default()
                .tables()
                .sql("DELETE FROM {t}sessions"),
            "DELETE FROM auth_sessions"
        );
    }
}
