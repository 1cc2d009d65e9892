//! Roles, permissions, and the map between them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A role within an organization. `owner`, `admin` and `member` are built in; an app may add
/// its own through [`RolePermissions`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Role(Cow<'static, str>);

impl Role {
    /// Everything, including billing and deleting the organization. An organization always
    /// keeps at least one.
    pub const OWNER: Role = Role(Cow::Borrowed("owner"));
    /// Manages members and admins, and every feature.
    pub const ADMIN: Role = Role(Cow::Borrowed("admin"));
    /// Uses the features; no administration.
    pub const MEMBER: Role = Role(Cow::Borrowed("member"));

    /// A role by name (lower-case letters, digits, `_` and `-`; 1 to 64 characters).
    ///
    /// # Errors
    /// When the name has other characters or another length.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, InvalidName> {
        let name = name.into();
        // The built-in names share their static strings: a role read from the store is
        // cloned into every request's principal, and this keeps that free of allocations.
        for builtin in [Self::OWNER, Self::ADMIN, Self::MEMBER] {
            if builtin.0 == name {
                return Ok(builtin);
            }
        }
        if valid_name(&name, false) {
            Ok(Self(name))
        } else {
            Err(InvalidName)
        }
    }

    /// The role's name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the owner role.
    #[must_use]
    pub fn is_owner(&self) -> bool {
        *self == Self::OWNER
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Role({})", self.0)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission string such as `read:projects` or `billing:manage`; API token scopes are
/// permissions too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Permission(Cow<'static, str>);

impl Permission {
    /// A permission from a static string, checked at the call site's first use.
    ///
    /// # Panics
    /// When `name` is not a valid permission name: a programming error.
    #[must_use]
    pub fn from_static(name: &'static str) -> Self {
        assert!(valid_name(name, true), "invalid permission name {name:?}");
        Self(Cow::Borrowed(name))
    }

    /// A permission by name (lower-case letters, digits, `_`, `-`, `:` and `.`; 1 to 64).
    ///
    /// # Errors
    /// When the name has other characters or another length.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, InvalidName> {
        let name = name.into();
        if valid_name(&name, true) {
            Ok(Self(name))
        } else {
            Err(InvalidName)
        }
    }

    /// The permission's name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// `Ord`, `Eq` and `Hash` are those of the name, so sets of permissions can be searched by name.
impl std::borrow::Borrow<str> for Permission {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.0)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role or permission name was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid role or permission name")]
pub struct InvalidName;

fn valid_name(name: &str, permission: bool) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'_'
                || b == b'-'
                || (permission && (b == b':' || b == b'.'))
        })
}

/// The roles an app knows and what each may do.
///
/// [`RolePermissions::default`] is the contract's map; an app replaces or extends it with its
/// own permission strings and roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePermissions {
    // Shared, so that a principal carries its role's set without copying it per request.
    map: BTreeMap<Role, Arc<BTreeSet<Permission>>>,
}

impl RolePermissions {
    /// A map with no roles.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            map: BTreeMap::new(),
        }
    }

    /// Sets what `role` may do, replacing what it had.
    #[must_use]
    pub fn with_role(
        mut self,
        role: Role,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Self {
        self.map
            .insert(role, Arc::new(permissions.into_iter().collect()));
        self
    }

    /// What `role` may do; empty for an unknown role.
    #[must_use]
    pub fn permissions(&self, role: &Role) -> &BTreeSet<Permission> {
        static EMPTY: BTreeSet<Permission> = BTreeSet::new();
        self.map.get(role).map_or(&EMPTY, |set| set.as_ref())
    }

    /// What `role` may do, shared (a reference count, not a copy); empty for an unknown role.
    #[must_use]
    pub fn permissions_shared(&self, role: &Role) -> Arc<BTreeSet<Permission>> {
        self.map.get(role).cloned().unwrap_or_default()
    }

    /// Whether `role` grants `permission`.
    #[must_use]
    pub fn grants(&self, role: &Role, permission: &Permission) -> bool {
        self.permissions(role).contains(permission)
    }

    /// Whether `role` is known.
    #[must_use]
    pub fn knows_role(&self, role: &Role) -> bool {
        self.map.contains_key(role)
    }

    /// Whether any role grants `permission` (an unknown scope is refused with `invalid_scope`).
    #[must_use]
    pub fn knows_permission(&self, permission: &Permission) -> bool {
        self.map.values().any(|set| set.contains(permission))
    }

    /// The known roles.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.map.keys()
    }

    /// Checks role names an app's routes require (`#[require_role("…")]`, actix's
    /// `guard::role`): run it at start-up over every name, so that a typo stops the app
    /// instead of waiting for the first request (which it would refuse, 403). Built-in names
    /// are checked at compile time by the annotation already; a role the app adds must be in
    /// this map.
    ///
    /// # Errors
    /// [`UnknownRoles`] naming every name that is malformed or not defined here.
    pub fn check_roles<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), UnknownRoles> {
        let unknown: Vec<String> = names
            .into_iter()
            .filter(|name| Role::new((*name).to_owned()).map_or(true, |r| !self.knows_role(&r)))
            .map(str::to_owned)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(UnknownRoles {
                unknown,
                known: self.map.keys().map(|r| r.as_str().to_owned()).collect(),
            })
        }
    }
}

