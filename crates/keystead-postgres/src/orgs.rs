//! [`OrganizationStore`] on Postgres.
//!
//! Every change that could take an owner away from an organization (a role change, a removal,
//! a transfer, deleting a user) first locks the organization row with `SELECT … FOR UPDATE` in
//! its transaction, then counts owners. Two such changes to one organization therefore run one
//! after the other, and the second counts what the first left: of two owners demoting each
//! other at once, one stays owner.

use async_trait::async_trait;
use keystead_core::{
    Member, Membership, OrgAccess, OrgId, Organization, OrganizationStore, Role, StoreError,
    StoreResult, UserId, UserOrganization,
};
use sqlx::{PgConnection, Row as _};

use crate::PostgresStore;
use crate::error::{map_sqlx_error, retrying};
use crate::rows::{
    self, membership_columns, organization_columns, organization_columns_o, second_factor_of_m,
    user_columns_u,
};
use crate::sql::Tables;
use crate::users::ensure_other_owners;

/// Locks the organization row; [`StoreError::NotFound`] when there is none.
async fn lock_org(tables: &Tables, conn: &mut PgConnection, org_id: OrgId) -> StoreResult<()> {
    sqlx::query(tables.sql("SELECT id FROM {t}organizations WHERE id = $1 FOR UPDATE"))
        .bind(org_id.into_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx_error)?
        .map(|_| ())
        .ok_or(StoreError::NotFound)
}

/// The member's role; [`StoreError::NotFound`] for a non-member.
async fn role_of(
    tables: &Tables,
    conn: &mut PgConnection,
    org_id: OrgId,
    user_id: UserId,
) -> StoreResult<Role> {
    let role: Option<String> = sqlx::query_scalar(
        tables.sql("SELECT role FROM {t}memberships WHERE org_id = $1 AND user_id = $2"),
    )
    .bind(org_id.into_uuid())
    .bind(user_id.into_uuid())
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx_error)?;
    let role = role.ok_or(StoreError::NotFound)?;
    Role::new(role).map_err(|_| StoreError::corrupt("invalid role name in memberships.role"))
}

/// Sets a member's role and returns the membership.
async fn set_role(
    tables: &Tables,
    conn: &mut PgConnection,
    org_id: OrgId,
    user_id: UserId,
    role: &Role,
) -> StoreResult<Membership> {
    sqlx::query(tables.sql(concat!(
        "UPDATE {t}memberships SET role = $3 WHERE org_id = $1 AND user_id = $2 RETURNING ",
        membership_columns!()
    )))
    .bind(org_id.into_uuid())
    .bind(user_id.into_uuid())
    .bind(role.as_str())
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx_error)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), rows::membership)
}

