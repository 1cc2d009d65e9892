//! What the two SQL stores (`keystead-postgres`, `keystead-sqlite`) share whatever the
//! dialect: their statements' table-name placeholder and its rendering, the refusal of a bad
//! schema or prefix name, and the comparison of the migrations a database recorded with the ones
//! a store embeds. Nothing here talks to a database; each store's `sql.rs` and `migrate.rs` keep
//! only what differs by dialect (the name rules, the catalog queries, the locking).
//!
//! ```
//! use keystead_core::sql::Statements;
//!
//! let tables = Statements::new("\"tenant\".");
//! assert_eq!(
//!     tables.sql("SELECT id FROM {t}users"),
//!     "SELECT id FROM \"tenant\".users"
//! );
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// What every statement of a SQL store writes before a table (and, on SQLite, index and
/// trigger) name: `SELECT … FROM {t}users`.
pub const PLACEHOLDER: &str = "{t}";

/// The statements of one store: templates with [`PLACEHOLDER`] replaced, each made once per
/// process and replacement, then shared by every store with the same replacement.
#[derive(Clone)]
pub struct Statements {
    replacement: Arc<str>,
    rendered: Arc<RwLock<HashMap<(usize, usize), &'static str>>>,
}

impl fmt::Debug for Statements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Statements")
            .field("replacement", &self.replacement)
            .finish_non_exhaustive()
    }
}

