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

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// What every statement writes before a table name.
pub(crate) const PLACEHOLDER: &str = "{t}";

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
        let invalid = |reason| {
            Err(InvalidName {
                name: name.to_owned(),
                reason,
            })
        };
        if name.is_empty() || name.len() > MAX_SCHEMA_LEN {
            return invalid("it must be 1 to 40 characters long");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return invalid("only lower-case ASCII letters, digits and underscores are allowed");
        }
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

/// A schema name [`Schema::new`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    name: String,
    reason: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid schema name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidName {}

/// The statements of one schema: templates with `{t}` replaced, each made once per process
/// and schema, then shared.
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
    /// The statements of tables in `schema`.
    pub(crate) fn new(schema: &Schema) -> Self {
        let replacement: Arc<str> = format!("{}.", schema.quoted()).into();
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
        let tables = Tables::new(&Schema::new("tenant").unwrap());
        let sql = tables.sql("SELECT id FROM {t}users JOIN {t}memberships m ON true");
        assert_eq!(
            sql,
            "SELECT id FROM \"tenant\".users JOIN \"tenant\".memberships m ON true"
        );
        // Made once: the same text comes back.
        let again = tables.sql("SELECT id FROM {t}users JOIN {t}memberships m ON true");
        assert!(std::ptr::eq(sql, again) || sql == again);
        assert_eq!(
            Tables::new(&Schema::default()).sql("DELETE FROM {t}sessions"),
            "DELETE FROM \"auth\".sessions"
        );
    }
}