impl PostgresStore {
    async fn create_organization_once(
        &self,
        org: &Organization,
        owner: UserId,
    ) -> StoreResult<Membership> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        sqlx::query(self.sql(
            "INSERT INTO {t}organizations (id, name, slug, created_at, external_id, mfa_required) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .bind(org.id.into_uuid())
        .bind(org.name.as_str())
        .bind(org.slug.as_str())
        .bind(org.created_at)
        .bind(org.external_id.as_deref())
        .bind(org.mfa_required)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let row = sqlx::query(self.sql(concat!(
            "INSERT INTO {t}memberships (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
             RETURNING ",
            membership_columns!()
        )))
        .bind(org.id.into_uuid())
        .bind(owner.into_uuid())
        .bind(Role::OWNER.as_str())
        .bind(org.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let membership = rows::membership(&row)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(membership)
    }

    async fn change_role_once(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: Option<&Role>,
        role: &Role,
    ) -> StoreResult<Membership> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        lock_org(&self.tables, &mut tx, org_id).await?;
        let current = role_of(&self.tables, &mut tx, org_id, user_id).await?;
        if let Some(expected) = expected
            && *expected != current
        {
            return Err(StoreError::RoleChanged { current });
        }
        if current.is_owner() && !role.is_owner() {
            ensure_other_owners(&self.tables, &mut tx, &[org_id.into_uuid()], user_id).await?;
        }
        let membership = set_role(&self.tables, &mut tx, org_id, user_id, role).await?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(membership)
    }

    async fn remove_member_once(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: Option<&Role>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        lock_org(&self.tables, &mut tx, org_id).await?;
        let current = role_of(&self.tables, &mut tx, org_id, user_id).await?;
        if let Some(expected) = expected
            && *expected != current
        {
            return Err(StoreError::RoleChanged { current });
        }
        if current.is_owner() {
            ensure_other_owners(&self.tables, &mut tx, &[org_id.into_uuid()], user_id).await?;
        }
        sqlx::query(self.sql("DELETE FROM {t}memberships WHERE org_id = $1 AND user_id = $2"))
            .bind(org_id.into_uuid())
            .bind(user_id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)
    }

    async fn transfer_ownership_once(
        &self,
        org_id: OrgId,
        from: UserId,
        to: UserId,
        from_becomes: &Role,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        lock_org(&self.tables, &mut tx, org_id).await?;
        let from_role = role_of(&self.tables, &mut tx, org_id, from).await?;
        role_of(&self.tables, &mut tx, org_id, to).await?;
        if !from_role.is_owner() {
            return Err(StoreError::LastOwner);
        }
        set_role(&self.tables, &mut tx, org_id, to, &Role::OWNER).await?;
        if from != to {
            set_role(&self.tables, &mut tx, org_id, from, from_becomes).await?;
        }
        // Whatever the arguments, the organization leaves this transaction with an owner.
        let has_owner: bool = sqlx::query_scalar(self.sql(
            "SELECT EXISTS (SELECT 1 FROM {t}memberships WHERE org_id = $1 AND role = 'owner')",
        ))
        .bind(org_id.into_uuid())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if !has_owner {
            return Err(StoreError::LastOwner);
        }
        tx.commit().await.map_err(map_sqlx_error)
    }
}

#[async_trait]
impl OrganizationStore for PostgresStore {
    async fn create_organization(
        &self,
        org: &Organization,
        owner: UserId,
    ) -> StoreResult<Membership> {
        retrying(|| self.create_organization_once(org, owner)).await
    }

    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            organization_columns!(),
            " FROM {t}organizations WHERE id = $1"
        )))
        .bind(id.into_uuid())
        .fetch_optional(&self.pool)
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
            " FROM {t}organizations WHERE slug = $1"
        )))
        .bind(slug)
        .fetch_optional(&self.pool)
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
            " FROM {t}organizations WHERE external_id = $1"
        )))
        .bind(external_id)
        .fetch_optional(&self.pool)
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
            " FROM {t}organizations WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
        )))
        .bind(after.map(OrgId::into_uuid))
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, rows::organization)
    }

    async fn rename_organization(&self, id: OrgId, name: &str) -> StoreResult<Organization> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}organizations SET name = $2 WHERE id = $1 RETURNING ",
            organization_columns!()
        )))
        .bind(id.into_uuid())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::organization)
    }

    async fn delete_organization(&self, id: OrgId) -> StoreResult<()> {
        // Memberships, invitations and API tokens go by cascade; sessions lose it as their
        // active organization (ON DELETE SET NULL).
        let done = sqlx::query(self.sql("DELETE FROM {t}organizations WHERE id = $1"))
            .bind(id.into_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn organizations_for_user(&self, user_id: UserId) -> StoreResult<Vec<UserOrganization>> {
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            organization_columns_o!(),
            ", m.role AS m_role, m.joined_at AS m_joined_at \
             FROM {t}memberships m JOIN {t}organizations o ON o.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY m.joined_at, m.org_id"
        )))
        .bind(user_id.into_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, |row| {
            let (role, joined_at) = rows::role_and_joined_at(row)?;
            Ok(UserOrganization {
                organization: rows::organization(row)?,
                role,
                joined_at,
            })
        })
    }

    async fn membership(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<Membership>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM {t}memberships WHERE org_id = $1 AND user_id = $2"
        )))
        .bind(org_id.into_uuid())
        .bind(user_id.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::membership)
        .transpose()
    }

    async fn members(&self, org_id: OrgId) -> StoreResult<Vec<Member>> {
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns_u!(),
            ", m.role AS m_role, m.joined_at AS m_joined_at, ",
            second_factor_of_m!(),
            " FROM {t}memberships m JOIN {t}users u ON u.id = m.user_id \
             WHERE m.org_id = $1 ORDER BY m.joined_at, m.user_id"
        )))
        .bind(org_id.into_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, |row| {
            let user = rows::user(row)?;
            let (role, joined_at) = rows::role_and_joined_at(row)?;
            Ok(Member {
                membership: Membership {
                    org_id,
                    user_id: user.id,
                    role,
                    joined_at,
                },
                user,
                second_factor: row.try_get("second_factor").map_err(map_sqlx_error)?,
            })
        })
    }

    async fn org_access(&self, org_id: OrgId, user_id: UserId) -> StoreResult<Option<OrgAccess>> {
        let row = sqlx::query(self.sql(concat!(
            "SELECT m.org_id, m.user_id, m.role, m.joined_at, o.mfa_required, ",
            second_factor_of_m!(),
            " FROM {t}memberships m JOIN {t}organizations o ON o.id = m.org_id \
             WHERE m.org_id = $1 AND m.user_id = $2"
        )))
        .bind(org_id.into_uuid())
        .bind(user_id.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        row.map(|row| {
            Ok(OrgAccess {
                membership: rows::membership(&row)?,
                mfa_required: row.try_get("mfa_required").map_err(map_sqlx_error)?,
                second_factor: row.try_get("second_factor").map_err(map_sqlx_error)?,
            })
        })
        .transpose()
    }

    async fn set_org_mfa_required(&self, id: OrgId, required: bool) -> StoreResult<Organization> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}organizations SET mfa_required = $2 WHERE id = $1 RETURNING ",
            organization_columns!()
        )))
        .bind(id.into_uuid())
        .bind(required)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::organization)
    }

    async fn add_member(&self, membership: &Membership) -> StoreResult<()> {
        // Adding can only add owners, never take one away: no organization lock needed. An
        // unknown organization or user fails a foreign key: NotFound.
        sqlx::query(self.sql(
            "INSERT INTO {t}memberships (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        ))
        .bind(membership.org_id.into_uuid())
        .bind(membership.user_id.into_uuid())
        .bind(membership.role.as_str())
        .bind(membership.joined_at)
        .execute(&self.pool)
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
        retrying(|| self.change_role_once(org_id, user_id, None, role)).await
    }

    async fn remove_member(&self, org_id: OrgId, user_id: UserId) -> StoreResult<()> {
        retrying(|| self.remove_member_once(org_id, user_id, None)).await
    }

    async fn change_role_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
        role: &Role,
    ) -> StoreResult<Membership> {
        retrying(|| self.change_role_once(org_id, user_id, Some(expected), role)).await
    }

    async fn remove_member_if(
        &self,
        org_id: OrgId,
        user_id: UserId,
        expected: &Role,
    ) -> StoreResult<()> {
        retrying(|| self.remove_member_once(org_id, user_id, Some(expected))).await
    }

    async fn transfer_ownership(
        &self,
        org_id: OrgId,
        from: UserId,
        to: UserId,
        from_becomes: &Role,
    ) -> StoreResult<()> {
        retrying(|| self.transfer_ownership_once(org_id, from, to, from_becomes)).await
    }
}
