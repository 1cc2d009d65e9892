//! [`UserStore`] for [`SqliteStore`].

use async_trait::async_trait;
use keystead_core::{
    Email, ExternalAccount, NewUser, PasswordCredential, SecretString, StoreError, StoreResult,
    TokenHash, User, UserId, UserStore,
};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::map_sqlx_error;
use crate::rows::{self, RowExt, micros, opt_micros, user_columns};

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: &NewUser) -> StoreResult<User> {
        self.import_user(new, &[]).await
    }

    async fn import_user(&self, new: &NewUser, links: &[ExternalAccount]) -> StoreResult<User> {
        let user = &new.user;
        if links.iter().any(|link| link.user_id != user.id) {
            return Err(StoreError::corrupt("an imported link names another user"));
        }
        let mut tx = self.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO {t}users (id, email, name, email_verified_at, created_at, external_id, \
             disabled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        ))
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(user.name.as_deref())
        .bind(opt_micros(user.email_verified_at))
        .bind(micros(user.created_at))
        .bind(user.external_id.as_deref())
        .bind(opt_micros(user.disabled_at))
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if let Some(hash) = &new.password_hash {
            sqlx::query(self.sql("INSERT INTO {t}password_credentials (user_id, hash, updated_at) VALUES (?1, ?2, ?3)"),
            )
            .bind(user.id.to_string())
            .bind(hash.expose())
            .bind(micros(user.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        }
        for link in links {
            sqlx::query(self.sql(
                "INSERT INTO {t}external_accounts (id, user_id, provider, issuer, subject, email, \
                 email_verified, created_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            ))
            .bind(link.id.to_string())
            .bind(user.id.to_string())
            .bind(link.provider.as_str())
            .bind(link.issuer.as_str())
            .bind(link.subject.as_str())
            .bind(link.email.as_deref())
            .bind(link.email_verified)
            .bind(micros(link.created_at))
            .bind(opt_micros(link.last_used_at))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        }
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(user.clone())
    }

    async fn user_by_external_id(&self, external_id: &str) -> StoreResult<Option<User>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns!(),
            " FROM {t}users WHERE external_id = ?1"
        )))
        .bind(external_id)
        .fetch_optional(&self.reader)
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
            "UPDATE {t}users SET external_id = ?1 WHERE id = ?2 RETURNING ",
            user_columns!()
        )))
        .bind(external_id)
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn set_user_disabled(&self, id: UserId, at: Option<OffsetDateTime>) -> StoreResult<User> {
        // coalesce keeps the first time of a user disabled twice; NULL enables.
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET disabled_at = CASE WHEN ?1 IS NULL THEN NULL \
             ELSE coalesce(disabled_at, ?1) END WHERE id = ?2 RETURNING ",
            user_columns!()
        )))
        .bind(opt_micros(at))
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn claim_session_handoff(
        &self,
        key: &TokenHash,
        user_id: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        // An unknown user fails the foreign key: NotFound.
        let done = sqlx::query(self.sql(
            "INSERT INTO {t}session_handoffs (key_hash, user_id, at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key_hash) DO NOTHING",
        ))
        .bind(key.as_bytes().as_slice())
        .bind(user_id.to_string())
        .bind(micros(at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns!(),
            " FROM {t}users WHERE id = ?1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        // `users.email` is COLLATE NOCASE, so this is the unique index's lookup.
        sqlx::query(self.sql(concat!(
            "SELECT ",
            user_columns!(),
            " FROM {t}users WHERE email = ?1"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn set_user_name(&self, id: UserId, name: Option<&str>) -> StoreResult<User> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET name = ?1 WHERE id = ?2 RETURNING ",
            user_columns!()
        )))
        .bind(name)
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn mark_email_verified(&self, id: UserId, at: OffsetDateTime) -> StoreResult<User> {
        sqlx::query(self.sql(concat!(
            "UPDATE {t}users SET email_verified_at = min(coalesce(email_verified_at, ?1), ?1) \
             WHERE id = ?2 RETURNING ",
            user_columns!()
        )))
        .bind(micros(at))
        .bind(id.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::user)
        .transpose()?
        .ok_or(StoreError::NotFound)
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        let id = id.to_string();
        let mut tx = self.begin().await?;
        let exists = sqlx::query(self.sql("SELECT 1 FROM {t}users WHERE id = ?1"))
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        // Is the user the only owner of some organization? (The schema's trigger would refuse
        // the cascade too; asking first gives the precise error.)
        let sole_owner = sqlx::query(self.sql(
            "SELECT 1 FROM {t}memberships AS m \
             WHERE m.user_id = ?1 AND m.role = 'owner' AND NOT EXISTS ( \
                 SELECT 1 FROM {t}memberships AS o \
                 WHERE o.org_id = m.org_id AND o.role = 'owner' AND o.user_id <> m.user_id) \
             LIMIT 1",
        ))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if sole_owner.is_some() {
            return Err(StoreError::LastOwner);
        }
        sqlx::query(self.sql("DELETE FROM {t}users WHERE id = ?1"))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)
    }

    async fn password_credential(
        &self,
        user_id: UserId,
    ) -> StoreResult<Option<PasswordCredential>> {
        let row = sqlx::query(self.sql(
            "SELECT user_id, hash, updated_at FROM {t}password_credentials WHERE user_id = ?1",
        ))
        .bind(user_id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_sqlx_error)?;
        row.map(|row| {
            Ok(PasswordCredential {
                user_id: row.id("user_id")?,
                hash: SecretString::new(row.text("hash")?),
                updated_at: row.time("updated_at")?,
            })
        })
        .transpose()
    }

    async fn set_password_hash(
        &self,
        user_id: UserId,
        hash: &SecretString,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        // An unknown user fails the foreign key: NotFound.
        sqlx::query(self.sql(
            "INSERT INTO {t}password_credentials (user_id, hash, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, \
                 updated_at = excluded.updated_at",
        ))
        .bind(user_id.to_string())
        .bind(hash.expose())
        .bind(micros(at))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn remove_password(&self, user_id: UserId) -> StoreResult<bool> {
        let done = sqlx::query(self.sql("DELETE FROM {t}password_credentials WHERE user_id = ?1"))
            .bind(user_id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() > 0)
    }
}
