//! [`UserStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{
    Email, ExternalAccount, NewUser, OrgId, PasswordCredential, SecretString, StoreError,
    StoreResult, TokenHash, User, UserId, UserStore,
};
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::error::{map_sqlx_error, retrying};
use crate::rows::{self, user_columns};
use crate::sql::Tables;

impl PostgresStore {
    async fn create_user_once(
        &self,
        new: &NewUser,
        links: &[ExternalAccount],
    ) -> StoreResult<User> {
        let user = &new.user;
        if links.iter().any(|link| link.user_id != user.id) {
            return Err(StoreError::corrupt("an imported link names another user"));
        }
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        let row = sqlx::query(self.sql(concat!(
            "INSERT INTO {t}users (id, email, name, email_verified_at, created_at, external_id, \
             disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            user_columns!()
        )))
        .bind(user.id.into_uuid())
        .bind(user.email.as_str())
        .bind(user.name.as_deref())
        .bind(user.email_verified_at)
        .bind(user.created_at)
        .bind(user.external_id.as_deref())
        .bind(user.disabled_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let created = rows::user(&row)?;
        if let Some(hash) = &new.password_hash {
            sqlx::query(self.sql("INSERT INTO {t}password_credentials (user_id, hash, updated_at) VALUES ($1, $2, $3)"),
            )
            .bind(user.id.into_uuid())
            .bind(hash.expose())
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        }
        for link in links {
            sqlx::query(self.sql(
                "INSERT INTO {t}external_accounts (id, user_id, provider, issuer, subject, email, \
                 email_verified, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            ))
            .bind(link.id.into_uuid())
            .bind(user.id.into_uuid())
            .bind(link.provider.as_str())
            .bind(link.issuer.as_str())
            .bind(link.subject.as_str())
            .bind(link.email.as_deref())
            .bind(link.email_verified)
            .bind(link.created_at)
            .bind(link.last_used_at)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        }
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(created)
    }

    /// Deletes a user in one transaction, keeping every organization they own with an owner.
    ///
    /// Locks, in this order: the user row (so no new membership, e.g. a new organization, can
    /// reference the user meanwhile: its foreign key check waits for us), then every
    /// organization the user owns, in id order (the order every other multi-organization lock
    /// takes, so two such transactions cannot deadlock). Under those locks no other transaction
    /// can take an owner away from those organizations, so the owner count is final.
    async fn delete_user_once(&self, id: UserId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        let found = sqlx::query(self.sql("SELECT id FROM {t}users WHERE id = $1 FOR UPDATE"))
            .bind(id.into_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }

        let owned: Vec<Uuid> = sqlx::query_scalar(self.sql("SELECT org_id FROM {t}memberships WHERE user_id = $1 AND role = 'owner' ORDER BY org_id"),
        )
        .bind(id.into_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        // An organization deleted meanwhile is not locked, and needs no owner any more.
        let locked = lock_orgs(&self.tables, &mut tx, &owned).await?;
        ensure_other_owners(&self.tables, &mut tx, &locked, id).await?;

        // A promotion to owner that committed after the read above is seen here: DELETE reads
        // the latest committed rows. Such an organization was not locked yet; lock it and
        // check it too.
        let removed = sqlx::query(self.sql("DELETE FROM {t}memberships WHERE user_id = $1 RETURNING org_id, role = 'owner' AS owner"),
        )
        .bind(id.into_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let mut late: Vec<Uuid> = Vec::new();
        for row in &removed {
            let org: Uuid = row.try_get("org_id").map_err(map_sqlx_error)?;
            let owner: bool = row.try_get("owner").map_err(map_sqlx_error)?;
            if owner && !owned.contains(&org) {
                late.push(org);
            }
        }
        if !late.is_empty() {
            late.sort_unstable();
            let locked = lock_orgs(&self.tables, &mut tx, &late).await?;
            ensure_other_owners(&self.tables, &mut tx, &locked, id).await?;
        }

        sqlx::query(self.sql("DELETE FROM {t}users WHERE id = $1"))
            .bind(id.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)
    }
}

/// Locks the organization rows of `org_ids` (sorted by id), in id order; returns the ids of
/// those that exist.
async fn lock_orgs(
    tables: &Tables,
    tx: &mut sqlx::PgConnection,
    org_ids: &[Uuid],
) -> StoreResult<Vec<Uuid>> {
    if org_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        tables.sql("SELECT id FROM {t}organizations WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
    )
    .bind(org_ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_sqlx_error)
}

/// [`StoreError::LastOwner`] unless every one of `org_ids` (locked by the caller) has an owner
/// other than `leaving`.
pub(crate) async fn ensure_other_owners(
    tables: &Tables,
    tx: &mut sqlx::PgConnection,
    org_ids: &[Uuid],
    leaving: UserId,
) -> StoreResult<()> {
    if org_ids.is_empty() {
        return Ok(());
    }
    let orphaned: Option<Uuid> = sqlx::query_scalar(tables.sql(
        "SELECT o.id FROM unnest($1::uuid[]) AS o(id) \
         WHERE NOT EXISTS (SELECT 1 FROM {t}memberships m \
                           WHERE m.org_id = o.id AND m.role = 'owner' AND m.user_id <> $2) \
         LIMIT 1",
    ))
    .bind(org_ids)
    .bind(leaving.into_uuid())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_sqlx_error)?;
    match orphaned {
        Some(org) => {
            tracing::debug!(org_id = %OrgId::from_uuid(org), "refused to remove the last owner");
            Err(StoreError::LastOwner)
        }
        None => Ok(()),
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, new: &NewUser) -> StoreResult<User> {
        retrying(|| self.create_user_once(new, &[])).await
    }

    async fn import_user(&self, new: &NewUser, links: &[ExternalAccount]) -> StoreResult<User> {
        retrying(|| self.create_user_once(new, links)).await
    }

    async fn user_by_external_id(&self, external_id: &str) -> StoreResult<Option<User>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns!(),
            " FROM {t}users WHERE external_id = $1"
        )))
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn set_user_external_id(
        &self,
        id: UserId,
        external_id: Option<&str>,
    ) -> StoreResult<User> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET external_id = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        )))
        .bind(id.into_uuid())
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::user)
    }

    async fn set_user_disabled(&self, id: UserId, at: Option<OffsetDateTime>) -> StoreResult<User> {
        // COALESCE keeps the first time of a user disabled twice; NULL enables.
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET disabled_at = CASE WHEN $2::timestamptz IS NULL THEN NULL \
             ELSE COALESCE(disabled_at, $2) END WHERE id = $1 RETURNING ",
            user_columns!()
        )))
        .bind(id.into_uuid())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::user)
    }

    async fn claim_session_handoff(
        &self,
        key: &TokenHash,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        // An unknown user fails the foreign key: NotFound.
        let done = sqlx::query(self.sql(
            "INSERT INTO {t}session_handoffs (key_hash, user_id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (key_hash) DO NOTHING",
        ))
        .bind(key.as_bytes().as_slice())
        .bind(user_id.into_uuid())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns!(),
            " FROM {t}users WHERE id = $1"
        )))
        .bind(id.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        // `lower(email)` so that the unique index on that expression serves the lookup.
        sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns!(),
            " FROM {t}users WHERE lower(email) = lower($1)"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> StoreResult<User> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET name = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        )))
        .bind(id.into_uuid())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::user)
    }

    async fn mark_email_verified(&self, id: UserId, at: OffsetDateTime) -> StoreResult<User> {
        // LEAST ignores NULL: the first verification sets the time, later ones keep the
        // earliest.
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET email_verified_at = LEAST(email_verified_at, $2) \
             WHERE id = $1 RETURNING ",
            user_columns!()
        )))
        .bind(id.into_uuid())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::user)
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        retrying(|| self.delete_user_once(id)).await
    }

    async fn password_credential(
        &self,
        user_id: UserId,
    ) -> StoreResult<Option<PasswordCredential>> {
        let row = sqlx::query(self.sql(
            "SELECT user_id, hash, updated_at FROM {t}password_credentials WHERE user_id = $1",
        ))
        .bind(user_id.into_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let uid: Uuid = row.try_get("user_id").map_err(map_sqlx_error)?;
        let hash: String = row.try_get("hash").map_err(map_sqlx_error)?;
        Ok(Some(PasswordCredential {
            user_id: UserId::from_uuid(uid),
            hash: SecretString::new(hash),
            updated_at: row.try_get("updated_at").map_err(map_sqlx_error)?,
        }))
    }

    async fn set_password_hash(
        &self,
        user_id: UserId,
        hash: &SecretString,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        // An unknown user fails the foreign key: NotFound.
        sqlx::query(self.sql("INSERT INTO {t}password_credentials (user_id, hash, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, updated_at = EXCLUDED.updated_at"),
        )
        .bind(user_id.into_uuid())
        .bind(hash.expose())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn remove_password(&self, user_id: UserId) -> StoreResult<bool> {
        let done = sqlx::query(self.sql("DELETE FROM {t}password_credentials WHERE user_id = $1"))
            .bind(user_id.into_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }
}