/// Role names that the configured [`RolePermissions`] does not define: a check on them would
/// admit no one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role(s) {}: the configured roles are {}",
    quoted(unknown),
    quoted(known)
)]
#[non_exhaustive]
pub struct UnknownRoles {
    /// The names that are not roles here.
    pub unknown: Vec<String>,
    /// The roles that are.
    pub known: Vec<String>,
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Default for RolePermissions {
    /// The contract's defaults: member < admin < owner.
    fn default() -> Self {
        let member: Vec<Permission> = [
            "read:projects",
            "write:projects",
            "read:deployments",
            "write:deployments",
            "members:read",
            "tokens:create",
        ]
        .into_iter()
        .map(Permission::from_static)
        .collect();
        let mut admin = member.clone();
        admin
            .extend(["members:manage", "tokens:manage", "audit:read"].map(Permission::from_static));
        let mut owner = admin.clone();
        owner.extend(["billing:manage", "org:delete"].map(Permission::from_static));
        Self::empty()
            .with_role(Role::MEMBER, member)
            .with_role(Role::ADMIN, admin)
            .with_role(Role::OWNER, owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_map_matches_the_contract() {
        let map = RolePermissions::default();
        let p = Permission::from_static;
        assert!(map.grants(&Role::MEMBER, &p("write:deployments")));
        assert!(!map.grants(&Role::MEMBER, &p("members:manage")));
        assert!(map.grants(&Role::ADMIN, &p("tokens:manage")));
        assert!(!map.grants(&Role::ADMIN, &p("billing:manage")));
        assert!(map.grants(&Role::OWNER, &p("org:delete")));
        assert!(map.grants(&Role::ADMIN, &p("audit:read")));
        assert!(map.grants(&Role::OWNER, &p("audit:read")));
        assert!(!map.grants(&Role::MEMBER, &p("audit:read")));
        assert_eq!(map.permissions(&Role::OWNER).len(), 11);
        assert!(map.permissions(&Role::new("viewer").unwrap()).is_empty());
        assert!(!map.knows_permission(&p("launch:missiles")));
    }

    #[test]
    fn role_checks_name_every_unknown_role() {
        let map = RolePermissions::default();
        assert!(map.check_roles(["owner", "admin", "member"]).is_ok());
        let err = map
            .check_roles(["admin", "administrator", "Bad Name"])
            .unwrap_err();
        assert_eq!(err.unknown, ["administrator", "Bad Name"]);
        assert!(err.to_string().contains("\"administrator\""), "{err}");
        assert!(err.to_string().contains("\"owner\""), "{err}");
    }

    #[test]
    fn names_are_validated() {
        assert!(Role::new("billing-admin").is_ok());
        assert!(Role::new("Owner").is_err());
        assert!(Role::new("").is_err());
        assert!(Permission::new("read:projects").is_ok());
        assert!(Permission::new("read projects").is_err());
        assert!(Permission::new("x".repeat(65)).is_err());
        assert_eq!(serde_json::to_string(&Role::OWNER).unwrap(), "\"owner\"");
    }
}
