//! The store's SQL text, and the [`TablePrefix`] of its tables.
//!
//! Every statement of this crate (queries and migrations alike) is written with `{t}` before
//! each table, index and trigger name: `SELECT … FROM {t}users`. It runs with `{t}` replaced
//! by the store's table prefix (`auth_users`), so the app's own tables of the same names
//! (`users`) are never touched. The prefix is checked when it is made
//! ([`TablePrefix::new`]): it can never carry SQL into a statement.
//!
//! `keystead-postgres` has the same module, where `{t}` becomes the schema.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// What every statement writes before a table name.
pub(crate) const PLACEHOLDER: &str = "{t}";

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
        let invalid = |reason| {
            Err(InvalidName {
                name: prefix.to_owned(),
                reason,
            })
        };
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return invalid("it must be 1 to 32 characters long");
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return invalid("only lower-case ASCII letters, digits and underscores are allowed");
        }
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

/// A table prefix [`TablePrefix::new`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    name: String,
    reason: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid table prefix {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidName {}

/// The statements of one prefix: templates with `{t}` replaced, each made once per process
/// and prefix, then shared.
#[derive(Clone)]
pub(crate) struct Tables {
    replacement: Arc<str>,
    rendered: Arc<RwLock<HashMap<(usize, usize), &'static str>>>,
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tables")
            .field("replacement", &self.replacement)
            .finish_non_exhaustive()
    }
}

/// Rendered statements, per replacement: shared by every store with that replacement, so
/// that the text of a statement is made once per process (and kept: there are a few hundred
/// statements per replacement, and an app uses one or two).
type Registry = Mutex<HashMap<Arc<str>, Arc<RwLock<HashMap<(usize, usize), &'static str>>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Tables {
    /// The statements of tables with `prefix`.
    pub(crate) fn new(prefix: &TablePrefix) -> Self {
        let replacement: Arc<str> = prefix.0.clone();
        let rendered = registry()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(replacement.clone())
            .or_default()
            .clone();
        Self {
            replacement,
            rendered,
        }
    }

    /// `template` with its table names: what to pass to `sqlx::query`.
    pub(crate) fn sql(&self, template: &'static str) -> &'static str {
        let key = (template.as_ptr() as usize, template.len());
        if let Some(sql) = self
            .rendered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return sql;
        }
        let mut rendered = self
            .rendered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        rendered.entry(key).or_insert_with(|| {
            let text: &'static str = Box::leak(self.render(template).into_boxed_str());
            text
        })
    }

    /// `template` with its table names, made anew (for the migrations, which run rarely).
    pub(crate) fn render(&self, template: &str) -> String {
        template.replace(PLACEHOLDER, &self.replacement)
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
        let tables = Tables::new(&TablePrefix::new("tenant_").unwrap());
        assert_eq!(
            tables.sql("SELECT id FROM {t}users JOIN {t}memberships m ON 1"),
            "SELECT id FROM tenant_users JOIN tenant_memberships m ON 1"
        );
        assert_eq!(
            Tables::new(&TablePrefix::default()).sql("DELETE FROM {t}sessions"),
            "DELETE FROM auth_sessions"
        );
    }
}