/// Rendered statements, per replacement: the text of a statement is made once per process (and
/// kept: there are a few hundred statements per replacement, and an app uses one or two).
type Registry = Mutex<HashMap<Arc<str>, Arc<RwLock<HashMap<(usize, usize), &'static str>>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Statements {
    /// The statements whose [`PLACEHOLDER`] becomes `replacement` (a quoted schema and a dot on
    /// Postgres, a table prefix on SQLite). The caller has checked it: it goes into the SQL
    /// text as it is.
    #[must_use]
    pub fn new(replacement: &str) -> Self {
        let replacement: Arc<str> = replacement.into();
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

    /// `template` with its table names: what to pass to `sqlx::query`. Made once per template
    /// (keyed by its address: templates are string literals).
    pub fn sql(&self, template: &'static str) -> &'static str {
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
    #[must_use]
    pub fn render(&self, template: &str) -> String {
        template.replace(PLACEHOLDER, &self.replacement)
    }
}

/// A schema name or table prefix a store refused: it names the input and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    what: &'static str,
    name: String,
    reason: String,
}

impl InvalidName {
    /// `name`, refused as a `what` (`"schema name"`, `"table prefix"`) for `reason`.
    #[must_use]
    pub fn new(what: &'static str, name: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.what, self.name, self.reason)
    }
}

impl std::error::Error for InvalidName {}

/// Checks the rule both stores' names share: 1 to `max` of `[a-z0-9_]`.
///
/// # Errors
/// [`InvalidName`] naming the input as a `what`.
pub fn check_name(what: &'static str, name: &str, max: usize) -> Result<(), InvalidName> {
    if name.is_empty() || name.len() > max {
        return Err(InvalidName::new(
            what,
            name,
            format!("it must be 1 to {max} characters long"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(InvalidName::new(
            what,
            name,
            "only lower-case ASCII letters, digits and underscores are allowed",
        ));
    }
    Ok(())
}

/// Where a database stands against the migrations a store embeds: what
/// `PostgresStore::schema_status` and `SqliteStore::schema_status` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaStatus {
    /// Versions applied, in order.
    pub applied: Vec<i64>,
    /// Versions of this code not applied yet: `migrate()` would apply them.
    pub pending: Vec<i64>,
    /// Versions applied from a file that has changed since: `migrate()` refuses to run.
    pub changed: Vec<i64>,
    /// Versions applied that this code does not know (a newer version ran): `migrate()`
    /// refuses to run.
    pub unknown: Vec<i64>,
    /// Versions recorded in the old layout (sqlx's `_sqlx_migrations`, unqualified or
    /// unprefixed tables) that `migrate()` would move into the store's own layout.
    pub legacy: Vec<i64>,
}

impl SchemaStatus {
    /// Compares `applied` (version → checksum, as recorded) and `legacy` (our versions still in
    /// the old layout, which count as applied once moved) with `embedded` (version and checksum
    /// of each migration the store carries).
    #[must_use]
    pub fn compare<'a>(
        applied: &BTreeMap<i64, Vec<u8>>,
        legacy: Vec<i64>,
        embedded: impl IntoIterator<Item = (i64, &'a [u8])>,
    ) -> Self {
        let mut status = Self {
            applied: applied.keys().copied().collect(),
            pending: Vec::new(),
            changed: Vec::new(),
            unknown: Vec::new(),
            legacy,
        };
        let mut known = Vec::new();
        for (version, checksum) in embedded {
            known.push(version);
            match applied.get(&version) {
                Some(sum) if sum[..] != checksum[..] => status.changed.push(version),
                Some(_) => {}
                None if status.legacy.contains(&version) => {}
                None => status.pending.push(version),
            }
        }
        status.unknown = applied
            .keys()
            .filter(|v| !known.contains(v))
            .copied()
            .collect();
        status
    }

    /// Whether the database is exactly what this code expects: everything applied, nothing
    /// changed or unknown, nothing left in the old layout.
    #[must_use]
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
            && self.changed.is_empty()
            && self.unknown.is_empty()
            && self.legacy.is_empty()
    }
}

/// Why `migrate()` refuses a database whose recorded migrations are not the embedded ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A recorded version the code does not carry (a newer version of the store ran).
    Unknown(i64),
    /// A recorded version whose file changed since; with the embedded description.
    Changed(i64, String),
}

/// Checks every recorded migration against the embedded ones (version, checksum,
/// description).
///
/// # Errors
/// The first [`Mismatch`], in version order.
pub fn check_recorded(
    applied: &BTreeMap<i64, Vec<u8>>,
    embedded: &[(i64, &[u8], &str)],
) -> Result<(), Mismatch> {
    for (version, checksum) in applied {
        match embedded.iter().find(|(v, ..)| v == version) {
            None => return Err(Mismatch::Unknown(*version)),
            Some((_, sum, description)) if sum[..] != checksum[..] => {
                return Err(Mismatch::Changed(*version, (*description).to_owned()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The names of `names` that `sql` uses as a whole word without [`PLACEHOLDER`] before them
/// (outside `--` comments): what a store's test of its migration files lists, to catch a table
/// written without the store's schema or prefix.
#[must_use]
pub fn names_without_placeholder<'a>(sql: &str, names: &[&'a str]) -> Vec<&'a str> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for name in names {
        for (at, _) in sql.match_indices(name) {
            let before = &sql[..at];
            let after = &sql[at + name.len()..];
            let whole = !before.ends_with(word) && !after.starts_with(word);
            let in_comment = before.rsplit('\n').next().is_some_and(|l| l.contains("--"));
            if whole && !in_comment && !before.ends_with(PLACEHOLDER) && !found.contains(name) {
                found.push(*name);
            }
        }
    }
    found
}

/// Lower-case hexadecimal of `bytes` (how the old layout's checksums are kept in the code).
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_rendered_once_and_shared_by_stores_of_one_replacement() {
        let a = Statements::new("tenant_");
        let b = Statements::new("tenant_");
        let template = "SELECT id FROM {t}users JOIN {t}memberships m ON 1";
        let first = a.sql(template);
        assert_eq!(
            first,
            "SELECT id FROM tenant_users JOIN tenant_memberships m ON 1"
        );
        assert!(std::ptr::eq(first, b.sql(template)));
        assert_eq!(
            Statements::new("\"auth\".").sql("DELETE FROM {t}sessions"),
            "DELETE FROM \"auth\".sessions"
        );
    }

    #[test]
    fn names_outside_the_shared_rule_are_refused_with_the_input_named() {
        assert!(check_name("table prefix", "auth_", 32).is_ok());
        for bad in ["", "a\"b", "a.b", "a b", "Auth", "é", &"x".repeat(33)] {
            let err = check_name("table prefix", bad, 32).expect_err(bad);
            assert!(err.to_string().starts_with("invalid table prefix"), "{err}");
        }
    }

    #[test]
    fn the_status_sorts_each_version() {
        let applied = BTreeMap::from([(1, vec![1]), (2, vec![9]), (7, vec![7])]);
        let embedded: [(i64, &[u8]); 4] = [(1, &[1]), (2, &[2]), (3, &[3]), (4, &[4])];
        let status = SchemaStatus::compare(&applied, vec![4], embedded);
        assert_eq!(status.applied, [1, 2, 7]);
        assert_eq!(status.changed, [2]);
        assert_eq!(status.pending, [3]);
        assert_eq!(status.unknown, [7]);
        assert_eq!(status.legacy, [4]);
        assert!(!status.is_current());
        let current = SchemaStatus::compare(
            &BTreeMap::from([(1, vec![1])]),
            Vec::new(),
            [(1, &[1u8][..])],
        );
        assert!(current.is_current());
    }

    #[test]
    fn recorded_migrations_must_be_the_embedded_ones() {
        let embedded: [(i64, &[u8], &str); 2] = [(1, &[1], "users"), (2, &[2], "sessions")];
        assert_eq!(
            check_recorded(&BTreeMap::from([(1, vec![1])]), &embedded),
            Ok(())
        );
        assert_eq!(
            check_recorded(&BTreeMap::from([(2, vec![0])]), &embedded),
            Err(Mismatch::Changed(2, "sessions".into()))
        );
        assert_eq!(
            check_recorded(&BTreeMap::from([(1, vec![1]), (3, vec![3])]), &embedded),
            Err(Mismatch::Unknown(3))
        );
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn a_table_without_the_placeholder_is_found() {
        let names = ["users", "sessions"];
        let sql = "CREATE TABLE {t}users (id int);\n-- sessions are below\n\
                   CREATE INDEX {t}users_idx ON {t}users (id);\nDELETE FROM sessions;";
        assert_eq!(names_without_placeholder(sql, &names), ["sessions"]);
        assert!(names_without_placeholder("SELECT 1 FROM {t}sessions", &names).is_empty());
    }
}
