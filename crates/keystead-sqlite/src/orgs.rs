//! [`OrganizationStore`] for [`SqliteStore`].
//!
//! Every change that could leave an organization without an owner runs in a `BEGIN
//! IMMEDIATE` transaction on the single writer connection, and checks the owners inside it:
//! no concurrent change can interleave between the check and the write. The schema's
//! triggers refuse such a change from any other writer as well.

use async_trait::async_trait;
use keystead_core::{
    Member, Membership, OrgAccess, OrgId, Organization, OrganizationStore, Role, StoreError,
    StoreResult, UserId, UserOrganization,
};
use sqlx::sqlite::SqliteConnection;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{
    self, RowExt, membership_columns, micros, organization_columns, second_factor_of_m,
};
use crate::sql::Tables;

/// The member's current role, inside a transaction.
async fn role_of(
    tables: &Tables,
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: &str,
) -> StoreResult<Option<Role>> {
    sqlx::query(tables.sql("SELECT role FROM {t}memberships WHERE org_id = ?1 AND user_id = ?2"))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| row.role("role"))
        .transpose()
}

/// Whether the organization has an owner other than `user_id`, inside a transaction.
async fn has_other_owner(
    tables: &Tables,
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: &str,
) -> StoreResult<bool> {
    let row = sqlx::query(tables.sql("SELECT 1 FROM {t}memberships WHERE org_id = ?1 AND role = 'owner' AND user_id <> ?2 LIMIT 1"),
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx_error)?;
    Ok(row.is_some())
}

async fn set_role(
    tables: &Tables,
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: &str,
    role: &Role,
) -> StoreResult<Membership> {
    sqlx::query(tables.sql(concat!(
        "UPDATE {t}memberships SET role = ?1 WHERE org_id = ?2 AND user_id = ?3 RETURNING ",
        membership_columns!()
    )))
    .bind(role.as_str())
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx_error)?
    .as_ref()
    .map(rows::membership)
    .transpose()?
    .ok_or(StoreError::NotFound)
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn create_organization(
        &self,
        org: &Organization,
        owner: UserId,
    ) -> StoreResult<Membership> {
        let membership = Membership {
            org_id: org.id,
            user_id: owner,
            role: Role::OWNER,
            joined_at: org.created_at,
        };
        let mut tx = self.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO {t}organizations (id, name, slug, created_at, external_id, mfa_required) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        ))
        .bind(org.id.to_string())
        .bind(org.name.as_str())
        .bind(org.slug.as_str())
        .bind(micros(org.created_at))
        .bind(org.external_id.as_deref())
        .bind(org.mfa_required)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        // An unknown owner fails the foreign key: NotFound.
        sqlx::query(self.sql(
            "INSERT INTO {t}memberships (org_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
        ))
        .bind(org.id.to_string())
        .bind(owner.to_string())
        .bind(membership.role.as_str())
        .bind(micros(membership.joined_at))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(membership)
    }

    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM {t}organizations WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::organization)
        .transpose()
    }

    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM {t}organizations WHERE slug = ?1"
        )))
        .bind(slug)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::organization)
        .transpose()
    }

    async fn organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM {t}organizations WHERE external_id = ?1"
        )))
        .bind(external_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::organization)
        .transpose()
    }

    async fn organizations(
        &self,
        after: Option<OrgId>,
        limit: u32,
    ) -> StoreResult<Vec<Organization>> {
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM {t}organizations WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2"
        )))
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        found.iter().map(rows::organization).collect()
    }

    async fn rename_organization(&self, id: OrgId, name: &str) -> StoreResult<Organization> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}organizations SET name = ?1 WHERE id = ?2 RETURNING ",
            organization_columns!()
        )))
        .bind(name)
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::organization)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn delete_organization(&self, id: OrgId) -> StoreResult<()> {
        // Memberships, invitations and API tokens go by cascade; sessions lose it as their
        // active organization (ON DELETE SET NULL); audit events keep the event.
        let done = sqlx::query(self.sql("DELETE FROM {t}organizations WHERE id = ?1"))
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn organizations_for_user(&self, user_id: UserId) -> StoreResult<Vec<UserOrganization>> {
        let rows = sqlx::query(self.sql(
            "SELECT o.id, o.name, o.slug, o.created_at, o.external_id, o.mfa_required, m.role, \
                 m.joined_at \
             FROM {t}memberships AS m JOIN {t}organizations AS o ON o.id = m.org_id \
             WHERE m.user_id = ?1 ORDER BY m.joined_at, o.id",
        ))
        .bind(user_id.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&rows, |row| {
            Ok(UserOrganization {
                organization: rows::organization(row)?,
                role: row.role("role")?,
                joined_at: row.time("joined_at")?,
            })
        })
    }

    async fn membership(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<Membership>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM {t}memberships WHERE org_id = ?1 AND user_id = ?2"
        )))
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::membership)
        .transpose()
    }

    async fn members(&self, org_id: OrgId) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(self.sql(concat!(
            "SELECT m.org_id, m.user_id, m.role, m.joined_at, \
                 u.id, u.email, u.name, u.email_verified_at, u.created_at, u.external_id, \
                 u.disabled_at, ",
            second_factor_of_m!(),
            " FROM {t}memberships AS m JOIN {t}users AS u ON u.id = m.user_id \
             WHERE m.org_id = ?1 ORDER BY m.joined_at, m.user_id"
        )))
        .bind(org_id.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&rows, |row| {
            Ok(Member {
                membership: rows::membership(row)?,
                user: rows::user(row)?,
                second_factor: row.boolean("second_factor")?,
            })
        })
    }

    async fn org_access(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<OrgAccess>> {
        sqlx::query(self.sql(concat!(
            "SELECT m.org_id, m.user_id, m.role, m.joined_at, o.mfa_required, ",
            second_factor_of_m!(),
            " FROM {t}memberships AS m JOIN {t}organizations AS o ON o.id = m.org_id \
             WHERE m.org_id = ?1 AND m.user_id = ?2"
        )))
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .map(|row| {
            Ok(OrgAccess {
                membership: rows::membership(&row)?,
                mfa_required: row.boolean("mfa_required")?,
                second_factor: row.boolean("second_factor")?,
            })
        })
        .transpose()
    }

    async fn set_org_mfa_required(&self, id: OrgId, required: bool) -> StoreResult<Organization> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}organizations SET mfa_required = ?1 WHERE id = ?2 RETURNING ",
            organization_columns!()
        )))
        .bind(required)
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::organization)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn add_member(&self, membership: &Membership) -> StoreResult<()> {
        sqlx::query(self.sql(
            "INSERT INTO {t}memberships (org_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
        ))
        .bind(membership.org_id.to_string())
        .bind(membership.user_id.to_string())
        .bind(membership.role.as_str())
        .bind(micros(membership.joined_at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn change_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &Role,
    ) -> StoreResult<Membership> {
        self.change_role_checked(org_id, user_id, None, role).await
    }

    async fn remove_member(&self, org_id: OrgId, user_id: UserId) -> StoreResult<()> {
        self.remove_member_checked(org_id, user_id, None).await
    }

    async fn change_role_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
        role: &Role,
    ) -> StoreResult<Membership> {
        self.change_role_checked(org_id, user_id, Some(expected), role)
            .await
    }

    async fn remove_member_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
    ) -> StoreResult<()> {
        self.remove_member_checked(org_id, user_id, Some(expected))
            .await
    }

    async fn transfer_ownership(
        &self,
        org_id: OrgId,
        from: UserId,
        to: UserId,
        from_becomes: &Role,
    ) -> StoreResult<()> {
        let (org, from_id, to_id) = (org_id.to_string(), from.to_string(), to.to_string());
        let mut tx = self.begin().await?;
        let from_role = role_of(&self.tables, &mut tx, &org, &from_id).await?;
        let to_role = role_of(&self.tables, &mut tx, &org, &to_id).await?;
        let (Some(from_role), Some(_)) = (from_role, to_role) else {
            return Err(StoreError::NotFound);
        };
        if !from_role.is_owner() {
            return Err(StoreError::LastOwner);
        }
        if from == to {
            // Already the owner; demoting them would contradict "make `to` an owner".
            return Ok(());
        }
        // Promote first, so the organization never lacks an owner (the trigger checks).
        set_role(&self.tables, &mut tx, &org, &to_id, &Role::OWNER).await?;
        set_role(&self.tables, &mut tx, &org, &from_id, from_becomes).await?;
        tx.commit().await.map_err(map_sqlx_error)
    }
}

