//! [`ExternalAccountStore`] on Postgres.

use async_trait::async_trait;
use keystead_core::{
    Conflict, ExternalAccount, ExternalAccountId, ExternalAccountStore, StoreError, StoreResult,
    UserId,
};
use time::OffsetDateTime;

use crate::PostgresStore;
use crate::error::map_sqlx_error;
use crate::rows::{self, external_account_columns};

#[async_trait]
impl ExternalAccountStore for PostgresStore {
    async fn link_external_account(&self, account: &ExternalAccount) -> StoreResult<()> {
        let result = sqlx::query(self.sql(
            "INSERT INTO {t}external_accounts (id, user_id, provider, issuer, subject, email, \
             email_verified, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        ))
        .bind(account.id.into_uuid())
        .bind(account.user_id.into_uuid())
        .bind(account.provider.as_str())
        .bind(account.issuer.as_str())
        .bind(account.subject.as_str())
        .bind(account.email.as_deref())
        .bind(account.email_verified)
        .bind(account.created_at)
        .bind(account.last_used_at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error);
        match result {
            // Both rules broken (the same identity again for the same user): the identity's
            // conflict is the one to report, whichever index the database checked first.
            Err(StoreError::Conflict(Conflict::ProviderLinked))
                if self
                    .external_account(&account.issuer, &account.subject)
                    .await?
                    .is_some() =>
            {
                Err(StoreError::Conflict(Conflict::ExternalAccount))
            }
            other => other.map(|_| ()),
        }
    }

    async fn external_account(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<ExternalAccount>> {
        sqlx::query(self.sql(concat!(
            "SELECT ",
            external_account_columns!(),
            " FROM {t}external_accounts WHERE issuer = $1 AND subject = $2"
        )))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(rows::external_account)
        .transpose()
    }

    async fn external_accounts_for_user(
        &self,
        user_id: UserId,
    ) -> StoreResult<Vec<ExternalAccount>> {
        let found = sqlx::query(self.sql(concat!(
            "SELECT ",
            external_account_columns!(),
            " FROM {t}external_accounts WHERE user_id = $1 ORDER BY created_at, id"
        )))
        .bind(user_id.into_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        rows::all(&found, rows::external_account)
    }

    async fn touch_external_account(
        &self,
        id: ExternalAccountId,
        email: Option<&str>,
        email_verified: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let done = sqlx::query(self.sql(
            "UPDATE {t}external_accounts SET email = $2, email_verified = $3, last_used_at = $4 \
             WHERE id = $1",
        ))
        .bind(id.into_uuid())
        .bind(email)
        .bind(email_verified)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn unlink_external_account(
        &self,
        user_id: UserId,
        id: ExternalAccountId,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            self.sql("DELETE FROM {t}external_accounts WHERE id = $1 AND user_id = $2"),
        )
        .bind(id.into_uuid())
        .bind(user_id.into_uuid())
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