impl SqliteStore {
    /// Changes a member's role in one write transaction (SQLite's one writer serializes it
    /// with every other membership change): the last-owner rule and, when given, the role the
    /// caller's decision was made on are checked on what the transaction reads.
    async fn change_role_checked(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: Option<&Role>,
        role: &Role,
    ) -> StoreResult<Membership> {
        let (org_id, user_id) = (org_id.to_string(), user_id.to_string());
        let mut tx = self.begin().await?;
        let current = role_of(&self.tables, &mut tx, &org_id, &user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if let Some(expected) = expected
            && *expected != current
        {
            return Err(StoreError::RoleChanged { current });
        }
        if current.is_owner()
            && !role.is_owner()
            && !has_other_owner(&self.tables, &mut tx, &org_id, &user_id).await?
        {
            return Err(StoreError::LastOwner);
        }
        let membership = set_role(&self.tables, &mut tx, &org_id, &user_id, role).await?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(membership)
    }

    /// Removes a member in one write transaction; see [`Self::change_role_checked`].
    async fn remove_member_checked(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: Option<&Role>,
    ) -> StoreResult<()> {
        let (org_id, user_id) = (org_id.to_string(), user_id.to_string());
        let mut tx = self.begin().await?;
        let current = role_of(&self.tables, &mut tx, &org_id, &user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if let Some(expected) = expected
            && *expected != current
        {
            return Err(StoreError::RoleChanged { current });
        }
        if current.is_owner() && !has_other_owner(&self.tables, &mut tx, &org_id, &user_id).await? {
            return Err(StoreError::LastOwner);
        }
        sqlx::query(self.sql("DELETE FROM {t}memberships WHERE org_id = ?1 AND user_id = ?2"))
            .bind(&org_id)
            .bind(&user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)
    }
}
